"""The worker's alert state: which alerts fire, rebuilt from the alert topic itself.

Read to its end when the worker holds an owner (nämnd) without an alert book: at start, and
after an assignment gave it nämnder another worker may have alerted on
(``streams.forecasting.LiveForecaster``). Without it the worker would send every firing alert
again, so a topic that cannot be read ends the process (``streams.ingest.exit_for_restart``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import structlog

from contract.output_records import AlertEvent
from contract.validation import InvalidEvent, parse_alert_event
from streams.forecasting import LiveForecaster
from streams.ingest import exit_for_restart, process_with_retries
from streams.replay import RawMessage, read_topics_async

log = structlog.get_logger(__name__)

ReadTopics = Callable[[str, list[str]], Awaitable[list[RawMessage]]]


def alert_events(records: Iterable[RawMessage]) -> list[AlertEvent]:
    """The alert events among ``records``; an unreadable record is logged and skipped."""
    events = []
    for record in records:
        try:
            events.append(parse_alert_event(record.value or b""))
        except InvalidEvent:
            log.warning("alert_record_unreadable", topic=record.topic)
    return events


async def read_alert_events(
    bootstrap_servers: str,
    alert_topic: str,
    attempts: int,
    read: ReadTopics = read_topics_async,
) -> list[AlertEvent]:
    """Every alert event on the topic, read to its end (retried; the process ends if not)."""
    records: list[RawMessage] = []

    async def read_once() -> None:
        nonlocal records
        records = await read(bootstrap_servers, [alert_topic])

    def note(attempt: int, err: Exception) -> None:
        log.error("alert_state_read_failed", attempt=attempt, error=str(err))

    if not await process_with_retries(read_once, attempts, note):
        # Without its state the worker would send every firing alert again: stop instead.
        log.critical("worker_exiting_alert_state_unreadable", topic=alert_topic)
        exit_for_restart()
    return alert_events(records)


async def restore_alert_state(
    forecaster: LiveForecaster,
    bootstrap_servers: str,
    alert_topic: str,
    attempts: int,
    read: ReadTopics = read_topics_async,
) -> None:
    """Rebuild every owner's alert book from the alert topic (the forecaster does it itself
    for the owners it comes to hold; this is the whole organisation at once)."""
    events = await read_alert_events(bootstrap_servers, alert_topic, attempts, read)
    forecaster.restore_alerts(events)
    log.info("alert_state_restored", events=len(events))
