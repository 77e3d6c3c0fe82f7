"""Read a topic from its beginning to its current end, outside any consumer group.

The worker rebuilds its alert state from ``budgetvakt.alert.v1`` this way at start. On Tansu the
reported end offset is too low after a multi-record batch (brief §5); the worker therefore sends
alert events one per produce batch, and this reader takes one more fetch after reaching the end.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

FETCH_MS = 200


async def read_to_end(
    bootstrap_servers: str, topic: str, timeout_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` now, in offset order per partition; [] if it does not exist."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers.split(","),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + timeout_s
        while not await _at_end(consumer, ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} to its end took more than {timeout_s} s")
            for part_records in (await consumer.getmany(*partitions, timeout_ms=FETCH_MS)).values():
                records.extend(part_records)
        # One more fetch: records past a too-low end offset (Tansu, see the module doc).
        for part_records in (await consumer.getmany(*partitions, timeout_ms=FETCH_MS)).values():
            records.extend(part_records)
        return records
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    known = consumer.partitions_for_topic(topic)
    if known is None:
        await consumer._client.force_metadata_update()  # a fresh client knows no topics yet
        known = consumer.partitions_for_topic(topic)
    return [TopicPartition(topic, p) for p in sorted(known or ())]


async def _at_end(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await asyncio.wait_for(consumer.position(tp), timeout=10) < end:
            return False
    return True
