"""Live forecasts in a real worker: gauges, forecast.v1 events, restore after a restart."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from forecasts.live import TOTAL
from services.demo.scenario import generate_scenario
from services.processes.scrape import sum_metric
from services.processes.supervised import wait_until
from tests.streams.fixtures import StreamCase, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

YEAR = 2024


def _status(worker: WorkerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(worker.url("/forecasts/status"), timeout=5) as resp:
        status: dict[str, Any] = json.loads(resp.read())
    return status


def _forecast_as_of(worker: WorkerProcess, month: int) -> bool:
    """The worker's forecast is as of ``month`` and has seen the state as it is now."""
    status = _status(worker)
    year = status["years"].get(str(YEAR))
    current = status["state_version"] == status["current_state_version"]
    return current and year is not None and year["as_of_month"] == month


def _months(events: list[dict[str, Any]], last: int) -> list[dict[str, Any]]:
    return [e for e in events if e["period"] <= f"{YEAR}-{last:02d}"]


def _forecast_events(case: StreamCase) -> list[dict[str, Any]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        case.topics["forecast"],
        bootstrap_servers=case.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        group_id=None,
    )
    try:
        return [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()


def test_worker_forecasts_every_node_publishes_changes_and_restores_after_restart(
    stream_case: StreamCase,
) -> None:
    scn = generate_scenario(seed=11)
    worker = stream_case.start_worker()
    stream_case.publish("budget", scn.budgets)
    stream_case.publish("cost", _months(scn.costs, 3))
    stream_case.publish("volume", _months(scn.volumes, 3))
    wait_until(
        lambda: (
            sum_metric(worker.samples(), "budgetvakt_events_total", outcome="accepted")
            == len(scn.budgets) + len(_months(scn.costs, 3)) + len(_months(scn.volumes, 3))
        ),
        60,
        "every event accepted",
    )
    wait_until(lambda: _forecast_as_of(worker, 3), 90, "the forecast of the final state")
    first = {
        (labels["org_unit"], labels["category"], labels["year"], name): value
        for name, labels, value in worker.samples()
        if name.startswith("budgetvakt_forecast_") and "category" in labels
    }
    namnd = first[("VON", TOTAL, str(YEAR), "budgetvakt_forecast_full_year_sek")]
    avdelningar = sum(
        first[(unit, TOTAL, str(YEAR), "budgetvakt_forecast_full_year_sek")]
        for unit in ("AO", "LSS", "IFO")
    )
    assert namnd == pytest.approx(avdelningar, rel=1e-9)
    budget = sum_metric(
        worker.samples(), "budgetvakt_budget_full_year_sek", org_unit="VON", year=str(YEAR)
    )
    deviation = first[("VON", TOTAL, str(YEAR), "budgetvakt_forecast_deviation_sek")]
    assert deviation == pytest.approx(budget - namnd, rel=1e-6)
    low = first[("VON", TOTAL, str(YEAR), "budgetvakt_forecast_low_sek")]
    high = first[("VON", TOTAL, str(YEAR), "budgetvakt_forecast_high_sek")]
    assert low < namnd < high

    published = [
        e
        for e in _forecast_events(stream_case)
        if e["org_unit"] == "VON" and e["category"] == TOTAL
    ]
    latest = [e for e in published if e["as_of"] == f"{YEAR}-03"][-1]
    assert latest["full_year"] == pytest.approx(namnd, rel=1e-9)
    assert latest["level"] == "namnd" and latest["preliminary"] is False

    worker.stop()
    restarted = stream_case.start_worker(data_dir=worker.data_dir)
    wait_until(lambda: _forecast_as_of(restarted, 3), 90, "the forecast again after the restart")
    again = {
        (labels["org_unit"], labels["category"], labels["year"], name): value
        for name, labels, value in restarted.samples()
        if name.startswith("budgetvakt_forecast_") and "category" in labels
    }
    assert again == pytest.approx(first, rel=1e-9)
