"""The demo's follow-up step against a real ``budgetvakt web`` on a seeded SQLite store: what the
chefs and the controller do through the API lands in the follow-up tables, approved."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.demo.followup import run_follow_up, start_web
from services.followup.read import audit_trail, load_follow_up
from services.processes.supervised import port_open
from services.snapshots import make_engine, write_snapshot
from tests.services.followup.fixtures import PERIOD
from tests.services.snapshots.fixtures import ForecastCase


@pytest.mark.integration
def test_follow_up_comments_adjusts_and_approves_through_the_api(
    tmp_path: Path, sqlite_url: str, forecast_case: ForecastCase
) -> None:
    from services.snapshots import upgrade

    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    write_snapshot(
        engine,
        forecast_case.forecast,
        period=PERIOD,
        trigger="period_close",
        org=forecast_case.domain.org,
    )
    web = start_web(sqlite_url, 0, tmp_path / "web.log")
    try:
        result = run_follow_up(engine, web, forecast_case.domain, PERIOD)
        assert result.url.endswith(f"/perioder/{PERIOD}/noder/AO")
        assert result.approved == ["AO", "LSS", "IFO", "VOF", "VON"]
        port = int(result.url.split(":")[2].split("/")[0])
        assert port_open("127.0.0.1", port)
    finally:
        web.stop()
    nodes = load_follow_up(engine, PERIOD).nodes
    ao = nodes["AO"]
    assert ao.comment_by == "eva-sandberg" and "Underskottet" in (ao.comment or "")
    assert [(m.status, m.amount_sek) for m in ao.measures] == [("beslutad", 4_000_000.0)]
    model = next(
        n.full_year
        for n in forecast_case.forecast.nodes
        if n.org_unit == "AO" and n.kind == "cost" and n.category == "total"
    )
    assert ao.adjusted_full_year_sek == pytest.approx(model - 4_000_000.0 / 3)
    assert nodes["1110"].comment_by == "karin-holm"
    for unit in result.approved:
        approval = nodes[unit].approval
        assert approval is not None and approval.approved_by == "erik-sjoberg"
        assert approval.snapshot_version == 1  # nothing changed after the approvals
    assert {e.username for e in audit_trail(engine, PERIOD)} == {
        "eva-sandberg",
        "karin-holm",
        "erik-sjoberg",
    }
    engine.dispose()
