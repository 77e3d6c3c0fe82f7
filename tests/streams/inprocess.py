"""In-process worker pieces: a Faust app on the memory store, and events built by hand.

No broker: the app's producer is never started, so what the worker would send (dead letters,
forwards) is captured by :class:`Outbox` in place of the producer calls.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.types import EventT, RecordMetadata

from core.domain import DomainConfig
from core.settings import Settings
from streams.app import WorkerApp, create_app

PARTITIONS = 4


def event(
    app: faust.App,
    value: bytes | None,
    topic: str = "budgetvakt.cost.v1",
    partition: int = 0,
    offset: int = 0,
    key: bytes | None = None,
) -> EventT:
    """A Faust event as the consumer would hand it over."""
    message = faust.types.Message(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=time.time(),
        timestamp_type=0,
        headers=[],
        key=key,
        value=value,
        checksum=None,
    )
    return faust.Event(app, key, value, {}, message)


def cost_event(event_id: str, org_unit: str = "1110", **changes: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "cost",
        "org_unit": org_unit,
        "period": "2025-03",
        "category": "salaries",
        "amount_sek": 1000.0,
        **changes,
    }


def close_event(event_id: str, org_unit: str = "1110", period: str = "2025-03") -> dict[str, Any]:
    return {"event_id": event_id, "type": "period_close", "org_unit": org_unit, "period": period}


def as_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record).encode("utf-8")


@dataclass
class Outbox:
    """What the worker produced instead of sending it; deliveries resolve at once."""

    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    forwards: list[dict[str, Any]] = field(default_factory=list)
    flushes: int = 0
    # As aiokafka's producer: a record larger than its max_request_size raises at send.
    max_forward_size: int | None = None
    max_dead_letter_size: int | None = None
    broker_down: bool = False

    def _check(self, value: bytes | None, limit: int | None) -> None:
        from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

        if self.broker_down:
            raise KafkaConnectionError("no broker")
        if limit is not None and len(value or b"") > limit:
            raise MessageSizeTooLargeError(f"The message is {len(value or b'')} bytes")

    async def send_dead_letter(self, key: bytes | None, value: bytes) -> object:
        self._check(value, self.max_dead_letter_size)
        self.dead_letters.append((key, value))
        return None

    async def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> asyncio.Future[RecordMetadata]:
        self._check(value, self.max_forward_size)
        self.forwards.append(
            {"topic": topic, "key": key, "value": value, "partition": partition, "headers": headers}
        )
        delivered: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        tp = faust.types.TP(topic, partition or 0)
        delivered.set_result(RecordMetadata(topic, tp.partition, tp, len(self.forwards) - 1))
        return delivered

    async def flush(self) -> None:
        self.flushes += 1

    def dead_letter_records(self) -> list[dict[str, Any]]:
        return [json.loads(value) for _, value in self.dead_letters]


class LateEventRecorder:
    """A snapshot store that only records late events (the worker's DB seam)."""

    def __init__(self) -> None:
        self.late: list[Any] = []

    def write(self, forecast: Any, period: str) -> object:
        return period

    def periods(self) -> set[str]:
        return set()

    def record_late_events(self, events: Any) -> None:
        self.late.extend(events)


def memory_settings(data_dir: Path) -> Settings:
    return Settings(
        app_id=f"budgetvakt-unit-{uuid.uuid4().hex[:8]}",
        kafka_bootstrap_servers="127.0.0.1:9",  # never contacted
        broker_kind="tansu",  # set, so not detected: the embedded broker's path
        table_store="memory",
        data_dir=data_dir,
        topic_partitions=PARTITIONS,
        worker_batch_size=100,
        worker_batch_within_s=0.05,
    )


def inprocess_worker_app(
    data_dir: Path, domain: DomainConfig, outbox: Outbox, late_store: LateEventRecorder
) -> WorkerApp:
    """The real worker app on the memory store, its output captured by ``outbox``."""
    built = create_app(memory_settings(data_dir), domain, None, late_store)
    built.app.finalize()
    built.ingest.dead_letters.send = outbox.send_dead_letter
    built.ingest.forwarder.produce = outbox.produce
    built.ingest.flush = outbox.flush
    return built


async def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for: {what}")
        await asyncio.sleep(0.01)
