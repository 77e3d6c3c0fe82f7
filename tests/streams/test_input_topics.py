"""streams.input_topics against the embedded broker (default count 4)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from core.errors import UserError
from streams.input_topics import ensure_input_topics
from tests.streams.fixtures import EmbeddedBroker

pytestmark = pytest.mark.integration


def partition_counts(bootstrap_servers: str, topics: list[str]) -> dict[str, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    async def describe() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
        await admin.start()
        try:
            return {d["topic"]: len(d["partitions"]) for d in await admin.describe_topics(topics)}
        finally:
            await admin.close()

    return asyncio.run(describe())


def test_missing_input_topics_are_created_with_the_configured_count(broker: EmbeddedBroker) -> None:
    prefix = uuid.uuid4().hex[:8]
    topics = [f"{prefix}.cost", f"{prefix}.budget"]
    assert sorted(ensure_input_topics(broker.bootstrap_servers, topics, 12)) == sorted(topics)
    assert partition_counts(broker.bootstrap_servers, topics) == dict.fromkeys(topics, 12)
    assert ensure_input_topics(broker.bootstrap_servers, topics, 12) == []  # a second worker


def test_an_input_topic_with_another_count_is_refused_naming_it(broker: EmbeddedBroker) -> None:
    prefix = uuid.uuid4().hex[:8]
    first_use = f"{prefix}.budget"  # as a producer's first send creates it: the broker's default
    ensure_input_topics(broker.bootstrap_servers, [first_use], 4)
    with pytest.raises(UserError) as refused:
        ensure_input_topics(broker.bootstrap_servers, [f"{prefix}.cost", first_use], 12)
    message = str(refused.value)
    assert f"{first_use} has 4" in message
    assert "BUDGETVAKT_TOPIC_PARTITIONS=12" in message
    assert f"{prefix}.cost has" not in message  # created with 12 before the check
