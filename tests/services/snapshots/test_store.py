"""The snapshot store on SQLite and on a private PostgreSQL: round trip, immutability, versions,
late events, roll-ups. Every test runs on both databases (fixture ``store_engine``)."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from forecasts.live import TOTAL, OrganisationForecast, forecast_organisation
from services.snapshots import (
    load_late_events,
    load_snapshot,
    load_snapshots,
    make_engine,
    record_late_event,
    upgrade,
    write_snapshot,
)
from services.snapshots.models import SnapshotRecord, SnapshotRowRecord
from streams.aggregation import leaf_series
from tests.services.snapshots.fixtures import DB_AS_OF, DB_YEAR, ForecastCase, forecast_as_of

PERIOD = f"{DB_YEAR}-{DB_AS_OF:02d}"


def stored_rows(engine: Engine, snapshot_id: int) -> list[SnapshotRowRecord]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(SnapshotRowRecord)
                .where(SnapshotRowRecord.snapshot_id == snapshot_id)
                .order_by(SnapshotRowRecord.id)
            )
        )


def runrate_forecast(case: ForecastCase) -> OrganisationForecast:
    leaves, _ = leaf_series(case.items.items(), DB_YEAR)
    return forecast_organisation(leaves, case.domain, DB_YEAR, DB_AS_OF, model="runrate")


def test_write_and_load_round_trip_is_equal(store_engine: Engine, forecast_case: ForecastCase):
    forecast = forecast_case.forecast
    before = datetime.now(UTC)
    written = write_snapshot(
        store_engine,
        forecast,
        period=PERIOD,
        trigger="period_close",
        checkpoint="mars",
        org=forecast_case.domain.org,
    )
    loaded = load_snapshot(store_engine, PERIOD)
    assert loaded is not None
    assert loaded.forecast == forecast  # every node, every float, every array, in order
    assert loaded.forecast is not forecast
    assert (loaded.id, loaded.period, loaded.version) == (written.id, PERIOD, 1)
    assert (loaded.checkpoint, loaded.trigger, loaded.late_event_count) == (
        "mars",
        "period_close",
        0,
    )
    assert loaded.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= loaded.created_at <= datetime.now(UTC)
    assert loaded.created_at == written.created_at
    assert [s.id for s in load_snapshots(store_engine, DB_YEAR)] == [written.id]
    assert load_snapshots(store_engine, DB_YEAR + 1) == []
    assert load_snapshot(store_engine, "2024-04") is None
    assert load_snapshot(store_engine, PERIOD, version=2) is None


def test_rows_carry_names_parents_and_the_derived_figures(
    store_engine: Engine, forecast_case: ForecastCase
):
    forecast = forecast_case.forecast
    written = write_snapshot(
        store_engine,
        forecast,
        period=PERIOD,
        trigger="cli",
        org=forecast_case.domain.org,
        org_names={"1110": "Hemtjänst Norr (omdöpt)"},
    )
    rows = {(r.org_unit, r.kind, r.category): r for r in stored_rows(store_engine, written.id)}
    assert len(rows) == len(forecast.nodes)
    for node in forecast.nodes:
        row = rows[(node.org_unit, node.kind, node.category)]
        assert row.budget_full_year == node.budget_full_year
        assert row.budget_ytd == node.budget_ytd
        assert row.actual_ytd == node.actual_ytd
        assert row.deviation == node.deviation
        assert len(row.actual_monthly) == DB_AS_OF
        assert len(row.path) == 12 - DB_AS_OF
    root = rows[("VON", "cost", TOTAL)]
    assert (root.org_unit_name, root.level, root.parent_org_unit) == (
        "Vård- och omsorgsnämnden",
        "namnd",
        None,
    )
    unit = rows[("1110", "cost", "salaries")]
    assert (unit.org_unit_name, unit.level, unit.parent_org_unit) == (
        "Hemtjänst Norr (omdöpt)",
        "enhet",
        "AO",
    )
    assert rows[("AO", "cost", TOTAL)].parent_org_unit == "VOF"


def test_roll_ups_reconcile_in_the_stored_rows(store_engine: Engine, forecast_case: ForecastCase):
    written = write_snapshot(
        store_engine,
        forecast_case.forecast,
        period=PERIOD,
        trigger="cli",
        org=forecast_case.domain.org,
    )
    # Scalars in SQL, as a report would query them: children summed per parent and category.
    with store_engine.connect() as connection:
        sums = connection.execute(
            text(
                "SELECT parent_org_unit, kind, category, SUM(full_year), SUM(actual_ytd), "
                "SUM(budget_full_year), COUNT(*) FROM snapshot_row "
                "WHERE snapshot_id = :id AND parent_org_unit IS NOT NULL "
                "GROUP BY parent_org_unit, kind, category"
            ),
            {"id": written.id},
        ).all()
    rows = {(r.org_unit, r.kind, r.category): r for r in stored_rows(store_engine, written.id)}
    assert len(sums) > 50
    for parent, kind, category, full_year, actual_ytd, budget, children in sums:
        row = rows[(parent, kind, category)]
        assert children >= 1
        assert math.isclose(row.full_year, full_year, rel_tol=1e-9, abs_tol=1e-3)
        assert math.isclose(row.actual_ytd, actual_ytd, rel_tol=1e-9, abs_tol=1e-3)
        if row.budget_full_year is not None:
            assert math.isclose(row.budget_full_year, budget, rel_tol=1e-9, abs_tol=1e-3)
    # The monthly arrays too, and a nämnd's total is the sum of its cost categories.
    children_of: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for row in rows.values():
        if row.parent_org_unit is not None:
            children_of[(row.parent_org_unit, row.kind, row.category)].append(row)
    for key, children in children_of.items():
        parent = rows[key]
        for field in ("actual_monthly", "path"):
            summed = [
                math.fsum(values)
                for values in zip(*(getattr(c, field) for c in children), strict=True)
            ]
            for got, expected in zip(getattr(parent, field), summed, strict=True):
                assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-3), (key, field)
    total = rows[("VON", "cost", TOTAL)]
    categories = [r for k, r in rows.items() if k[0] == "VON" and k[1] == "cost" and k[2] != TOTAL]
    assert len(categories) >= 10
    assert math.isclose(total.full_year, math.fsum(r.full_year for r in categories), rel_tol=1e-12)
    assert total.budget_full_year is not None
    assert math.isclose(
        total.budget_full_year,
        math.fsum(r.budget_full_year or 0.0 for r in categories),
        rel_tol=1e-12,
    )


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE snapshot SET checkpoint = 'ändrad'",
        "UPDATE snapshot SET late_event_count = late_event_count + 1",
        "DELETE FROM snapshot",
        "UPDATE snapshot_row SET full_year = 0",
        "UPDATE snapshot_row SET path = NULL",
        "DELETE FROM snapshot_row",
    ],
)
def test_frozen_snapshots_reject_update_and_delete_in_the_database(
    store_engine: Engine, forecast_case: ForecastCase, statement: str
):
    written = write_snapshot(store_engine, forecast_case.forecast, period=PERIOD, trigger="cli")
    with pytest.raises(IntegrityError, match="immutable"), store_engine.begin() as connection:
        connection.execute(text(statement))
    loaded = load_snapshot(store_engine, PERIOD)
    assert loaded is not None
    assert loaded.checkpoint is None and loaded.late_event_count == 0
    assert loaded.forecast == forecast_case.forecast
    assert loaded.id == written.id


def test_orm_changes_to_a_snapshot_fail_too(store_engine: Engine, forecast_case: ForecastCase):
    written = write_snapshot(store_engine, forecast_case.forecast, period=PERIOD, trigger="cli")
    with Session(store_engine) as session:
        record = session.get(SnapshotRecord, written.id)
        assert record is not None
        record.version = 7
        with pytest.raises(IntegrityError, match="immutable"):
            session.commit()
    with Session(store_engine) as session:
        record = session.get(SnapshotRecord, written.id)
        assert record is not None
        session.delete(record)
        with pytest.raises(IntegrityError):  # the rows' foreign key or the trigger
            session.commit()
    assert load_snapshot(store_engine, PERIOD, version=1) is not None


@pytest.mark.integration
def test_truncate_is_rejected_on_postgresql(postgres_url: str, forecast_case: ForecastCase):
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        write_snapshot(engine, forecast_case.forecast, period=PERIOD, trigger="cli")
        for table in ("snapshot_row", "snapshot"):
            with pytest.raises(IntegrityError, match="immutable"), engine.begin() as connection:
                connection.execute(text(f"TRUNCATE {table} CASCADE"))
        loaded = load_snapshot(engine, PERIOD)
        assert loaded is not None and loaded.forecast == forecast_case.forecast
    finally:
        engine.dispose()


def test_a_reclosed_period_gets_version_2_and_version_1_is_unchanged(
    store_engine: Engine, forecast_case: ForecastCase
):
    first_forecast = forecast_case.forecast
    second_forecast = runrate_forecast(forecast_case)
    assert second_forecast != first_forecast
    first = write_snapshot(
        store_engine, first_forecast, period=PERIOD, trigger="period_close", checkpoint="mars"
    )
    second = write_snapshot(
        store_engine, second_forecast, period=PERIOD, trigger="period_close", checkpoint="mars"
    )
    assert (first.version, second.version) == (1, 2)
    assert second.id != first.id
    version_1 = load_snapshot(store_engine, PERIOD, version=1)
    latest = load_snapshot(store_engine, PERIOD)
    assert version_1 is not None and latest is not None
    assert version_1.forecast == first_forecast
    assert version_1.created_at == first.created_at
    assert latest.version == 2 and latest.forecast == second_forecast
    assert [(s.period, s.version) for s in load_snapshots(store_engine, DB_YEAR)] == [(PERIOD, 2)]
    everything = load_snapshots(store_engine, DB_YEAR, latest_version_only=False)
    assert [(s.period, s.version) for s in everything] == [(PERIOD, 1), (PERIOD, 2)]


def test_snapshots_of_a_year_are_ordered_by_period(
    store_engine: Engine, forecast_case: ForecastCase
):
    april = forecast_as_of(forecast_case, 4)
    write_snapshot(store_engine, april, period=f"{DB_YEAR}-04", trigger="period_close")
    write_snapshot(store_engine, forecast_case.forecast, period=PERIOD, trigger="period_close")
    write_snapshot(store_engine, april, period=f"{DB_YEAR}-04", trigger="cli")
    loaded = load_snapshots(store_engine, DB_YEAR)
    assert [(s.period, s.version) for s in loaded] == [(PERIOD, 1), (f"{DB_YEAR}-04", 2)]
    assert loaded[1].forecast == april
    assert loaded[1].forecast.as_of_month == 4


def test_late_events_are_counted_in_the_next_snapshot_and_never_twice(
    store_engine: Engine, forecast_case: ForecastCase
):
    def late(event_id: str, amount: float | None = 1500.0) -> bool:
        return record_late_event(
            store_engine,
            event_id=event_id,
            org_unit="1110",
            period="2024-02",
            type="cost",
            amount=amount,
        )

    assert late("late-1") is True
    assert late("late-2", None) is True
    assert late("late-1") is False  # re-sent: recorded once
    assert [e.event_id for e in load_late_events(store_engine)] == ["late-1", "late-2"]
    first = write_snapshot(store_engine, forecast_case.forecast, period=PERIOD, trigger="cli")
    assert first.late_event_count == 2
    taken = load_late_events(store_engine, first.id)
    assert [(e.event_id, e.amount, e.included_in_snapshot_id) for e in taken] == [
        ("late-1", 1500.0, first.id),
        ("late-2", None, first.id),
    ]
    assert load_late_events(store_engine) == []
    assert late("late-2") is False  # already taken: not pending again
    second = write_snapshot(store_engine, forecast_case.forecast, period=PERIOD, trigger="cli")
    assert second.late_event_count == 0
    assert late("late-3") is True
    third = write_snapshot(store_engine, forecast_case.forecast, period=PERIOD, trigger="cli")
    assert third.late_event_count == 1
    assert [e.event_id for e in load_late_events(store_engine, third.id)] == ["late-3"]
    # The database itself keeps a taken late event where it is.
    with pytest.raises(IntegrityError, match="late_event"), store_engine.begin() as connection:
        connection.execute(
            text("UPDATE late_event SET included_in_snapshot_id = :id WHERE event_id = 'late-1'"),
            {"id": third.id},
        )
    with pytest.raises(IntegrityError, match="late_event"), store_engine.begin() as connection:
        connection.execute(text("DELETE FROM late_event WHERE event_id = 'late-3'"))
    assert [e.event_id for e in load_late_events(store_engine, first.id)] == ["late-1", "late-2"]


@pytest.mark.parametrize("late_events", [0, 1])
def test_concurrent_writers_get_distinct_versions_and_late_events_once(
    store_engine: Engine, forecast_case: ForecastCase, late_events: int
):
    # With a pending late event the writers queue on its row lock (PostgreSQL); without one they
    # race for the version number and the loser retries on the unique constraint.
    for index in range(late_events):
        assert record_late_event(
            store_engine,
            event_id=f"late-{index}",
            org_unit="2110",
            period="2024-01",
            type="cost",
            amount=9.0,
        )
    results: list[Any] = []
    errors: list[BaseException] = []

    def write() -> None:
        try:
            results.append(
                write_snapshot(store_engine, forecast_case.forecast, period=PERIOD, trigger="cli")
            )
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(s.version for s in results) == [1, 2, 3, 4]
    assert sum(s.late_event_count for s in results) == late_events


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"period": "2024-3", "trigger": "cli"}, "YYYY-MM"),
        ({"period": "2024-13", "trigger": "cli"}, "YYYY-MM"),
        ({"period": PERIOD, "trigger": "manual"}, "trigger"),
        ({"period": "2025-03", "trigger": "cli"}, "2025"),
        ({"period": PERIOD, "trigger": "cli", "checkpoint": "x" * 33}, "checkpoint"),
    ],
)
def test_write_snapshot_rejects_bad_arguments(
    store_engine: Engine, forecast_case: ForecastCase, kwargs: dict[str, Any], message: str
):
    with pytest.raises(ValueError, match=message):
        write_snapshot(store_engine, forecast_case.forecast, **kwargs)
    assert load_snapshots(store_engine, DB_YEAR, latest_version_only=False) == []


def test_a_non_finite_value_writes_nothing(store_engine: Engine, forecast_case: ForecastCase):
    nodes = list(forecast_case.forecast.nodes)
    nodes[5] = replace(nodes[5], path=(math.nan,) * len(nodes[5].path))
    broken = OrganisationForecast(DB_YEAR, DB_AS_OF, nodes)
    with pytest.raises(ValueError, match="finite"):
        write_snapshot(store_engine, broken, period=PERIOD, trigger="cli")
    assert load_snapshots(store_engine, DB_YEAR, latest_version_only=False) == []
    ok = write_snapshot(store_engine, forecast_case.forecast, period=PERIOD, trigger="cli")
    assert ok.version == 1  # the failed attempt used no version number
