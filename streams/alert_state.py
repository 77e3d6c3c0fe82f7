"""The worker's alert state at start: which alerts fire, rebuilt from the alert topic itself.

Without it the worker would send every firing alert again after a restart, so a topic that
cannot be read ends the process (``streams.ingest.exit_for_restart``).
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


async def restore_alert_state(
    forecaster: LiveForecaster,
    bootstrap_servers: str,
    alert_topic: str,
    attempts: int,
    read: ReadTopics = read_topics_async,
) -> None:
    """Rebuild which alerts fire from the alert topic before the first evaluation."""
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
    events = alert_events(records)
    forecaster.restore_alerts(events)
    log.info("alert_state_restored", events=len(events))
