"""The Faust app of the stream worker: input topics, the aggregate table, the ingest agent.

One agent consumes the four input topics as raw bytes (so bad JSON reaches our validator instead
of Faust's deserializer, which would drop it silently) in batches. Per batch: validate every
message (invalid ones go to the dead-letter topic), forward valid events that are not on their
org_unit's home partition to it, group the rest by state key, read each key once, apply its
events (de-duplicated by ``event_id``), write it once, and end the batch's changelog writes with
a one-record batch per partition (the Tansu end-offset workaround, brief §5). Only then is the
batch acknowledged. See ``streams.aggregation`` for the state layout and ``docs/architecture.md``
for the argument why this counts every event exactly once without Kafka transactions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import faust
import structlog
from faust.streams import _current_event  # the context var Faust tables read the partition from
from faust.transport.consumer import Consumer
from faust.types import TP, EventT
from faust.web import Request, Response, View

from core.domain import DomainConfig
from core.settings import Settings
from streams.aggregation import (
    ActiveState,
    apply_events,
    home_partition,
    is_closed,
    parse_key,
    state_key,
)
from streams.forecasting import LiveForecaster, status_json
from streams.metrics import CONTENT_TYPE, WorkerMetrics

log = structlog.get_logger(__name__)

TABLE_NAME = "aggregates"
FORWARDED_FROM_HEADER = "budgetvakt-forwarded-from"
# Exit status when a batch kept failing: a supervisor (systemd, Compose) restarts the worker.
EXIT_BATCH_FAILED = 75
RETRY_BACKOFF_S = 0.5


def reason_kind(reason: str, err: Exception | None = None) -> str:
    """A small fixed set of label values for the dead-letter counter."""
    kind = getattr(err, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    text = reason.lower()
    if "personnummer" in text or "samordningsnummer" in text or "personal" in text:
        return "personal_id"
    if "json" in text or "utf-8" in text or "empty" in text:
        return "bad_json"
    if "topic" in text:
        return "wrong_topic"
    if "processing failed" in text:
        return "processing"
    return "schema"


def dead_letter_record(event: EventT, reason: str, now: datetime | None = None) -> bytes:
    msg = event.message
    raw_value = msg.value if isinstance(msg.value, bytes | bytearray) else b""
    raw_key = msg.key if isinstance(msg.key, bytes | bytearray) else None
    record = {
        "reason": reason,
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        # Keys and values are arbitrary bytes and may hold what we refuse to read: base64.
        "key": base64.b64encode(raw_key).decode("ascii") if raw_key is not None else None,
        "original": base64.b64encode(raw_value).decode("ascii"),
        "rejected_at": (now or datetime.now(UTC)).isoformat(),
    }
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


@dataclass
class WorkerApp:
    app: faust.App
    table: Any
    state: ActiveState
    metrics: WorkerMetrics
    settings: Settings
    domain: DomainConfig
    input_topic_names: dict[str, str]  # topic name → event type it carries
    forecaster: LiveForecaster | None = None
    ready: bool = False

    def active_partitions(self) -> set[int]:
        cost_topic = self.settings.topics().cost
        return {
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == cost_topic
        }

    def rebuild_state(self) -> None:
        active = self.active_partitions()
        items = ((k, v) for k, v in self.table.data.items() if parse_key(k).partition in active)
        self.state.rebuild(items, active)
        log.info("state_rebuilt", partitions=sorted(active), version=self.state.version)


async def process_with_retries(
    process: Callable[[], Awaitable[None]],
    attempts: int,
    on_failure: Callable[[int, Exception], None],
    backoff_s: float = RETRY_BACKOFF_S,
) -> bool:
    """Run ``process`` until it succeeds, at most ``attempts`` times; False if it never did.

    Safe to repeat because applying events is idempotent (their ids are in the table values).
    """
    for attempt in range(1, attempts + 1):
        try:
            await process()
            return True
        except asyncio.CancelledError:
            raise
        except Exception as err:  # broker or store failure; bad events never raise here
            on_failure(attempt, err)
            if attempt < attempts:
                await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
    return False


class _NoReadOffsets(dict[TP, int | None]):
    """Faust's per-partition "read offset", always unknown."""

    def __getitem__(self, tp: TP) -> None:
        return None


def seek_after_recovery(
    app: faust.App, topics: set[str], processed_in_recovery: dict[TP, int]
) -> None:
    """Wrap Faust's post-recovery seek so that no input is skipped or left half applied.

    Faust calls ``perform_seek`` when a table recovery has finished, to go back to the committed
    offsets; by then it has already fetched input, cleared some of it from its queues, and
    handed some to the agent while the table was still being recovered. Two cases are left
    over, and both are fixed by seeking back (replays are harmless: applying is idempotent):

    * aiokafka only seeks when the committed offset is > 0, so a partition never committed (a
      group's first worker killed before its first commit) stayed past the cleared messages:
      seek it to its earliest offset;
    * events applied during the recovery may have been overwritten by older changelog values,
      and their offsets may be committed by now: seek back to the lowest such offset
      (``processed_in_recovery``, filled by the agent).
    """
    consumer = cast(Consumer, app.consumer)
    # Faust drops a fetched message whose offset lies below the last one it delivered, to hide
    # re-reads after a seek; its delivery loop can move that mark past a seek we just made, and
    # the replay would be dropped. Replays are harmless here, so let every message through.
    consumer._read_offset = _NoReadOffsets()
    seek_to_committed = consumer.perform_seek

    async def perform_seek() -> None:
        await seek_to_committed()
        assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
        uncommitted = [tp for tp in assigned if not consumer._committed_offset.get(tp)]
        targets = (await consumer.earliest_offsets(*uncommitted)) if uncommitted else {}
        targets = dict(targets)
        for tp in assigned:
            replay_from = processed_in_recovery.get(tp)
            start = targets.get(tp, consumer._committed_offset.get(tp) or 0)
            if replay_from is not None and replay_from < start:
                targets[tp] = replay_from
        processed_in_recovery.clear()
        for tp, offset in targets.items():
            await consumer.seek(tp, offset)
        if targets:
            log.info(
                "input_sought_back",
                partitions={f"{tp.topic}/{tp.partition}": offset for tp, offset in targets.items()},
            )

    consumer.perform_seek = perform_seek  # type: ignore[method-assign]


def _broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{s.strip()}" for s in bootstrap_servers.split(",") if s.strip()]


def create_app(
    settings: Settings,
    domain: DomainConfig,
    rules: Any = None,
    snapshot_store: Any = None,
) -> WorkerApp:
    """The worker app; ``rules`` (a ``forecasts.deviations.RuleSet``) turns on alerting, and
    ``snapshot_store`` (``services.worker.SnapshotStore``) snapshots on period close and records
    events that arrive for a closed period."""
    topics = settings.topics()
    store = "rocksdb://" if settings.table_store == "rocksdb" else "memory://"
    app = faust.App(
        settings.app_id,
        broker=_broker_urls(settings.kafka_bootstrap_servers),
        store=store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.topic_partitions,
        # Tansu workaround (brief §5): aiokafka's max batch size in bytes; 1 = one message per
        # batch, which makes changelog recovery exact on Tansu. Production Kafka sets it larger.
        producer_max_batch_size=settings.producer_max_batch_size,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout_s / 3),
        # Tansu has no transactions; correctness comes from event_id de-duplication.
        processing_guarantee="at_least_once",
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
    )
    partitions = settings.topic_partitions
    input_topic_names = topics.input_types()
    input_topic = app.topic(
        *input_topic_names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    dead_letter_topic = app.topic(
        topics.dead_letter,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    output_topics = {
        name: app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=partitions,
            # The alert topic is the alert state the worker rebuilds at start: keep it forever.
            config={"retention.ms": "-1"} if name == topics.alert else None,
        )
        for name in (topics.forecast, topics.alert)
    }
    table = app.Table(
        TABLE_NAME,
        default=None,
        key_type=str,
        partitions=partitions,
    )
    state = ActiveState()
    metrics = WorkerMetrics(state, domain.org)
    worker = WorkerApp(app, table, state, metrics, settings, domain, input_topic_names)

    async def publish_output(topic: str, key: str, value: bytes) -> None:
        await output_topics[topic].send(key=key.encode("utf-8"), value=value)
        if topic == topics.alert:
            # One alert per produce batch, so that Tansu's end offset stays exact (brief §5)
            # and the alert state can be read back to the end at the next start.
            await app.producer.flush()

    forecaster = LiveForecaster(
        domain,
        settings.forecast_model,
        rules,
        publish_output,
        topics.forecast,
        topics.alert,
        metrics,
        snapshot_store,
    )
    worker.forecaster = forecaster

    from contract.validation import InvalidEvent, parse_event

    async def send_dead_letter(event: EventT, reason: str, err: Exception | None = None) -> None:
        msg = event.message
        await dead_letter_topic.send(key=msg.key, value=dead_letter_record(event, reason))
        metrics.events.labels(msg.topic, "rejected").inc()
        metrics.dead_letters.labels(reason_kind(reason, err)).inc()
        # Only coordinates and the reason (which never holds a personal id), never the payload.
        log.warning(
            "event_rejected",
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            reason=reason,
        )

    def partition_count(topic: str) -> int:
        return app.consumer.topic_partitions(topic) or settings.topic_partitions

    async def forward_home(event: EventT, org_unit: str, home: int) -> Awaitable[Any]:
        """Send the original bytes to the org_unit's home partition of the same topic."""
        msg = event.message
        metrics.forwarded.labels(msg.topic).inc()
        origin = f"{msg.topic}/{msg.partition}/{msg.offset}".encode()
        return await app.producer.send(
            msg.topic,
            org_unit.encode("utf-8"),
            bytes(msg.value or b""),
            home,
            None,
            [(FORWARDED_FROM_HEADER, origin)],
        )

    def write(key: str, value: Any, event: EventT) -> None:
        # Faust tables take the changelog partition (and the RocksDB shard) from the
        # "current event"; every event of a state key comes from the key's own partition.
        token = _current_event.set(weakref.ref(event))
        try:
            table[key] = value
        finally:
            _current_event.reset(token)

    async def process_batch(events: Sequence[EventT]) -> None:
        metrics.batches.inc()
        if not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            # Faust hands over input before the table is recovered; replay it afterwards.
            for event in events:
                tp, offset = event.message.tp, event.message.offset
                processed_in_recovery[tp] = min(processed_in_recovery.get(tp, offset), offset)
        groups: dict[str, list[tuple[EventT, Any]]] = defaultdict(list)
        forwarded: list[Awaitable[Any]] = []
        for event in events:
            msg = event.message
            raw = msg.value
            try:
                if not isinstance(raw, bytes | bytearray) or not raw:
                    raise InvalidEvent("empty message (no value)")
                parsed = parse_event(bytes(raw), domain)
            except InvalidEvent as err:
                await send_dead_letter(event, err.reason, err)
                continue
            expected = input_topic_names.get(msg.topic)
            if expected is not None and str(parsed.type) != expected:
                await send_dead_letter(
                    event, f"event type {parsed.type!r} does not belong on the {expected} topic"
                )
                continue
            home = home_partition(parsed.org_unit, partition_count(msg.topic))
            if msg.partition != home:
                forwarded.append(await forward_home(event, parsed.org_unit, home))
                continue
            groups[state_key(msg.partition, parsed)].append((event, parsed))

        last_write: dict[int, tuple[str, Any, EventT]] = {}
        closed = state.closed_periods()
        late: list[Any] = []
        closes_accepted = 0
        for key, group in groups.items():
            result = apply_events(table.get(key), [p for _, p in group], domain)
            if result.changed:
                write(key, result.value, group[0][0])
                metrics.table_writes.inc()
                state.put(key, result.value)
                last_write[group[0][0].message.partition] = (key, result.value, group[0][0])
            for (event, parsed), outcome, error in zip(
                group, result.outcomes, result.errors, strict=True
            ):
                if outcome == "failed":
                    await send_dead_letter(event, error or "processing failed")
                    continue
                metrics.events.labels(event.message.topic, outcome).inc()
                if outcome == "accepted" and not domain.org.is_known(parsed.org_unit):
                    metrics.unmapped_events.labels(parsed.org_unit).inc()
                if outcome == "accepted" and str(parsed.type) == "period_close":
                    closes_accepted += 1
                if (
                    outcome == "accepted"
                    and str(parsed.type) in ("cost", "volume")
                    and is_closed(parsed.period, domain.org.path(parsed.org_unit), closed)
                ):
                    late.append(parsed)
        if late:
            metrics.late_events.inc(len(late))
            log.info("late_events", count=len(late), periods=sorted({e.period for e in late}))
            if snapshot_store is not None:
                loop = asyncio.get_running_loop()
                try:
                    await loop.run_in_executor(None, snapshot_store.record_late_events, late)
                except Exception as err:  # a database outage must not stop ingest
                    metrics.snapshot_failures.inc()
                    log.error("late_events_not_recorded", error_type=type(err).__name__)

        # Everything this batch produced (changelog, dead letters, forwards) must be stored by
        # the broker before the batch is acknowledged and its offsets can be committed.
        await app.producer.flush()
        if settings.changelog_end_marker and last_write:
            # Tansu's end offset is "first offset of the last record batch + 1": rewrite each
            # partition's last key alone so its changelog ends in a one-record batch (brief §5).
            for key, value, event in last_write.values():
                write(key, value, event)
            await app.producer.flush()
        for delivery in forwarded:
            await delivery  # raises if the broker refused a forward
        for event in events:
            tp = event.message.tp
            processed_offsets[tp] = max(processed_offsets.get(tp, 0), event.message.offset + 1)
        if closes_accepted:
            close_seen.set()  # the whole batch is in the state by now

    @app.agent(input_topic, name="ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]  # missing in StreamT
            settings.worker_batch_size, within=settings.worker_batch_within_s
        ):
            # Poison messages are handled per event inside; what raises here is a broker or
            # store failure. take_events acknowledges a batch even when its body raises, so a
            # batch that keeps failing must end the process before that can happen.
            if not await process_with_retries(
                partial(process_batch, events), settings.worker_batch_attempts, note_failure
            ):
                log.critical(
                    "worker_exiting_batch_failed",
                    attempts=settings.worker_batch_attempts,
                    first_offsets={
                        f"{e.message.topic}/{e.message.partition}": e.message.offset
                        for e in reversed(events)
                    },
                )
                logging.shutdown()
                os._exit(EXIT_BATCH_FAILED)  # no ack, no commit: the next start replays it

    def note_failure(attempt: int, err: Exception) -> None:
        metrics.batch_failures.inc()
        log.error("batch_failed", attempt=attempt, error_type=type(err).__name__, error=str(err))

    processed_in_recovery: dict[TP, int] = {}
    seek_after_recovery(app, set(input_topic_names), processed_in_recovery)

    @app.task
    async def _declare_dead_letter_topic() -> None:
        # Faust declares the topics it consumes; this one it only produces to.
        await dead_letter_topic.maybe_declare()
        for topic in output_topics.values():
            await topic.maybe_declare()

    @table.on_recover
    async def _on_recover() -> None:
        worker.rebuild_state()
        worker.ready = True

    @app.task
    async def _restore_alert_state() -> None:
        """Rebuild which alerts fire from the alert topic before the first evaluation."""
        if rules is None:
            return
        from contract.output_records import AlertEvent
        from streams.replay import RawMessage, read_topics

        records: list[RawMessage] = []

        async def read() -> None:
            nonlocal records
            records = await asyncio.get_running_loop().run_in_executor(
                None, read_topics, settings.kafka_bootstrap_servers, [topics.alert]
            )

        def note(attempt: int, err: Exception) -> None:
            log.error("alert_state_read_failed", attempt=attempt, error=str(err))

        if not await process_with_retries(read, settings.worker_batch_attempts, note):
            # Without its state the worker would send every firing alert again: stop instead.
            log.critical("worker_exiting_alert_state_unreadable", topic=topics.alert)
            logging.shutdown()
            os._exit(EXIT_BATCH_FAILED)
        events = []
        for record in records:
            try:
                events.append(AlertEvent.model_validate_json(record.value or b""))
            except ValueError:
                log.warning("alert_record_unreadable", topic=record.topic)
        forecaster.restore_alerts(events)
        log.info("alert_state_restored", events=len(events))

    @app.task
    async def _forecast_loop() -> None:
        """At most one forecast per interval, unless a period was closed: a close is what makes
        alerts and the snapshot due, so it is forecast at once."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(close_seen.wait(), timeout=settings.forecast_interval_s)
            close_seen.clear()
            if not worker.ready or app.rebalancing:
                continue
            if rules is not None and not forecaster.status.alerts_restored:
                continue  # evaluating before the alert state is back would resend alerts
            try:
                await forecaster.run_once(state.version, list(state.items()))
            except Exception as err:  # a failed run is retried at the next tick, same state
                metrics.forecast_failures.inc()
                log.error("forecast_failed", error_type=type(err).__name__, error=str(err))
            update_consumer_lag()

    close_seen = asyncio.Event()

    def update_consumer_lag() -> None:
        consumer = cast(Consumer, app.consumer)
        metrics.consumer_lag.clear()  # partitions this worker lost must not keep a stale lag
        for tp in consumer.assignment():
            if tp.topic not in input_topic_names:
                continue
            position = processed_offsets.get(tp, consumer._committed_offset.get(tp) or 0)
            end = consumer.highwater(tp) or 0
            metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - position))

    processed_offsets: dict[TP, int] = {}

    @app.page("/forecasts/status")
    class ForecastStatusView(View):
        async def get(self, request: Request) -> Response:
            # The demo and tests wait until the forecast has seen the state as it is now.
            return self.json(
                {**status_json(forecaster.status), "current_state_version": state.version}
            )

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # async receivers work
    async def _on_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        partitions = {tp.partition for tp in revoked if tp.topic == topics.cost}
        state.drop_partitions(partitions)
        worker.ready = False

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(metrics.exposition(), content_type=CONTENT_TYPE)

    @app.page("/ready")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            ok = (
                worker.ready
                and not app.rebalancing
                and app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
                and not app.in_recovery
            )
            return self.json(
                {"ready": ok, "partitions": sorted(state.partitions)}, status=200 if ok else 503
            )

    return worker
