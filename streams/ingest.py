"""One batch of input, from raw bytes to acknowledged table writes.

Per batch (:meth:`IngestBatch.process`): validate every message (invalid ones are dead-lettered,
``streams.dead_letter``), forward valid events that are not on their home partition (the one of
the nämnd owning their org_unit, ``streams.ownership``) to it (``streams.forwarding``), group the
rest by state key, read each key once, apply its events (de-duplicated by ``event_id``), write it
once, note late events (``streams.late_events``), flush, and end the batch's changelog writes
with a one-record batch per partition (the Tansu end-offset workaround, brief §5). Only when
:meth:`~IngestBatch.process` returns may the batch be acknowledged. ``docs/architecture.md``
("Why every event counts exactly once") has the argument.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import NoReturn, Protocol

import structlog
from aiokafka import errors as kafka_errors
from faust.exceptions import ProducerSendError
from faust.types import TP, EventT

from contract.validation import AnyEvent, InvalidEvent, parse_event
from core.domain import DomainConfig
from streams.aggregation import ActiveState, StateValue, apply_events, state_key
from streams.dead_letter import DeadLetters
from streams.faust_compat import RecoveryReplay
from streams.forwarding import Delivery, HomeForwarder
from streams.late_events import LateEvent, LateEvents, is_late
from streams.local_store import BatchMarker
from streams.metrics import WorkerMetrics

log = structlog.get_logger(__name__)

RETRY_BACKOFF_S = 0.5
# Exit status when a batch kept failing: a supervisor (systemd, Compose) restarts the worker.
EXIT_BATCH_FAILED = 75


class StateTable(Protocol):
    """The changelog-backed aggregate table (``streams.app.FaustStateTable``)."""

    def get(self, key: str) -> StateValue | None: ...

    def write(self, key: str, value: StateValue, event: EventT) -> None:
        """Write ``key``; ``event`` (from the key's own partition) picks the changelog partition."""
        ...


Flush = Callable[[], Awaitable[None]]

# Errors that come from one message, not from the broker or the store: the producer refusing a
# record it would make (too large for max_request_size, or refused by the broker as such), or
# our own code failing on its content. Retrying the batch cannot help; isolating the message can.
MESSAGE_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.CorruptRecordException,
    ValueError,  # includes UnicodeError and pydantic's ValidationError
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,  # OverflowError, ZeroDivisionError
)

_DESCRIPTIONS = {
    kafka_errors.MessageSizeTooLargeError: "a record made from it would exceed the producer's "
    "max_request_size",
    kafka_errors.RecordTooLargeError: "a record made from it is too large",
}


def _root(err: BaseException) -> BaseException:
    """The producer's own error: Faust wraps aiokafka's in ``ProducerSendError`` (``from``)."""
    while err.__cause__ is not None and isinstance(err, ProducerSendError):
        err = err.__cause__
    return err


def is_message_error(err: BaseException) -> bool:
    """True when ``err`` is tied to the message being processed (see MESSAGE_ERRORS)."""
    return isinstance(_root(err), MESSAGE_ERRORS)


def message_error_reason(err: BaseException) -> str:
    """The dead-letter reason for a message that made its batch fail; only the error's type and
    a fixed description, never its text (which may quote the content)."""
    err = _root(err)
    description = next((d for t, d in _DESCRIPTIONS.items() if isinstance(err, t)), None)
    name = type(err).__name__
    return (
        f"processing failed: {description} ({name})"
        if description
        else f"processing failed: {name}"
    )


@dataclass
class IngestBatch:
    """Processes batches of input events; what it learns is read by the forecast loop."""

    domain: DomainConfig
    input_topic_types: Mapping[str, str]  # topic name → the event type it carries
    table: StateTable
    state: ActiveState
    metrics: WorkerMetrics
    dead_letters: DeadLetters
    forwarder: HomeForwarder
    late_events: LateEvents
    flush: Flush  # every record produced so far is stored by the broker
    recovery: RecoveryReplay | None = None  # notes input handed over during table recovery
    changelog_end_marker: bool = True
    # Says which partitions a batch is writing while it does (local RocksDB store only):
    # a worker killed mid-batch leaves it, and its successor rebuilds them (streams.local_store).
    batch_marker: BatchMarker | None = None
    processed_offsets: dict[TP, int] = field(default_factory=dict)  # next offset per partition
    close_seen: asyncio.Event = field(default_factory=asyncio.Event)  # a period_close applied

    async def process(self, events: Sequence[EventT]) -> None:
        self.metrics.batches.inc()
        if self.recovery is not None:
            # Faust hands over input before the table is recovered; replay it afterwards, and
            # apply none of it while the changelog is being read.
            if self.recovery.defer(events):
                log.info("input_deferred_until_recovered", events=len(events))
                return
            self.recovery.note(events)
        groups, forwarded = await self._validate_and_route(events)
        if self.batch_marker is not None and groups:
            # Before the first table write: the local store takes writes at once, the changelog
            # only when the broker acknowledges them.
            self.batch_marker.begin({e.message.partition for g in groups.values() for e, _ in g})
        last_write, closes_accepted = await self._apply(groups)

        # Everything this batch produced (changelog, dead letters, forwards) must be stored by
        # the broker before the batch is acknowledged and its offsets can be committed.
        await self.flush()
        if self.changelog_end_marker and last_write:
            # Tansu's end offset is "first offset of the last record batch + 1": rewrite each
            # partition's last key alone so its changelog ends in a one-record batch (brief §5).
            for key, value, event in last_write.values():
                self.table.write(key, value, event)
            await self.flush()
        if self.batch_marker is not None:
            self.batch_marker.end()  # the local store equals the changelog again
        for delivery in forwarded:
            await delivery  # raises if the broker refused a forward
        for event in events:
            tp = event.message.tp
            self.processed_offsets[tp] = max(
                self.processed_offsets.get(tp, 0), event.message.offset + 1
            )
        if self.recovery is not None:
            self.recovery.applied(events)
        if closes_accepted:
            self.close_seen.set()  # the whole batch is in the state by now

    def note_failure(self, attempt: int, err: Exception) -> None:
        self.metrics.batch_failures.inc()
        log.error("batch_failed", attempt=attempt, error_type=type(err).__name__, error=str(err))

    async def process_batch(self, events: Sequence[EventT], attempts: int) -> bool:
        """Process a batch, retried; False if it kept failing for broker or store reasons.

        A failure tied to one message (:func:`is_message_error`: e.g. a dead letter or forward
        too large for the producer) fails every retry alike, and used to end the process at
        every restart on the same message. It is not retried: the batch is processed again one
        message at a time (applying is idempotent), and the message that fails alone is
        dead-lettered; the others are processed as usual.
        """
        last: list[Exception] = []

        def failed(attempt: int, err: Exception) -> None:
            self.note_failure(attempt, err)
            last[:] = [err]

        whole = partial(self.process, events)
        if await process_with_retries(whole, attempts, failed, give_up=is_message_error):
            return True
        if not last or not is_message_error(last[0]):
            return False
        log.warning(
            "batch_isolating_messages", events=len(events), error_type=type(last[0]).__name__
        )
        for event in events:
            last.clear()
            one = partial(self.process, [event])
            if await process_with_retries(one, attempts, failed, give_up=is_message_error):
                continue
            if not last or not is_message_error(last[0]):
                return False  # the broker or the store: retry-then-exit as for a batch
            if not await self._reject_culprit(event, last[0]):
                return False
        return True

    async def _reject_culprit(self, event: EventT, err: Exception) -> bool:
        """Dead-letter the message that fails alone; it counts as rejected. False when the
        broker failed meanwhile (the batch is then not acknowledged)."""
        reason = message_error_reason(err)
        try:
            await self.dead_letters.reject(event, reason, err)
            await self.flush()
        except Exception as dead_letter_err:
            if not is_message_error(dead_letter_err):
                self.note_failure(1, dead_letter_err)
                return False
            # Even its dead letter cannot be produced (its record carries the original bytes,
            # see streams.dead_letter): the message stays readable at its coordinates in the
            # input topic; stopping ingestion for it would be worse.
            msg = event.message
            self.metrics.events.labels(msg.topic, "rejected").inc()
            log.error(
                "event_rejected_without_dead_letter",
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                reason=reason,
                error_type=type(_root(dead_letter_err)).__name__,
            )
        tp = event.message.tp
        self.processed_offsets[tp] = max(
            self.processed_offsets.get(tp, 0), event.message.offset + 1
        )
        if self.recovery is not None:
            self.recovery.applied([event])  # dealt with: a deferred batch's hold may end here
        return True

    async def _validate_and_route(
        self, events: Sequence[EventT]
    ) -> tuple[dict[str, list[tuple[EventT, AnyEvent]]], list[Delivery]]:
        """Valid events at home grouped by state key; the deliveries of those forwarded."""
        groups: dict[str, list[tuple[EventT, AnyEvent]]] = defaultdict(list)
        forwarded: list[Delivery] = []
        for event in events:
            parsed = await self._parse(event)
            if parsed is None:
                continue
            msg = event.message
            home = self.forwarder.home(msg.topic, parsed.org_unit)
            if msg.partition != home:
                forwarded.append(await self.forwarder.forward(event, parsed.org_unit, home))
                continue
            groups[state_key(msg.partition, parsed)].append((event, parsed))
        return groups, forwarded

    async def _parse(self, event: EventT) -> AnyEvent | None:
        """The validated event, or None after dead-lettering it."""
        msg = event.message
        raw = msg.value
        try:
            if not isinstance(raw, bytes | bytearray) or not raw:
                raise InvalidEvent("empty message (no value)")
            parsed = parse_event(bytes(raw), self.domain)
        except InvalidEvent as err:
            await self.dead_letters.reject(event, err.reason, err)
            return None
        expected = self.input_topic_types.get(msg.topic)
        if expected is not None and str(parsed.type) != expected:
            await self.dead_letters.reject(
                event, f"event type {parsed.type!r} does not belong on the {expected} topic"
            )
            return None
        return parsed

    async def _apply(
        self, groups: Mapping[str, list[tuple[EventT, AnyEvent]]]
    ) -> tuple[dict[int, tuple[str, StateValue, EventT]], int]:
        """Apply each key's events with one read and one write; the last write per partition
        and the number of period closes accepted."""
        last_write: dict[int, tuple[str, StateValue, EventT]] = {}
        closed = self.state.closed_periods()
        org = self.domain.org
        late: list[LateEvent] = []
        closes_accepted = 0
        for key, group in groups.items():
            result = apply_events(self.table.get(key), [p for _, p in group], self.domain)
            first_event = group[0][0]
            if result.changed:
                self.table.write(key, result.value, first_event)
                self.metrics.table_writes.inc()
                self.state.put(key, result.value)
                last_write[first_event.message.partition] = (key, result.value, first_event)
            for (event, parsed), outcome, error in zip(
                group, result.outcomes, result.errors, strict=True
            ):
                if outcome == "failed":
                    await self.dead_letters.reject(event, error or "processing failed")
                    continue
                self.metrics.events.labels(event.message.topic, outcome).inc()
                if outcome != "accepted":
                    continue
                if not org.is_known(parsed.org_unit):
                    self.metrics.unmapped_events.inc()
                if str(parsed.type) == "period_close":
                    closes_accepted += 1
                if is_late(parsed, org, closed):
                    late.append(parsed)
        await self.late_events.record(late)
        return last_write, closes_accepted


async def consume(
    batches: AsyncIterator[Sequence[EventT]], ingest: IngestBatch, attempts: int
) -> None:
    """The ingest agent's body: process each batch, retried; a batch that keeps failing ends
    the process before it could be acknowledged."""
    async for events in batches:
        # Poison messages are handled per event inside (invalid ones dead-lettered, one that
        # fails the batch isolated); what is left is a broker or store failure. take_events
        # acknowledges a batch even when its body raises, so a batch that keeps failing must
        # end the process before that can happen.
        if not await ingest.process_batch(events, attempts):
            log.critical(
                "worker_exiting_batch_failed",
                attempts=attempts,
                first_offsets={
                    f"{e.message.topic}/{e.message.partition}": e.message.offset
                    for e in reversed(events)
                },
            )
            exit_for_restart()


async def process_with_retries(
    process: Callable[[], Awaitable[None]],
    attempts: int,
    on_failure: Callable[[int, Exception], None],
    backoff_s: float = RETRY_BACKOFF_S,
    give_up: Callable[[Exception], bool] | None = None,
) -> bool:
    """Run ``process`` until it succeeds, at most ``attempts`` times; False if it never did.
    ``give_up``: errors that a retry cannot cure (stop at once).

    Safe to repeat because applying events is idempotent (their ids are in the table values).
    """
    for attempt in range(1, attempts + 1):
        try:
            await process()
            return True
        except asyncio.CancelledError:
            raise
        except Exception as err:  # broker or store failure, or one message (give_up)
            on_failure(attempt, err)
            if give_up is not None and give_up(err):
                return False
            if attempt < attempts:
                await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
    return False


def exit_for_restart() -> NoReturn:
    """End the process at once: no acknowledgement, no commit; the next start replays."""
    logging.shutdown()
    os._exit(EXIT_BATCH_FAILED)
