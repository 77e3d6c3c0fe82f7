"""streams.replay.read_topics_async (aiokafka, used by the worker) on the embedded broker."""

from __future__ import annotations

import asyncio
import json

import pytest

from streams.replay import read_topics, read_topics_async
from tests.streams.fixtures import StreamCase
from tests.streams.inprocess import cost_event

pytestmark = pytest.mark.integration


def test_reads_every_record_past_the_broker_s_end_offset_like_the_blocking_reader(
    stream_case: StreamCase,
) -> None:
    """Batched produces make Tansu's end offset too low (brief §5); nothing may be missed."""
    costs = [cost_event(f"c{i}", org_unit=("1110", "2110", "3130")[i % 3]) for i in range(3000)]
    stream_case.publish("cost", costs)  # linger 5 ms: many records per batch
    topics = [stream_case.topics["cost"], "no-such-topic-yet"]

    messages = asyncio.run(read_topics_async(stream_case.bootstrap_servers, topics, timeout_s=60))

    read_ids = sorted(json.loads(m.value or b"")["event_id"] for m in messages)
    assert read_ids == sorted(e["event_id"] for e in costs)
    assert {m.topic for m in messages} == {stream_case.topics["cost"]}
    blocking = read_topics(stream_case.bootstrap_servers, topics, timeout_s=60)
    assert sorted(m.value or b"" for m in blocking) == sorted(m.value or b"" for m in messages)
