"""Broker fixtures: one embedded Tansu broker per test session, its log kept when a test fails."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.broker import EmbeddedBroker

KEPT_LOGS = Path("test-logs")


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
