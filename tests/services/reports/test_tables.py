"""The report's tables reconcile with each other and with the snapshots they come from."""

from __future__ import annotations

import math

import pytest

from forecasts.live import TOTAL
from services.reports.tables import (
    KEY_RATIOS,
    STAFF_CATEGORIES,
    STAFF_SUM,
    Report,
    Table,
    build_report,
    choose_compared,
    snapshot_label,
)
from tests.services.reports.fixtures import ReportCase, stored

AVDELNINGAR = ("AO", "LSS", "IFO")
MNKR = 1e6


def _number(table: Table, org_unit: str, key: str, category: str | None = None) -> float:
    value = table.value(table.find(org_unit, category), key)
    assert isinstance(value, float), (org_unit, key, value)
    return value


def test_driftredovisning_rows_are_the_snapshot_rows(
    august_report: Report, report_case: ReportCase
) -> None:
    table = august_report.table("driftredovisning")
    forecast = report_case.snapshots[8].forecast
    # One förvaltning under the nämnd: one row for both, not two identical rows.
    assert [r.org_unit for r in table.rows] == [*AVDELNINGAR, "VON"]
    assert (
        table.value(table.rows[-1], "verksamhet")
        == "Summa Vård- och omsorgsnämnden (= förvaltningen)"
    )
    for row in table.rows:
        node = forecast.get(row.org_unit or "", TOTAL)
        assert node is not None and node.budget_full_year is not None
        expected = {
            "budget": node.budget_full_year,
            "budget_ytd": node.budget_ytd,
            "utfall": node.actual_ytd,
            "prognos_modell": node.full_year,
            "prognos": node.full_year,  # förvaltningens = the model's without adjustments
            "low": node.low,
            "high": node.high,
        }
        for key, sek in expected.items():
            assert table.value(row, key) == pytest.approx(sek / MNKR, rel=1e-12), key


def test_driftredovisning_reconciles(august_report: Report) -> None:
    table = august_report.table("driftredovisning")
    for key in ("budget", "budget_ytd", "utfall", "prognos_modell", "prognos", "avvikelse"):
        parts = math.fsum(_number(table, avd, key) for avd in AVDELNINGAR)
        assert _number(table, "VON", key) == pytest.approx(parts, abs=1e-6), key
    for row in table.rows:
        budget, prognos = table.value(row, "budget"), table.value(row, "prognos")
        deviation, pct = table.value(row, "avvikelse"), table.value(row, "avvikelse_pct")
        assert isinstance(budget, float) and isinstance(prognos, float)
        assert deviation == pytest.approx(budget - prognos, abs=1e-9)
        assert pct == pytest.approx(100 * (budget - prognos) / budget, abs=1e-9)
        low, high = table.value(row, "low"), table.value(row, "high")
        assert isinstance(low, float) and isinstance(high, float)
        assert low < prognos < high
    # The designed overrun: äldreomsorg in deficit, the nämnd too (about −4 %).
    assert _number(table, "AO", "avvikelse") < -20
    assert -6 < _number(table, "VON", "avvikelse_pct") < -2


def test_personalkostnader_reconcile_per_category_and_sum(
    august_report: Report, report_case: ReportCase
) -> None:
    table = august_report.table("personalkostnader")
    forecast = report_case.snapshots[8].forecast
    assert {r.org_unit for r in table.rows} == {*AVDELNINGAR, "VON"}
    # The scenario has no agency staff: the category is not shown at all (no 0,0 rows).
    present = [c for c in STAFF_CATEGORIES if c != "agency_staff"]
    assert not [r for r in table.rows if r.category == "agency_staff"]

    def value(org_unit: str, key: str, category: str) -> float:
        try:
            return _number(table, org_unit, key, category)
        except KeyError:  # a category the avdelning does not have
            return 0.0

    for category in (*present, STAFF_SUM):
        for key in ("budget", "budget_ytd", "utfall", "prognos", "avvikelse"):
            parts = math.fsum(value(avd, key, category) for avd in AVDELNINGAR)
            assert _number(table, "VON", key, category) == pytest.approx(parts, abs=1e-6)
    for org_unit in (*AVDELNINGAR, "VON"):
        for key in ("budget", "utfall", "prognos", "avvikelse"):
            parts = math.fsum(value(org_unit, key, c) for c in present)
            assert _number(table, org_unit, key, STAFF_SUM) == pytest.approx(parts, abs=1e-9)
        for row in (r for r in table.rows if r.org_unit == org_unit):
            # The full-year deviation is what is booked so far plus what is forecast.
            split = table.value(row, "avvikelse_ytd"), table.value(row, "avvikelse_rest")
            assert sum(split) == pytest.approx(table.value(row, "avvikelse"), abs=1e-9)  # type: ignore[arg-type]
        for category in present:
            if (org_unit, category) not in {(r.org_unit, r.category) for r in table.rows}:
                continue
            node = forecast.get(org_unit, category)
            prognos = _number(table, org_unit, "prognos", category)
            assert prognos == pytest.approx((node.full_year if node else 0.0) / MNKR)
            budget = _number(table, org_unit, "budget", category)
            assert _number(table, org_unit, "avvikelse", category) == pytest.approx(
                budget - prognos
            )
    # Vikarier are the designed overrun of äldreomsorg (+30 mnkr over the year).
    assert _number(table, "AO", "avvikelse", "substitutes") < -20


def test_prognosforandring_columns_are_the_earlier_snapshots(
    august_report: Report, report_case: ReportCase
) -> None:
    table = august_report.table("prognosforandring")
    compared = [report_case.snapshots[m] for m in (3, 4, 8)]
    assert [c.label for c in august_report.compared] == [
        "Prognos mars",
        "Prognos april",
        "Prognos delår",
    ]
    assert [c.header for c in table.columns if c.key.startswith("prognos_")] == [
        "Modellens prognos mars (mnkr)",
        "Modellens prognos april (mnkr)",
        "Modellens prognos delår (mnkr)",
    ]
    for org_unit in (*AVDELNINGAR, "VON"):
        values = []
        for snap in compared:
            node = snap.forecast.get(org_unit, TOTAL)
            assert node is not None
            value = _number(table, org_unit, f"prognos_{snap.period}")
            assert value == pytest.approx(node.full_year / MNKR, rel=1e-12)
            values.append(value)
        # Förändring = föregående − prognos: a higher forecast cost is negative (worse).
        assert _number(table, org_unit, "forandring_2024-04") == pytest.approx(
            values[0] - values[1]
        )
        assert _number(table, org_unit, "forandring_2024-08") == pytest.approx(
            values[1] - values[2]
        )
    # The overrun grew from April to August: the nämnd's change is negative.
    assert _number(table, "VON", "forandring_2024-08") < 0
    with pytest.raises(KeyError):
        table.index("forandring_2024-03")


def test_compare_modes_choose_checkpoint_or_all_snapshots(report_case: ReportCase) -> None:
    forecasts = report_case.forecasts
    plain = [stored(forecasts[m], snapshot_id=m) for m in (3, 4)]
    current = stored(forecasts[8], snapshot_id=8)
    assert [s.period for s in choose_compared(current, plain, "auto")] == [
        "2024-03",
        "2024-04",
        "2024-08",
    ]
    with_checkpoint = [
        stored(forecasts[3], snapshot_id=3),
        stored(forecasts[4], snapshot_id=4, checkpoint="april"),
    ]
    assert [s.period for s in choose_compared(current, with_checkpoint, "auto")] == [
        "2024-04",
        "2024-08",
    ]
    assert len(choose_compared(current, with_checkpoint, "all")) == 3
    # A later version of a period replaces the earlier one; later periods never show.
    revised = stored(forecasts[4], snapshot_id=9, version=2)
    later = stored(forecasts[10], snapshot_id=10)
    chosen = choose_compared(current, [*plain, revised, later], "all")
    assert [(s.period, s.version) for s in chosen] == [
        ("2024-03", 1),
        ("2024-04", 2),
        ("2024-08", 1),
    ]
    assert snapshot_label(later) == "Prognos okt"
    assert snapshot_label(with_checkpoint[1]) == "Prognos april"


def test_volumes_use_monthly_averages_for_stocks(
    august_report: Report, report_case: ReportCase
) -> None:
    table = august_report.table("volymer")
    forecast = report_case.snapshots[8].forecast
    hours = forecast.get("1110", "home_care_hours")
    assert hours is not None and hours.budget_ytd is not None
    assert _number(table, "1110", "utfall_ytd", "home_care_hours") == pytest.approx(
        hours.actual_ytd
    )
    assert _number(table, "1110", "plan_ytd", "home_care_hours") == pytest.approx(hours.budget_ytd)
    # The AO sum row adds both hemtjänst units.
    both = sum(forecast.get(u, "home_care_hours").actual_ytd for u in ("1110", "1120"))  # type: ignore[union-attr]
    assert _number(table, "AO", "utfall_ytd", "home_care_hours") == pytest.approx(both)
    residents = forecast.get("1210", "sabo_residents")
    assert residents is not None
    assert _number(table, "1210", "utfall_ytd", "sabo_residents") == pytest.approx(
        residents.actual_ytd / 8
    )
    assert _number(table, "1210", "plan", "sabo_residents") == pytest.approx(240.0)
    assert table.value(table.find("1210", "sabo_residents"), "enhet") == "st (snitt per månad)"
    # Hemtjänsttimmar run above plan from April (the scenario's design): plan − utfall < 0.
    assert _number(table, "AO", "avvikelse_ytd", "home_care_hours") < 0
    # Sjukfrånvaro and scheduled hours are shown as per cent in their own table.
    assert not [r for r in table.rows if r.category in ("sick_leave_hours", "scheduled_hours")]


def test_key_ratios_are_near_the_unit_prices_of_the_seed_documents(august_report: Report) -> None:
    table = august_report.table("nyckeltal")
    assert {r.category for r in table.rows} == {spec.id for spec in KEY_RATIOS}
    # Budgeted unit prices of the scenario (facts.md: 640 kr/h, 674 / 897 / 1 233 tkr per plats).
    assert _number(table, "AO", "budget", "cost_per_home_care_hour") == pytest.approx(640, abs=2)
    assert _number(table, "AO", "budget", "cost_per_sabo_place") == pytest.approx(674, abs=2)
    assert _number(table, "LSS", "budget", "cost_per_lss_place") == pytest.approx(897, abs=2)
    assert _number(table, "1220", "budget", "cost_per_purchased_place") == pytest.approx(
        1233, abs=2
    )
    # The overrun makes a hemtjänst hour dearer than budgeted.
    assert _number(table, "AO", "avvikelse", "cost_per_home_care_hour") < 0


def test_summary_states_the_forecast_deficit(august_report: Report) -> None:
    first = august_report.summary[0]
    assert first.startswith("Modellens prognos efter augusti 2024 visar en nettokostnad")
    assert "ett underskott på" in first
    assert any("sedan prognosen efter april" in s for s in august_report.summary)


def test_a_report_without_earlier_snapshots_has_one_forecast_column(
    report_case: ReportCase,
) -> None:
    report = build_report(report_case.snapshots[3], [], report_case.domain, charts=False)
    table = report.table("prognosforandring")
    assert [c.key for c in table.columns if c.key.startswith(("prognos_", "forandring_"))] == [
        "prognos_2024-03"
    ]
    assert report.charts == ()
