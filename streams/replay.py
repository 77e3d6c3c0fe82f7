"""Replay the input topics from the beginning into table values, independently of the worker.

``budgetvakt snapshot`` uses it: read every cost, volume, budget and period_close message from
offset 0 (the log start) up to the end, validate each as the worker does
(:func:`contract.validation.parse_event`, an event on another type's topic is invalid too), and
aggregate with :func:`streams.aggregation.apply_events` into values keyed by
``state_key(0, event)``: one partition's worth of the worker's table, so
``streams.aggregation.leaf_series`` reads it unchanged. Invalid messages are skipped and
counted; a copy of an event (re-sent, or forwarded to its home partition by a worker) is a
duplicate by ``event_id`` and counts once.

Where the end is (brief §5): Tansu answers the end offset of a partition as "first offset of the
last record batch + 1", so after batched produces it is too low (measured: 249 reported, 286
records present). On Tansu the reader therefore keeps polling after every partition has reached
the reported end until a poll brings nothing (at most :data:`DRAIN_POLLS` more polls, so that a
busy cluster cannot keep the replay going forever). Apache Kafka's end offsets are exact: with
``exact_end_offsets`` (``streams.broker_kind``, broker kind ``kafka``) the read stops as soon as
every partition has reached the end offset it had when the read began.
No consumer group: nothing is committed and no running worker is disturbed.

:func:`read_topics_async` (aiokafka) serves the stream worker; :func:`read_topics` runs it for
the command line.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from contract.validation import InvalidEvent, parse_event
from core.domain import DomainConfig
from core.errors import UserError
from streams.aggregation import StateValue, apply_events, closed_periods, state_key
from streams.broker_kind import resolve_broker_kind

log = structlog.get_logger(__name__)

POLL_TIMEOUT_MS = 500
FETCH_MAX_WAIT_MS = 100
MAX_POLL_RECORDS = 100_000
DRAIN_POLLS = 10
DEFAULT_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RawMessage:
    topic: str
    value: bytes | None


@dataclass
class ReplayResult:
    """Table values keyed by ``state_key(0, event)`` (with their ids) and what was read."""

    items: dict[str, StateValue] = field(default_factory=dict)
    messages: int = 0  # records read
    accepted: int = 0  # events that changed a value
    duplicates: int = 0  # an event_id seen before
    invalid: int = 0  # rejected by validation (the worker dead-letters these)
    failed: int = 0  # valid but could not be applied (also dead-lettered by the worker)

    @property
    def closed_periods(self) -> set[str]:
        """Every period a ``period_close`` event closed, for any org_unit."""
        return set().union(*closed_periods(self.items.items()).values())


def aggregate(
    messages: Iterable[RawMessage], topic_types: Mapping[str, str], domain: DomainConfig
) -> ReplayResult:
    """Validate and aggregate messages in the order given (per partition order matters only for
    budget lines, where a later version replaces an earlier one, as in the worker)."""
    result = ReplayResult()
    groups: dict[str, list[Any]] = defaultdict(list)
    for message in messages:
        result.messages += 1
        if not message.value:
            result.invalid += 1
            continue
        try:
            event = parse_event(message.value, domain)
        except InvalidEvent:
            result.invalid += 1
            continue
        expected = topic_types.get(message.topic)
        if expected is not None and str(event.type) != expected:
            result.invalid += 1
            continue
        groups[state_key(0, event)].append(event)
    for key, events in groups.items():
        applied = apply_events(None, events, domain)
        result.accepted += applied.outcomes.count("accepted")
        result.duplicates += applied.outcomes.count("duplicate")
        result.failed += applied.outcomes.count("failed")
        if applied.changed:
            result.items[key] = applied.value
    return result


def _reason(err: Exception) -> str:
    return str(err) or type(err).__name__


class _EndDrain:
    """When a read has reached the end: every partition at its reported end, then polls until
    one brings nothing (Tansu's end offset is too low), at most ``max_drain_polls`` of them
    (:data:`DRAIN_POLLS`; 0 on a broker with exact end offsets: done at the reported end)."""

    def __init__(
        self, end: Mapping[Any, int], timeout_s: float, max_drain_polls: int = DRAIN_POLLS
    ) -> None:
        self.end = end
        self.behind = set(end)
        self.timeout_s = timeout_s
        self.deadline = time.monotonic() + timeout_s
        self.max_drain_polls = max_drain_polls
        self.drain_polls = 0

    def finished(self, got_records: bool, positions: Mapping[Any, int], read: int) -> bool:
        """After a poll: True when done; a :class:`UserError` when past the deadline."""
        self.behind = {tp for tp in self.behind if positions[tp] < self.end[tp]}
        if not self.behind:
            if not got_records or self.drain_polls >= self.max_drain_polls:
                return True
            self.drain_polls += 1
        if time.monotonic() > self.deadline:
            raise UserError(
                f"reading the Kafka topics did not reach their end within {self.timeout_s:.0f} s "
                f"({read} messages read; {len(self.behind)} partitions left)"
            )
        return False


def read_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    exact_end_offsets: bool = False,
) -> list[RawMessage]:
    """Every record of ``topics`` from the log start to the end (see the module doc), for callers
    without an event loop (the ``snapshot`` command): :func:`read_topics_async` run to the end.

    A topic that does not exist yet has no records. The broker unreachable, or the end not
    reached within ``timeout_s``, is a :class:`UserError`.
    """
    return asyncio.run(
        read_topics_async(
            bootstrap_servers, topics, timeout_s, connect_timeout_s, exact_end_offsets
        )
    )


async def read_topics_async(
    bootstrap_servers: str,
    topics: Iterable[str],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    exact_end_offsets: bool = False,
) -> list[RawMessage]:
    """Every record of ``topics`` from the log start to the end, with aiokafka (the client Faust
    itself uses, so the worker, which reads its alert state back at start, runs no second Kafka
    client library). ``exact_end_offsets``: the broker's end offsets are exact (Apache Kafka),
    so no drain polls after them (module doc)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id="budgetvakt-replay",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        request_timeout_ms=int(max(connect_timeout_s, 1.0) * 1000) + FETCH_MAX_WAIT_MS,
    )
    try:
        async with asyncio.timeout(connect_timeout_s):
            await consumer.start()
    except (KafkaError, OSError, TimeoutError, ValueError) as err:
        await consumer.stop()
        raise UserError(
            f"cannot reach Kafka at {bootstrap_servers} "
            f"(BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS): {_reason(err)}"
        ) from None
    try:
        await consumer.topics()  # fresh metadata of every topic, created or not
        partitions: list[Any] = []
        for topic in dict.fromkeys(topics):
            ids = consumer.partitions_for_topic(topic) or set()
            if not ids:
                log.warning("replay_topic_missing", topic=topic)
            partitions.extend(TopicPartition(topic, p) for p in sorted(ids))
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        begin = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        messages: list[RawMessage] = []
        if exact_end_offsets and all(end[tp] <= begin[tp] for tp in partitions):
            return messages  # exact end offsets: nothing to read, no poll to wait for
        drain = _EndDrain(end, timeout_s, 0 if exact_end_offsets else DRAIN_POLLS)
        while True:
            batch = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_POLL_RECORDS)
            for tp, records in batch.items():
                messages.extend(RawMessage(tp.topic, record.value) for record in records)
            positions = {tp: await consumer.position(tp) for tp in drain.behind}
            if drain.finished(bool(batch), positions, len(messages)):
                break
        log.info(
            "replay_read",
            messages=len(messages),
            partitions=len(partitions),
            reported=sum(end[tp] - begin[tp] for tp in partitions),
        )
        return messages
    except KafkaError as err:
        raise UserError(
            f"reading from Kafka at {bootstrap_servers} failed: {_reason(err)}"
        ) from None
    finally:
        await consumer.stop()


def replay(
    bootstrap_servers: str,
    topic_types: Mapping[str, str],
    domain: DomainConfig,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    broker_kind: str = "auto",
) -> ReplayResult:
    """Read ``topic_types`` (topic name → the event type it carries) and aggregate them.
    ``broker_kind`` is ``BUDGETVAKT_BROKER_KIND`` (``auto`` asks the broker first)."""
    detection = resolve_broker_kind(broker_kind, bootstrap_servers, connect_timeout_s)
    messages = read_topics(
        bootstrap_servers,
        topic_types,
        timeout_s,
        connect_timeout_s,
        exact_end_offsets=detection.profile.exact_end_offsets,
    )
    result = aggregate(messages, topic_types, domain)
    log.info(
        "replay_done",
        messages=result.messages,
        accepted=result.accepted,
        duplicates=result.duplicates,
        invalid=result.invalid,
        failed=result.failed,
        keys=len(result.items),
        closed_periods=len(result.closed_periods),
    )
    return result
