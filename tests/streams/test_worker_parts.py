"""The worker's other parts in-process: shutdown, web answers, alert state, home partitions."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from contract.output_records import AlertEvent
from core.errors import UserError
from services.processes.supervised import free_port
from streams.alert_state import alert_events, restore_alert_state
from streams.app import WorkerApp
from streams.replay import RawMessage, read_topics_async
from streams.web import forecast_status_answer, ready_answer


def test_the_forecaster_s_spawn_pool_is_shut_down_when_the_app_stops(
    inprocess_worker: WorkerApp,
) -> None:
    pool = inprocess_worker.forecaster._pool
    assert isinstance(pool, ProcessPoolExecutor)
    context = pool._mp_context
    assert context is not None and context.get_start_method() == "spawn"
    assert pool.submit(int, "1").result(timeout=60) == 1  # a live pool (spawns a child)

    # What Faust runs when the worker stops (SIGTERM): App.on_stop sends on_before_shutdown.
    asyncio.run(asyncio.wait_for(inprocess_worker.app.on_stop(), timeout=30))

    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(int, "2")


def test_a_worker_that_has_not_recovered_its_table_is_not_ready(
    inprocess_worker: WorkerApp,
) -> None:
    assert ready_answer(inprocess_worker) == ({"ready": False, "partitions": []}, 503)
    inprocess_worker.ready = True  # state rebuilt, but Faust's recovery has not completed
    assert ready_answer(inprocess_worker)[1] == 503


def test_the_forecast_status_names_the_current_state_version(inprocess_worker: WorkerApp) -> None:
    answer = forecast_status_answer(inprocess_worker)
    assert answer["runs"] == 0
    assert answer["current_state_version"] == inprocess_worker.state.version
    assert answer["alerts_restored"] is False


def alert_record(status: str = "firing") -> bytes:
    alert = {
        "event_id": "deficit|1110|salaries|2025@1",
        "alert_id": "deficit|1110|salaries|2025",
        "sequence": 1,
        "rule": "deficit",
        "severity": "warning",
        "status": status,
        "org_unit": "1110",
        "org_unit_name": "Hemtjänst Norr",
        "level": "enhet",
        "category": "salaries",
        "period": "2025-03",
        "message": "Prognosen visar underskott.",
        "emitted_at": "2025-04-01T06:00:00+00:00",
    }
    return AlertEvent.model_validate(alert).model_dump_json().encode()


def test_alert_events_skip_unreadable_records() -> None:
    records = [RawMessage("alerts", alert_record()), RawMessage("alerts", b"{broken")]
    assert [e.alert_id for e in alert_events(records)] == ["deficit|1110|salaries|2025"]


def test_the_alert_state_is_restored_from_what_the_reader_returns(
    inprocess_worker: WorkerApp,
) -> None:
    calls: list[tuple[str, list[str]]] = []

    async def read(servers: str, topics: list[str]) -> list[RawMessage]:
        calls.append((servers, topics))
        if len(calls) == 1:
            raise UserError("broker not there yet")  # retried
        return [RawMessage("alerts", alert_record())]

    forecaster = inprocess_worker.forecaster
    asyncio.run(restore_alert_state(forecaster, "127.0.0.1:9", "alerts", 3, read))
    assert calls == [("127.0.0.1:9", ["alerts"])] * 2
    assert forecaster.status.alerts_restored
    firing = {"rule": "deficit", "severity": "warning", "org_unit": "1110"}
    registry = inprocess_worker.metrics.registry
    assert registry.get_sample_value("budgetvakt_alerts_firing", firing) == 1


def test_home_partition_murmur2_matches_the_java_client() -> None:
    """Partitions the Java client's default partitioner gives these keys of 1000 partitions."""
    from aiokafka.partitioner import murmur2

    from streams.aggregation import home_partition

    java = {b"": 681, b"a": 524, b"ab": 434, b"abc": 107, b"123456789": 566, b"\x00 ": 742}
    assert {key: (murmur2(key) & 0x7FFFFFFF) % 1000 for key in java} == java
    assert {key: home_partition(key.decode("utf-8"), 1000) for key in java if key != b"\x00 "} == {
        key: p for key, p in java.items() if key != b"\x00 "
    }


def test_the_async_reader_makes_an_unreachable_broker_a_user_error_within_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(UserError, match="cannot reach Kafka"):
        asyncio.run(
            read_topics_async(f"127.0.0.1:{free_port()}", ["a"], timeout_s=5, connect_timeout_s=2)
        )
    assert time.monotonic() - started < 15
