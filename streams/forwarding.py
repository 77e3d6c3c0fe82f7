"""Forwarding: an event that arrived off its home partition is sent there, unchanged.

All events of an owner (a nämnd, see ``streams.ownership``), and every re-sent copy of one, must
meet on one partition for de-duplication to work, whatever the producer did with keys (none, a
different partitioner, the cost centre as in the older scheme). The original bytes go to the
home partition of the same topic, keyed by the partition key (the nämnd id) and marked with where
they came from; the worker applies them when the forward arrives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from faust.types import EventT, RecordMetadata

from streams.metrics import WorkerMetrics
from streams.ownership import Ownership

FORWARDED_FROM_HEADER = "budgetvakt-forwarded-from"

Delivery = Awaitable[RecordMetadata]  # resolves when the broker stored the forward


class ProduceRaw(Protocol):
    """``faust.types.ProducerT.send``: queue one record; the awaitable resolves on delivery."""

    async def __call__(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> Delivery: ...


class HomeForwarder:
    def __init__(
        self,
        produce: ProduceRaw,
        partition_count: Callable[[str], int],
        metrics: WorkerMetrics,
        ownership: Ownership,
    ) -> None:
        self.produce = produce
        self.partition_count = partition_count
        self.metrics = metrics
        self.ownership = ownership

    def home(self, topic: str, org_unit: str) -> int:
        return self.ownership.home(org_unit, self.partition_count(topic))

    async def forward(self, event: EventT, org_unit: str, home: int) -> Delivery:
        """Send the original bytes to the home partition of the same topic."""
        msg = event.message
        self.metrics.forwarded.labels(msg.topic).inc()
        origin = f"{msg.topic}/{msg.partition}/{msg.offset}".encode()
        return await self.produce(
            msg.topic,
            self.ownership.key(org_unit).encode("utf-8"),
            bytes(msg.value or b""),
            home,
            None,
            [(FORWARDED_FROM_HEADER, origin)],
        )
