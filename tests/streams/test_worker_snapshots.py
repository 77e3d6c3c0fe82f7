"""Snapshots written by a real worker on period close: contents, late events, re-close versions."""

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

pytestmark = pytest.mark.integration

LATE_AMOUNT = 1_000_000


def _snapshots(worker: WorkerProcess) -> list[str]:
    with urllib.request.urlopen(worker.url("/forecasts/status"), timeout=5) as resp:
        snapshots: list[str] = json.loads(resp.read())["snapshots"]
    return snapshots


def _close(event_id: str, period: str) -> dict[str, Any]:
    return {"event_id": event_id, "type": "period_close", "org_unit": "VON", "period": period}


def test_close_snapshots_late_event_shows_in_the_next_version(stream_case: StreamCase) -> None:
    from services.snapshots.store import load_late_events, load_snapshot, make_engine

    scn = generate_scenario(seed=3)
    costs = [c for c in scn.costs if c["period"] <= "2024-03"]
    worker = stream_case.start_worker()
    stream_case.publish("budget", scn.budgets)
    stream_case.publish("cost", costs)
    wait_until(
        lambda: (
            sum_metric(worker.samples(), "budgetvakt_events_total", outcome="accepted")
            == len(scn.budgets) + len(costs)
        ),
        60,
        "budgets and costs accepted",
    )
    stream_case.publish("period_close", [_close("close-1", "2024-03")])
    wait_until(lambda: _snapshots(worker) == ["2024-03"], 60, "the March snapshot")

    engine = make_engine(f"sqlite:///{worker.data_dir / 'budgetvakt.sqlite'}")
    first = load_snapshot(engine, "2024-03")
    assert first is not None and first.version == 1 and first.trigger == "period_close"
    assert first.late_event_count == 0
    namnd = first.forecast.get("VON", TOTAL)
    assert namnd is not None and namnd.as_of_month == 3
    assert namnd.actual_ytd == pytest.approx(
        sum(c["amount_sek"] for c in costs if c["period"] >= "2024-01"), abs=0.5
    )

    late = {
        "event_id": "late-1110-2024-02",
        "type": "cost",
        "org_unit": "1110",
        "period": "2024-02",
        "category": "salaries",
        "amount_sek": LATE_AMOUNT,
    }
    stream_case.publish("cost", [late])
    wait_until(lambda: len(load_late_events(engine)) == 1, 60, "the late event recorded")
    assert sum_metric(worker.samples(), "budgetvakt_late_events_total") == 1
    [pending] = load_late_events(engine)
    assert (pending.event_id, pending.period) == ("late-1110-2024-02", "2024-02")

    stream_case.publish("period_close", [_close("close-2", "2024-03")])
    wait_until(lambda: _snapshots(worker) == ["2024-03", "2024-03"], 60, "the second version")
    second = load_snapshot(engine, "2024-03")
    assert second is not None and second.version == 2 and second.late_event_count == 1
    again = second.forecast.get("VON", TOTAL)
    assert again is not None
    assert again.actual_ytd == pytest.approx(namnd.actual_ytd + LATE_AMOUNT, abs=0.5)
    unchanged = load_snapshot(engine, "2024-03", version=1)
    assert unchanged is not None
    assert unchanged.forecast.get("VON", TOTAL) == namnd
    assert not load_late_events(engine)  # taken by version 2, pending no more
