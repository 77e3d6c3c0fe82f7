"""Broker fixtures: one embedded Tansu broker per test session, its log kept when a test fails."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from core.domain import DomainConfig
from services.processes.broker import EmbeddedBroker
from services.processes.budgetvakt import BudgetvaktProcess

if TYPE_CHECKING:
    from streams.app import WorkerApp
    from tests.streams.inprocess import LateEventRecorder, Outbox

KEPT_LOGS = Path("test-logs")


def cost(event_id: str, unit: str, period: str, category: str, amount: float) -> Any:
    """A cost event as ``streams.aggregation`` reads it (attributes only)."""
    return SimpleNamespace(
        type="cost",
        event_id=event_id,
        org_unit=unit,
        period=period,
        category=category,
        amount_sek=amount,
    )


def volume(event_id: str, unit: str, period: str, measure: str, value: float) -> Any:
    """A volume event as ``streams.aggregation`` reads it (attributes only)."""
    return SimpleNamespace(
        type="volume", event_id=event_id, org_unit=unit, period=period, measure=measure, value=value
    )


@pytest.fixture(scope="session")
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    embedded = EmbeddedBroker(log_path=log_path)
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()
        if request.session.testsfailed:
            KEPT_LOGS.mkdir(exist_ok=True)
            kept = KEPT_LOGS / "tansu.log"
            shutil.copyfile(log_path, kept)
            print(f"\nbroker log kept at {kept.resolve()}")


@pytest.fixture
def bootstrap_servers(broker: EmbeddedBroker) -> str:
    return broker.bootstrap_servers


# --- Stream workers ------------------------------------------------------------------------------
# Real ``budgetvakt worker`` processes on the session broker. Every test gets its own Faust app id
# and topic names, so tests on the one broker never see each other's events or consumer groups.

WORKER_READY_TIMEOUT_S = 60.0


class WorkerProcess(BudgetvaktProcess):
    """One ``budgetvakt worker`` child process with its own web port and data dir."""

    def __init__(self, env: dict[str, str], data_dir: Path, log_path: Path) -> None:
        super().__init__("worker", env=env, data_dir=data_dir, log_path=log_path, append_log=True)

    def start(self, wait: bool = False) -> WorkerProcess:
        super().start(wait)
        return self

    def alive(self) -> bool:
        return self.is_running()

    def ready(self) -> dict[str, Any] | None:
        """The /ready answer when it is 200, else None."""
        try:
            with urllib.request.urlopen(self.url("/ready"), timeout=2) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
                return answer
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def wait_ready(self, timeout_s: float | None = WORKER_READY_TIMEOUT_S) -> dict[str, Any]:
        super().wait_ready(timeout_s)
        answer = self.ready()
        assert answer is not None, f"worker on port {self.port} ready, then not"
        return answer

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float | None = 30.0) -> int:
        return super().stop(sig, timeout_s) or 0


@dataclass
class StreamCase:
    """Unique topics and app id for one test, and the workers it started."""

    bootstrap_servers: str
    app_id: str
    topics: dict[str, str]
    tmp_path: Path
    workers: list[WorkerProcess] = field(default_factory=list)
    # More settings for the workers, e.g. BUDGETVAKT_CONFIG_DIR or BUDGETVAKT_PARTITION_KEY.
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {
            "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "BUDGETVAKT_APP_ID": self.app_id,
            "BUDGETVAKT_BROKER_SESSION_TIMEOUT_S": "6",
        }
        env.update({f"BUDGETVAKT_TOPIC_{k.upper()}": v for k, v in self.topics.items()})
        env.update(self.settings)
        return env

    def partition_key(self) -> Callable[[str], str]:
        """The record key of an org_unit's events, as the workers' settings have it (the owning
        nämnd, or the cost centre): ``streams.ownership``, as ``budgetvakt publish`` keys."""
        from core.settings import DEFAULT_CONFIG_DIR
        from services.config.domain import load_domain_config
        from streams.ownership import Ownership

        config_dir = Path(self.settings.get("BUDGETVAKT_CONFIG_DIR", DEFAULT_CONFIG_DIR))
        scheme = self.settings.get("BUDGETVAKT_PARTITION_KEY", "namnd")
        return Ownership(load_domain_config(config_dir).org, scheme).key  # type: ignore[arg-type]

    def start_worker(self, data_dir: Path | None = None, wait: bool = True) -> WorkerProcess:
        index = len(self.workers)
        data_dir = data_dir or self.tmp_path / f"worker{index}-data"
        worker = WorkerProcess(self.env, data_dir, self.tmp_path / f"worker{index}.log")
        self.workers.append(worker.start())
        if wait:
            worker.wait_ready()
        return worker

    def producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=5)

    def publish(
        self,
        topic: str,
        events: Sequence[dict[str, Any] | bytes],
        key_of: Callable[[str], str] | None = None,
    ) -> None:
        """Send events (dicts as contract JSON, bytes as is) keyed by ``key_of(org_unit)``
        (default :meth:`partition_key`: they arrive at home); wait for acks."""
        key_of = key_of or self.partition_key()
        records: list[tuple[bytes | None, bytes, int | None]] = []
        for event in events:
            if isinstance(event, bytes):
                records.append((b"poison", event, None))
            else:
                key = key_of(str(event.get("org_unit", ""))).encode("utf-8")
                records.append((key, json.dumps(event).encode("utf-8"), None))
        self.send(topic, records)

    def send(self, topic: str, records: Sequence[tuple[bytes | None, bytes, int | None]]) -> None:
        """Send ``(key, value, partition)`` records as given (None: no key / the partitioner's
        choice); wait for every ack."""
        producer = self.producer()
        try:
            futures = [
                producer.send(self.topics[topic], key=key, value=value, partition=partition)
                for key, value, partition in records
            ]
            producer.flush()
            for future in futures:
                future.get(timeout=30)
        finally:
            producer.close()

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Samples of all running workers, concatenated (sum them for totals)."""
        return [s for w in self.workers if w.alive() for s in w.samples()]


@pytest.fixture
def stream_case(
    request: pytest.FixtureRequest, broker: EmbeddedBroker, tmp_path: Path
) -> Iterator[StreamCase]:
    case_id = f"t{uuid.uuid4().hex[:10]}"
    names = ("cost", "volume", "budget", "period_close", "forecast", "alert", "dead_letter")
    case = StreamCase(
        bootstrap_servers=broker.bootstrap_servers,
        app_id=f"budgetvakt-{case_id}",
        topics={name: f"{case_id}.{name}" for name in names},
        tmp_path=tmp_path,
    )
    try:
        yield case
    finally:
        for worker in case.workers:
            worker.stop()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            KEPT_LOGS.mkdir(exist_ok=True)
            for index, worker in enumerate(case.workers):
                kept = KEPT_LOGS / f"{request.node.name}-worker{index}.log"
                shutil.copyfile(worker.log_path, kept)
                print(f"\nworker log kept at {kept.resolve()}")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Lets fixtures see whether the test body failed (to keep worker logs).
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


# --- The worker in-process ----------------------------------------------------------------------
# The real worker app on Faust's memory store, driven with ``agent.test_context()``: no broker.


@pytest.fixture
def outbox() -> Outbox:
    from tests.streams.inprocess import Outbox

    return Outbox()


@pytest.fixture
def late_store() -> LateEventRecorder:
    from tests.streams.inprocess import LateEventRecorder

    return LateEventRecorder()


@pytest.fixture
def inprocess_worker(
    tmp_path: Path, domain: DomainConfig, outbox: Outbox, late_store: LateEventRecorder
) -> Iterator[WorkerApp]:
    from tests.streams.inprocess import inprocess_worker_app

    worker = inprocess_worker_app(tmp_path, domain, outbox, late_store)
    try:
        yield worker
    finally:
        worker.forecaster.close()
