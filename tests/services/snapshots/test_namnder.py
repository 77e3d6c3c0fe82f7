"""Snapshots of a kommun with two nämnder (fixture ``kommun_case``): versions count per nämnd and
period, reads name the nämnd, late events go to their own nämnd's next snapshot, and the worker's
adapter (``services.worker.SnapshotStore``) writes one owner at a time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine

from forecasts.live import OrganisationForecast
from services.snapshots.store import (
    SeveralNamnder,
    load_late_events,
    load_snapshot,
    load_snapshots,
    record_late_event,
    snapshot_namnder,
    snapshot_periods,
    write_snapshot,
)
from services.worker import SnapshotStore
from tests.services.snapshots.fixtures import DB_AS_OF, DB_YEAR, KommunCase

PERIOD = f"{DB_YEAR}-{DB_AS_OF:02d}"


def _write(engine: Engine, case: KommunCase, owner: str, period: str = PERIOD) -> int:
    return write_snapshot(
        engine, case.forecasts[owner], period=period, trigger="period_close", org=case.domain.org
    ).version


def test_two_namnder_closing_the_same_month_each_get_version_1(
    store_engine: Engine, kommun_case: KommunCase
) -> None:
    assert _write(store_engine, kommun_case, "VON") == 1
    assert _write(store_engine, kommun_case, "BUN") == 1
    assert _write(store_engine, kommun_case, "BUN") == 2  # BUN re-closed; VON untouched
    assert snapshot_namnder(store_engine) == ["BUN", "VON"]

    von = load_snapshot(store_engine, PERIOD, namnd="VON")
    bun = load_snapshot(store_engine, PERIOD, namnd="BUN")
    assert von is not None and bun is not None
    assert (von.namnd, von.version, bun.namnd, bun.version) == ("VON", 1, "BUN", 2)
    assert von.forecast == kommun_case.forecasts["VON"]
    assert bun.forecast == kommun_case.forecasts["BUN"]
    assert {n.org_unit for n in bun.forecast.nodes} == {"BUN", "BUF", "BFS"} | {
        f"B{u}" for u in ("1110", "1120", "1210", "1220")
    }
    first = load_snapshot(store_engine, PERIOD, 1, namnd="BUN")
    assert first is not None and first.version == 1
    assert [s.version for s in load_snapshots(store_engine, DB_YEAR, False, namnd="BUN")] == [1, 2]
    assert load_snapshot(store_engine, PERIOD, namnd="SN") is None
    with pytest.raises(SeveralNamnder, match="2 nämnder \\(BUN, VON\\)"):
        load_snapshot(store_engine, PERIOD)
    with pytest.raises(SeveralNamnder):
        load_snapshots(store_engine, DB_YEAR)


def test_periods_per_namnd(store_engine: Engine, kommun_case: KommunCase) -> None:
    _write(store_engine, kommun_case, "VON")
    earlier = {o: replace(f, as_of_month=2) for o, f in kommun_case.forecasts.items()}
    write_snapshot(store_engine, earlier["BUN"], period=f"{DB_YEAR}-02", trigger="cli")
    assert snapshot_periods(store_engine, namnd="VON") == {PERIOD}
    assert snapshot_periods(store_engine, namnd="BUN") == {f"{DB_YEAR}-02"}
    assert snapshot_periods(store_engine, namnd="omappad") == set()
    assert snapshot_periods(store_engine) == {PERIOD, f"{DB_YEAR}-02"}


def test_a_late_event_waits_for_its_own_namnds_snapshot(
    store_engine: Engine, kommun_case: KommunCase
) -> None:
    for event_id, unit, owner in (("late-b", "B1110", "BUN"), ("late-v", "1110", "VON")):
        record_late_event(
            store_engine,
            event_id=event_id,
            org_unit=unit,
            period=f"{DB_YEAR}-01",
            type="cost",
            amount=100.0,
            namnd=owner,
        )
    von = write_snapshot(
        store_engine, kommun_case.forecasts["VON"], period=PERIOD, trigger="period_close"
    )
    assert von.late_event_count == 1
    assert [e.event_id for e in load_late_events(store_engine, von.id)] == ["late-v"]
    assert [(e.event_id, e.namnd) for e in load_late_events(store_engine)] == [("late-b", "BUN")]
    bun = write_snapshot(
        store_engine, kommun_case.forecasts["BUN"], period=PERIOD, trigger="period_close"
    )
    assert [e.event_id for e in load_late_events(store_engine, bun.id)] == ["late-b"]


def test_a_forecast_of_several_namnder_is_refused(
    store_engine: Engine, kommun_case: KommunCase
) -> None:
    both = OrganisationForecast(
        DB_YEAR,
        DB_AS_OF,
        [*kommun_case.forecasts["VON"].nodes, *kommun_case.forecasts["BUN"].nodes],
    )
    with pytest.raises(ValueError, match=r"2 top nodes \(BUN, VON\).*split_by_owner"):
        write_snapshot(store_engine, both, period=PERIOD, trigger="cli")
    assert snapshot_namnder(store_engine) == []


def test_the_worker_adapter_writes_one_owner_and_lists_its_periods(
    migrated_url: str, kommun_case: KommunCase, tmp_path: Path
) -> None:
    settings = SimpleNamespace(
        database_url_or_default=lambda: migrated_url,
        database_configured=True,
        config_dir=kommun_case.config_dir,
        forecast_model="auto",
    )
    store = SnapshotStore(settings, kommun_case.domain)
    try:
        stored = store.write(kommun_case.forecasts["BUN"], PERIOD)
        assert (stored.namnd, stored.version, stored.checkpoint) == ("BUN", 1, "mars")
        assert store.periods("BUN") == {PERIOD}
        assert store.periods("VON") == set()
        # A forecast of the whole organisation (the loop before nämnd ownership): one per owner.
        whole = OrganisationForecast(
            DB_YEAR,
            DB_AS_OF,
            [*kommun_case.forecasts["VON"].nodes, *kommun_case.forecasts["BUN"].nodes],
        )
        written = store.write(whole, PERIOD)
        assert [(s.namnd, s.version) for s in written] == [("VON", 1), ("BUN", 2)]
        late = SimpleNamespace(
            event_id="e-late", org_unit="B1120", period=f"{DB_YEAR}-01", type="cost", amount_sek=5.0
        )
        store.record_late_events([late])
        assert [e.namnd for e in load_late_events(store.engine)] == ["BUN"]
    finally:
        store.engine.dispose()
