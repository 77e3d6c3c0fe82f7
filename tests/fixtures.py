"""Fixtures and helpers every area shares: the shipped configuration (loaded once per session;
read-only by convention: a test that needs a changed configuration builds its own copy) and a
reader of a whole Kafka topic."""

from __future__ import annotations

from typing import Any

import pytest

from core.domain import DomainConfig
from core.settings import DEFAULT_CONFIG_DIR
from services.config.domain import load_domain_config
from services.notifier.routing import Routing, load_routing
from services.processes.supervised import wait_until


@pytest.fixture(scope="session")
def domain() -> DomainConfig:
    """The shipped domain: config/domain.yaml (org tree, categories, measures)."""
    return load_domain_config(DEFAULT_CONFIG_DIR)


# The webhook URLs config/routing.yaml reads from the environment (fictional hosts).
SHIPPED_WEBHOOK_ENV = {
    "BUDGETVAKT_WEBHOOK_EKONOMI_ALDREOMSORG": "https://hooks.storvik.example/teams/ekonomi-aldreomsorg",
    "BUDGETVAKT_WEBHOOK_ARENDESYSTEM": "https://arende.storvik.example/api/budgetvakt",
}

# For a notifier process on the shipped routing whose webhooks no test watches: a local port that
# refuses (never a host outside this machine), so those deliveries fail fast and dead-letter.
REFUSING_WEBHOOK_ENV = {name: f"http://127.0.0.1:1/{name.lower()}" for name in SHIPPED_WEBHOOK_ENV}


@pytest.fixture(scope="session")
def routing(domain: DomainConfig) -> Routing:
    """The shipped alert routing: config/routing.yaml on the shipped org tree."""
    return load_routing(DEFAULT_CONFIG_DIR / "routing.yaml", domain.org, SHIPPED_WEBHOOK_ENV)


def records_on_topic(bootstrap_servers: str, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record on ``topic`` now, in partition order: read from the beginning up to the end
    offsets taken at the start. For topics whose producers have had every send acknowledged, so
    that nothing is in flight: then no idle wait is needed to know the topic is read to its end.
    """
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    try:
        partitions: set[int] | None = None

        def known() -> bool:
            nonlocal partitions
            partitions = consumer.partitions_for_topic(topic)
            return bool(partitions)

        wait_until(known, timeout_s, f"the partitions of {topic}")
        assert partitions is not None
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        end = consumer.end_offsets(assigned)
        records: list[Any] = []

        def read_to_end() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            return all(consumer.position(tp) >= end[tp] for tp in assigned)

        wait_until(read_to_end, timeout_s, f"{topic} read to its end offsets {end}")
        records.sort(key=lambda record: (record.partition, record.offset))
        return records
    finally:
        consumer.close()
