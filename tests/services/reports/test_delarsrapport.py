"""What a nämnd needs to adopt the delårsrapport: drill-down, kostnadsslag, förvaltningens
prognos, last year's bokslut, analys and åtgärder, approval, method and interval hit rate."""

from __future__ import annotations

import math

import pytest

from forecasts.live import TOTAL
from services.reports.accuracy import compute_accuracy
from services.reports.tables import (
    COST_GROUPS,
    STAFF_CATEGORIES,
    Report,
    Table,
    approval_status,
    build_report,
    coverage_by_method,
    forvaltning_forecasts,
    interval_coverage,
    method_label,
)
from services.snapshots.store import StoredSnapshot
from tests.services.reports.fixtures import (
    ADJUSTED_1210_DELTA,
    ReportCase,
    august_follow_up,
    with_adjustment,
)

MNKR = 1e6
AVDELNINGAR = ("AO", "LSS", "IFO")


@pytest.fixture(scope="module")
def full_report(report_case: ReportCase, previous_year_snapshots: list[StoredSnapshot]) -> Report:
    """August with the follow-up, last year's snapshots and last year's prognossäkerhet."""
    current = report_case.snapshots[8]
    follow_up = with_adjustment(august_follow_up(), current.forecast)
    accuracy = compute_accuracy(
        previous_year_snapshots, report_case.domain, report_case.year - 1, checkpoints_only=True
    )
    return build_report(
        current,
        report_case.before(8),
        report_case.domain,
        charts=False,
        follow_up=follow_up,
        previous_year=previous_year_snapshots,
        accuracy_table=accuracy.table(),
        accuracy_notes=accuracy.sentences,
        latest_version=1,
    )


def _number(table: Table, org_unit: str, key: str, category: str | None = None) -> float:
    value = table.value(table.find(org_unit, category), key)
    assert isinstance(value, float), (org_unit, key, value)
    return value


def test_drill_down_lists_every_enhet_of_the_org_tree(
    full_report: Report, report_case: ReportCase
) -> None:
    table = full_report.table("driftredovisning_enhet")
    org = report_case.domain.org
    enheter = [e.id for avd in AVDELNINGAR for e in org.children(avd)]
    assert "2120" in enheter  # Daglig verksamhet, 68,6 mnkr, appears at last
    assert [r.org_unit for r in table.rows if r.level == "enhet"] == enheter
    assert table.value(table.find("2120"), "verksamhet") == "Daglig verksamhet"
    forecast = report_case.snapshots[8].forecast
    for avdelning in AVDELNINGAR:
        for key in ("budget", "utfall", "prognos_modell", "prognos", "avvikelse", "bokslut_fg"):
            parts = math.fsum(_number(table, e.id, key) for e in org.children(avdelning))
            assert _number(table, avdelning, key) == pytest.approx(parts, abs=1e-6), key
        node = forecast.get(avdelning, TOTAL)
        assert node is not None
        assert _number(table, avdelning, "prognos_modell") == pytest.approx(node.full_year / MNKR)


def test_forvaltningens_prognos_carries_an_enhet_adjustment_up_to_the_namnd(
    full_report: Report, report_case: ReportCase
) -> None:
    forecast = report_case.snapshots[8].forecast
    drift = full_report.table("driftredovisning")
    enhet = full_report.table("driftredovisning_enhet")
    delta = ADJUSTED_1210_DELTA / MNKR
    for table, org_unit in ((enhet, "1210"), (enhet, "AO"), (drift, "AO"), (drift, "VON")):
        model = _number(table, org_unit, "prognos_modell")
        assert _number(table, org_unit, "prognos") == pytest.approx(model + delta, abs=1e-9)
        budget = _number(table, org_unit, "budget")
        # Avvikelse is against the förvaltning's forecast, the one the nämnd adopts.
        assert _number(table, org_unit, "avvikelse") == pytest.approx(
            budget - model - delta, abs=1e-9
        )
    # Units without an adjustment keep the model's figure.
    assert _number(enhet, "1110", "prognos") == _number(enhet, "1110", "prognos_modell")
    assert _number(drift, "LSS", "prognos") == _number(drift, "LSS", "prognos_modell")
    # An adjusted parent wins over its children's adjustments.
    values = forvaltning_forecasts(forecast, report_case.domain.org, {"1210": 1.0e6, "AO": 600.0e6})
    assert values["AO"] == 600.0e6
    assert values["VON"] == pytest.approx(
        forecast.get("VON", TOTAL).full_year - forecast.get("AO", TOTAL).full_year + 600.0e6  # type: ignore[union-attr]
    )
    assert any("Förvaltningens prognos" in s for s in full_report.summary)


def test_bokslut_of_last_year_is_the_december_outcome(
    full_report: Report, previous_year_snapshots: list[StoredSnapshot]
) -> None:
    december = previous_year_snapshots[-1].forecast
    assert december.as_of_month == 12 and december.year == 2023
    drift = full_report.table("driftredovisning")
    assert drift.columns[drift.index("bokslut_fg")].header == "Bokslut 2023 (mnkr)"
    for org_unit in (*AVDELNINGAR, "VON"):
        node = december.get(org_unit, TOTAL)
        assert node is not None
        assert _number(drift, org_unit, "bokslut_fg") == pytest.approx(node.actual_ytd / MNKR)


def test_kostnadsslag_add_up_to_the_net_cost_and_show_only_what_exists(
    full_report: Report, report_case: ReportCase
) -> None:
    table = full_report.table("kostnadsslag")
    forecast = report_case.snapshots[8].forecast
    groups = [r for r in table.rows if not r.total]
    labels = [table.value(r, "grupp") for r in groups]
    assert labels[:2] == ["Taxor och avgifter", "Statsbidrag och andra bidrag"]
    assert {"Personalkostnader", "Köp av verksamhet", "Lokaler"} <= set(labels)
    for key in ("budget", "utfall", "prognos", "avvikelse", "bokslut_fg"):
        parts = math.fsum(float(table.value(r, key)) for r in groups)  # type: ignore[arg-type]
        assert _number(table, "VON", key, TOTAL) == pytest.approx(parts, abs=1e-6), key
    net = forecast.get("VON", TOTAL)
    assert net is not None
    assert _number(table, "VON", "prognos", TOTAL) == pytest.approx(net.full_year / MNKR)
    personal = math.fsum(
        n.full_year for c in STAFF_CATEGORIES if (n := forecast.get("VON", c)) is not None
    )
    assert _number(table, "VON", "prognos", "personal") == pytest.approx(personal / MNKR)
    # Revenues are negative; a revenue below budget is a negative avvikelse (underskott).
    fees = table.find("VON", "taxor")
    assert float(table.value(fees, "budget")) < 0  # type: ignore[arg-type]
    assert len(COST_GROUPS) >= len(groups)


def test_sjukfranvaro_in_per_cent_against_last_year(
    full_report: Report, report_case: ReportCase, previous_year_snapshots: list[StoredSnapshot]
) -> None:
    table = full_report.table("sjukfranvaro")
    forecast = report_case.snapshots[8].forecast
    sick, scheduled = forecast.get("AO", "sick_leave_hours"), forecast.get("AO", "scheduled_hours")
    assert sick is not None and scheduled is not None
    expected = 100 * sick.actual_ytd / scheduled.actual_ytd
    assert _number(table, "AO", "sjuk_ytd", "sick_leave_hours") == pytest.approx(expected)
    assert 3 < expected < 15
    before = _number(table, "AO", "sjuk_ytd_fg", "sick_leave_hours")
    change = _number(table, "AO", "forandring", "sick_leave_hours")
    assert change == pytest.approx(before - expected)  # fjolåret − i år: more sick leave < 0


def test_analysis_and_atgarder_show_decided_against_realised(full_report: Report) -> None:
    ao = next(a for a in full_report.analyses if a.org_unit == "AO")
    assert ao.comment is not None and ao.comment.startswith("Vikarier och övertid")
    assert ao.comment_by == "avdelningschef.anna"
    # The drivers name the volume and price effect of vikarier the snapshot holds.
    assert any(d.startswith("Vikarier och timavlönade") and "volym" in d for d in ao.drivers)
    # Äldreomsorg's förvaltningens prognos carries Ekbacken's adjustment; its enhet follows it.
    assert ao.forvaltning_full_year_sek == pytest.approx(
        ao.model_full_year_sek + ADJUSTED_1210_DELTA  # type: ignore[operator]
    )
    order = [a.org_unit for a in full_report.analyses]
    assert order.index("AO") < order.index("1210") < order.index("LSS")
    ekbacken = next(a for a in full_report.analyses if a.org_unit == "1210")
    assert ekbacken.adjustment_reason == "En avdelning stänger i oktober."
    table = full_report.table("atgarder")
    rows = [r for r in table.rows if not r.total]
    assert [table.value(r, "atgard") for r in rows] == [
        "Samordnad bemanningsplanering",
        "Övertidsstopp",
    ]
    assert [table.value(r, "status") for r in rows] == ["Beslutad", "Planerad"]
    total = next(r for r in table.rows if r.total)
    # Only decided and realised measures are summed: 6,0 decided, 1,5 realised.
    assert table.value(total, "besparing") == pytest.approx(6.0)
    assert table.value(total, "realiserad") == pytest.approx(1.5)
    assert table.value(total, "atgard") == "1 av 2 åtgärder"


def test_cover_says_approved_or_latest(full_report: Report, report_case: ReportCase) -> None:
    assert full_report.approved
    assert full_report.status.startswith("Godkänd av controller.eva 2024-09-12 09:30 UTC")
    approved, text = approval_status(None, 2, 2)
    assert not approved
    assert text.startswith("Prognosen är inte godkänd: rapporten bygger på den senaste")
    follow_up = august_follow_up(approved_version=1)
    approval = follow_up.nodes["VON"].approval
    approved, text = approval_status(approval, 1, 3)
    assert approved and "en senare version (3)" in text
    approved, text = approval_status(approval, 3, 3)  # approved an older version than shown
    assert not approved
    report = build_report(
        report_case.snapshots[8], [], report_case.domain, charts=False, follow_up=None
    )
    assert not report.approved and report.analyses and not report.analyses[0].measures


def test_method_and_interval_hit_rate_in_words(
    full_report: Report, report_case: ReportCase, previous_year_snapshots: list[StoredSnapshot]
) -> None:
    notes = " ".join(full_report.method_notes)
    leaves = [
        n
        for n in report_case.snapshots[8].forecast.nodes
        if n.kind == "cost" and n.model != "sum" and n.category != TOTAL
    ]
    assert f"({len(leaves)} serier)" in notes
    hits, rows = interval_coverage(previous_year_snapshots, previous_year_snapshots[-1].forecast)
    assert rows > 0
    share = round(100 * hits / rows)
    assert f"Intervallet har träffat i {share} % av fallen i efterhand" in notes
    fallback = sum(n.model.endswith("fallback") for n in leaves)
    if fallback == len(leaves):
        assert "Alla serier har alltså prognostiserats med reservmetoden" in notes
    assert method_label("auto:fallback").startswith("reservmetoden")
    assert method_label("seasonal_naive") == "modellen seasonal_naive"
    # Last year's prognossäkerhet is in the report with its sentences.
    assert full_report.has_table("prognossakerhet")
    assert any(s.startswith("Utfallet för nämnden blev") for s in full_report.method_notes)


def test_interval_coverage_counts_rows_inside_their_interval(report_case: ReportCase) -> None:
    outcome = report_case.snapshots[12].forecast
    march = report_case.snapshots[3]
    hits, rows = interval_coverage([march], outcome)
    expected = [
        n.low <= outcome.get(n.org_unit, n.category).actual_ytd <= n.high  # type: ignore[union-attr]
        for n in march.forecast.nodes
        if n.kind == "cost" and outcome.get(n.org_unit, n.category) is not None
    ]
    assert (hits, rows) == (sum(expected), len(expected))
    by_method = coverage_by_method([march], outcome)
    leaves = [
        n
        for n in march.forecast.nodes
        if n.kind == "cost" and n.model != "sum" and n.category != TOTAL
    ]
    assert sum(n for _, n in by_method.values()) == len(leaves)
    assert set(by_method) == {n.interval_method or n.model for n in leaves}
    assert interval_coverage([report_case.snapshots[12]], outcome) == (0, 0)  # December: none


def test_staff_note_explains_a_forecast_surplus_on_budget_to_date(full_report: Report) -> None:
    table = full_report.table("personalkostnader")
    for note in full_report.staff_notes:
        name = note.split(":")[0]
        row = next(
            r for r in table.rows if r.org_unit == "VON" and table.value(r, "kostnadsslag") == name
        )
        ytd, rest = table.value(row, "avvikelse_ytd"), table.value(row, "avvikelse_rest")
        assert abs(rest) >= 2 * abs(ytd)  # type: ignore[arg-type]
        assert "resten av året" in note


def test_accuracy_compares_the_approved_forvaltning_forecast(
    report_case: ReportCase,
) -> None:
    snapshots = list(report_case.snapshots.values())
    august = report_case.snapshots[8]
    follow_up = with_adjustment(august_follow_up(), august.forecast)
    accuracy = compute_accuracy(
        snapshots, report_case.domain, report_case.year, {"2024-08": follow_up}
    )
    row = accuracy.row("VON", "2024-08")
    assert row.adjusted == pytest.approx(row.forecast + ADJUSTED_1210_DELTA)
    assert row.adjusted_difference == pytest.approx(row.adjusted - row.outcome)  # type: ignore[operator]
    assert accuracy.row("VON", "2024-04").adjusted is None  # not approved: no förvaltning figure
    helped = abs(row.adjusted_difference) < abs(row.difference)  # type: ignore[arg-type]
    sentence = next(s for s in accuracy.sentences if s.startswith("Förvaltningens godkänd"))
    assert ("hjälpte inte" in sentence) != helped
    table = accuracy.table()
    august_row = next(
        r for r in table.rows if r.org_unit == "VON" and table.value(r, "period") == "2024-08"
    )
    assert table.value(august_row, "prognos_forv") == pytest.approx(row.adjusted / MNKR)  # type: ignore[operator]
    # An approval of another version does not count.
    stale = with_adjustment(august_follow_up(approved_version=2), august.forecast)
    other = compute_accuracy(snapshots, report_case.domain, report_case.year, {"2024-08": stale})
    assert other.row("VON", "2024-08").adjusted is None


def test_a_stored_interval_coverage_is_said_in_words(report_case: ReportCase) -> None:
    """Where the forecast rows carry ``interval_method``/``interval_coverage`` (calibrated
    intervals), the report names the method and says how often its intervals held."""
    from dataclasses import dataclass

    from forecasts.live import OrganisationForecast
    from services.reports.tables import method_notes

    forecast = report_case.snapshots[8].forecast

    @dataclass(frozen=True)
    class Calibrated:
        org_unit: str
        kind: str
        category: str
        model: str
        interval_method: str
        interval_coverage: float

    rows = [
        Calibrated(n.org_unit, n.kind, n.category, n.model, "panel", 0.81)
        for n in forecast.nodes
        if n.kind == "cost" and n.model != "sum" and n.category != TOTAL
    ]
    calibrated = OrganisationForecast(forecast.year, forecast.as_of_month, rows)  # type: ignore[arg-type]
    notes = " ".join(method_notes(calibrated))
    assert "Intervallet har träffat i 81 % av fallen i efterhand" in notes
    assert "modellen panel" in notes
