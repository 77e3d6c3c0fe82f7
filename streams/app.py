"""The Faust app of the stream worker: topics, the aggregate table, the ingest agent, the tasks.

``create_app`` only wires the parts together:

* ``streams.ingest``: one batch from raw bytes to table writes (validate, forward, group,
  apply, write, end markers); acknowledged only after :meth:`IngestBatch.process` returned;
* ``streams.dead_letter`` and ``streams.forwarding``: where invalid and off-home events go;
* ``streams.late_events``: events for an already closed period;
* ``streams.forecasting`` and ``streams.forecast_loop``: the debounced live forecasts;
* ``streams.alert_state``: the alert state read back from the alert topic (at start, and for
  the nämnder an assignment brings);
* ``streams.web``: ``/metrics``, ``/ready`` and ``/forecasts/status``;
* ``streams.faust_compat``: every use of Faust or aiokafka internals, and the version check;
* ``streams.local_store``: what a crashed predecessor left untrustworthy in the local store is
  discarded at start (and recovered from the changelog);
* ``streams.broker_kind``: Tansu or Apache Kafka (``BUDGETVAKT_BROKER_KIND``, detected once
  here); on Kafka the embedded broker's workarounds (changelog end marker, a flush per alert,
  the replay's drain polls) are switched off, through parameters of the same code.

One agent consumes the four input topics as raw bytes (so bad JSON reaches our validator instead
of Faust's deserializer, which would drop it silently) in batches. See ``streams.aggregation``
for the state layout and ``docs/architecture.md`` for the argument why this counts every event
exactly once without Kafka transactions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import faust
import structlog
from faust.transport.consumer import Consumer
from faust.types import TP, AgentT, EventT, TableT, TopicT

from contract.output_records import AlertEvent
from core.domain import DomainConfig
from core.settings import Settings, Topics
from forecasts.deviations import RuleSet
from streams.aggregation import ActiveState, StateValue, parse_key
from streams.alert_state import read_alert_events
from streams.assignment import OwnerBalancedAssignor, owner_weights
from streams.broker_kind import BrokerDetection, BrokerProfile, resolve_broker_kind
from streams.dead_letter import DeadLetters, dead_letter_record
from streams.faust_compat import (
    RecoveryReplay,
    check_faust_version,
    connect_async_receiver,
    event_context,
    local_partition_dirs,
    rebuild_stores_ahead_of_changelog,
    seek_after_recovery,
    take_events,
)
from streams.forecast_loop import forecast_loop
from streams.forecasting import LiveForecaster
from streams.forwarding import HomeForwarder
from streams.ingest import IngestBatch, consume
from streams.late_events import LateEvents
from streams.local_store import MARKER_NAME, BatchMarker, discard_untrusted_partitions
from streams.metrics import WorkerMetrics
from streams.ownership import Ownership
from streams.pii_egress import EGRESS
from streams.replay import read_topics_async
from streams.snapshot_store import SnapshotStore
from streams.web import register_views

# dead_letter_record: where tests/contract imports it from (it lives in streams.dead_letter).
__all__ = ["WorkerApp", "create_app", "dead_letter_record"]

log = structlog.get_logger(__name__)

TABLE_NAME = "aggregates"


class FaustStateTable:
    """The aggregate table as ``streams.ingest.StateTable``: a write in its event's context."""

    def __init__(self, table: TableT[str, StateValue]) -> None:
        self.table = table

    def get(self, key: str) -> StateValue | None:
        return self.table.get(key)

    def write(self, key: str, value: StateValue, event: EventT) -> None:
        # Faust tables take the changelog partition (and the RocksDB shard) from the "current
        # event"; every event of a state key comes from the key's own partition.
        with event_context(event):
            self.table[key] = value


@dataclass
class WorkerApp:
    app: faust.App
    table: TableT[str, StateValue]
    state: ActiveState
    metrics: WorkerMetrics
    settings: Settings
    domain: DomainConfig
    input_topic_names: dict[str, str]  # topic name → event type it carries
    forecaster: LiveForecaster
    ingest: IngestBatch
    ingest_agent: AgentT[Any]
    broker: BrokerDetection
    alerting: bool = False  # rules given: the alert state must be restored before evaluating
    ready: bool = False

    @property
    def consumer(self) -> Consumer:
        return cast(Consumer, self.app.consumer)

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

    async def on_table_recovered(self) -> None:
        self.rebuild_state()
        self.ready = True

    async def on_partitions_revoked(self, sender: object, revoked: set[TP], **_: object) -> None:
        """Before the revocation completes: the forecaster stops the owners (nämnder) whose
        state leaves, after the publish in flight, so that this worker publishes no alert and
        writes no snapshot for them once another worker took them over."""
        cost_topic = self.settings.topics().cost
        partitions = {tp.partition for tp in revoked if tp.topic == cost_topic}
        self.ready = False
        await self.forecaster.revoke_partitions(partitions)
        self.state.drop_partitions(partitions)

    async def on_shutdown(self, sender: object, **_: object) -> None:
        self.forecaster.close()  # its process pool would outlive the worker's event loop


def _broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{s.strip()}" for s in bootstrap_servers.split(",") if s.strip()]


class _App(faust.App):
    """A Faust app whose consumer fetches with ``fetch_max_wait_ms`` from the settings."""

    fetch_max_wait_ms: int = 1500  # Faust's own

    def _new_transport(self) -> Any:
        transport = super()._new_transport()
        # This app's transport only (an instance attribute shadowing the class's).
        transport.Consumer = _fetch_wait_consumer(self.fetch_max_wait_ms)  # type: ignore[misc]
        return transport


def _fetch_wait_consumer(fetch_max_wait_ms: int) -> type:
    """Faust's aiokafka consumer with another ``fetch_max_wait_ms`` (Faust passes a fixed
    1 500 ms; aiokafka reads the attribute when the consumer starts)."""
    from faust.transport.drivers import aiokafka as driver

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

    class FetchWaitConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> Any:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    return FetchWaitConsumer


def _faust_app(settings: Settings) -> faust.App:
    app = _App(
        settings.app_id,
        broker=_broker_urls(settings.kafka_bootstrap_servers),
        store="rocksdb://" if settings.table_store == "rocksdb" else "memory://",
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
        # Whole nämnder spread over the workers by size, not partitions by count.
        PartitionAssignor=OwnerBalancedAssignor,
    )
    app.fetch_max_wait_ms = int(settings.worker_fetch_max_wait_s * 1000)
    return app


def _raw_topic(app: faust.App, *names: str, partitions: int, **kwargs: Any) -> TopicT:
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        **kwargs,
    )


@dataclass
class WorkerTopics:
    """The worker's topics; all carry raw bytes (bad JSON must reach our validator)."""

    app: faust.App
    input: TopicT  # the four input topics
    dead_letter: TopicT
    outputs: dict[str, TopicT]  # forecast and alert topic by name
    alert: str
    # Tansu: every alert its own produce batch (see publish); Kafka: the forecaster flushes
    # once after a run's alerts (LiveForecaster.flush_alerts).
    flush_each_alert: bool = True

    @classmethod
    def declare(
        cls, app: faust.App, topics: Topics, partitions: int, flush_each_alert: bool = True
    ) -> WorkerTopics:
        outputs = {
            name: _raw_topic(
                app,
                name,
                partitions=partitions,
                # The alert topic is the alert state the worker rebuilds at start: keep it.
                config={"retention.ms": "-1"} if name == topics.alert else None,
            )
            for name in (topics.forecast, topics.alert)
        }
        return cls(
            app,
            _raw_topic(app, *topics.input_types(), partitions=partitions),
            _raw_topic(app, topics.dead_letter, partitions=partitions),
            outputs,
            topics.alert,
            flush_each_alert,
        )

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        """A forecast or alert event (``streams.forecasting.Publish``)."""
        await self.outputs[topic].send(key=key.encode("utf-8"), value=value)
        if topic == self.alert and self.flush_each_alert:
            # One alert per produce batch, so that Tansu's end offset stays exact (brief §5)
            # and the alert state can be read back to the end at the next start.
            await self.app.producer.flush()

    async def send_dead_letter(self, key: bytes | None, value: bytes) -> object:
        return await self.dead_letter.send(key=key, value=value)

    async def declare_produced(self) -> None:
        # Faust declares the topics it consumes; these it only produces to.
        await self.dead_letter.maybe_declare()
        for topic in self.outputs.values():
            await topic.maybe_declare()


def _ingest_batch(
    app: faust.App,
    settings: Settings,
    domain: DomainConfig,
    topics: WorkerTopics,
    table: TableT[str, StateValue],
    state: ActiveState,
    metrics: WorkerMetrics,
    snapshot_store: SnapshotStore | None,
    recovery: RecoveryReplay,
    batch_marker: BatchMarker | None,
    profile: BrokerProfile,
) -> IngestBatch:
    def partition_count(topic: str) -> int:
        return app.consumer.topic_partitions(topic) or settings.topic_partitions

    return IngestBatch(
        domain=domain,
        input_topic_types=settings.topics().input_types(),
        table=FaustStateTable(table),
        state=state,
        metrics=metrics,
        dead_letters=DeadLetters(
            topics.send_dead_letter,
            metrics,
            payload=settings.dead_letter_payload,
        ),
        forwarder=HomeForwarder(
            app.producer.send,
            partition_count,
            metrics,
            Ownership(domain.org, settings.partition_key),
        ),
        late_events=LateEvents(metrics, snapshot_store),
        flush=app.producer.flush,
        recovery=recovery,
        # BUDGETVAKT_CHANGELOG_END_MARKER=false turns it off on Tansu too; Kafka never needs it.
        changelog_end_marker=settings.changelog_end_marker and profile.changelog_end_marker,
        batch_marker=batch_marker,
    )


def _guard_local_store(app: faust.App, settings: Settings, metrics: WorkerMetrics) -> BatchMarker:
    """Discard what a crashed predecessor left untrustworthy in the local store, and watch
    for it at recovery (``streams.local_store``); the marker the batches keep."""

    def rebuilt(reason: str, partition: int) -> None:
        metrics.table_store_rebuilds.labels(reason).inc()

    tabledir = Path(app.conf.tabledir)
    tabledir.mkdir(parents=True, exist_ok=True)
    marker = BatchMarker(tabledir / MARKER_NAME)
    discard_untrusted_partitions(marker, lambda: local_partition_dirs(app, TABLE_NAME), rebuilt)
    rebuild_stores_ahead_of_changelog(app, rebuilt)
    return marker


def create_app(
    settings: Settings,
    domain: DomainConfig,
    rules: RuleSet | None = None,
    snapshot_store: SnapshotStore | None = None,
) -> WorkerApp:
    """The worker app; ``rules`` turns on alerting, and ``snapshot_store`` snapshots on period
    close and records events that arrive for a closed period."""
    check_faust_version()
    broker = resolve_broker_kind(settings.broker_kind, settings.kafka_bootstrap_servers)
    app = _faust_app(settings)
    topics = WorkerTopics.declare(
        app, settings.topics(), settings.topic_partitions, broker.profile.flush_each_alert
    )
    table = app.Table(TABLE_NAME, default=None, key_type=str, partitions=settings.topic_partitions)
    state = ActiveState()
    metrics = WorkerMetrics(state, domain.org, measures=set(domain.measures))
    # The last check before a forecast or alert event leaves: none carries an identity number.
    guarded_publish = EGRESS.guard_publish(
        topics.publish, {settings.topics().forecast: "forecast_event", topics.alert: "alert_event"}
    )

    async def read_alerts() -> list[AlertEvent]:
        return await read_alert_events(
            settings.kafka_bootstrap_servers,
            topics.alert,
            settings.worker_batch_attempts,
            read=partial(read_topics_async, exact_end_offsets=broker.profile.exact_end_offsets),
        )

    forecaster = LiveForecaster(
        domain,
        settings.forecast_model,
        rules,
        guarded_publish,
        settings.topics().forecast,
        topics.alert,
        metrics,
        snapshot_store,
        alerts_from=settings.alerts_from,
        read_alerts=read_alerts,
        # Well within the session timeout, inside which Faust must finish the revocation.
        revoke_timeout_s=settings.broker_session_timeout_s / 2,
        flush=app.producer.flush,
        flush_alerts=app.producer.flush,
    )
    recovery = RecoveryReplay(app)
    on_disk = settings.table_store == "rocksdb"
    marker = _guard_local_store(app, settings, metrics) if on_disk else None
    ingest = _ingest_batch(
        app,
        settings,
        domain,
        topics,
        table,
        state,
        metrics,
        snapshot_store,
        recovery,
        marker,
        broker.profile,
    )

    async def ingest_batches(stream: faust.StreamT[bytes]) -> None:
        batches = take_events(stream, settings.worker_batch_size, settings.worker_batch_within_s)
        await consume(batches, ingest, settings.worker_batch_attempts)

    ingest_agent = app.agent(topics.input, name="ingest")(ingest_batches)
    input_topic_names = settings.topics().input_types()
    seek_after_recovery(cast(Consumer, app.consumer), set(input_topic_names), recovery)
    assignor = cast(OwnerBalancedAssignor, app.assignor)
    assignor.input_topics = sorted(input_topic_names)
    assignor.weigh = owner_weights(domain.org, Ownership(domain.org, settings.partition_key))
    worker = WorkerApp(
        app,
        table,
        state,
        metrics,
        settings,
        domain,
        input_topic_names,
        forecaster,
        ingest,
        ingest_agent,
        broker,
        alerting=rules is not None,
    )
    _register_tasks(worker, topics)
    register_views(worker)
    return worker


def _register_tasks(worker: WorkerApp, topics: WorkerTopics) -> None:
    """Start-up tasks, the forecast loop and the table/rebalance/shutdown hooks."""
    app, settings = worker.app, worker.settings

    async def forecast() -> None:
        await forecast_loop(worker, settings.forecast_interval_s)

    app.task(topics.declare_produced)
    worker.table.on_recover(worker.on_table_recovered)
    app.task(forecast)
    connect_async_receiver(app.on_partitions_revoked, worker.on_partitions_revoked)
    connect_async_receiver(app.on_before_shutdown, worker.on_shutdown)
