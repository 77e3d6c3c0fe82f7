"""Prognossäkerhet against an independent sum of the scenario's cost events."""

from __future__ import annotations

import csv
import io
import math

import pytest
from openpyxl import load_workbook

from core.errors import UserError
from core.swedish import format_mnkr
from forecasts.live import TOTAL
from services.reports.accuracy import Accuracy, accuracy_sentence, compute_accuracy
from services.reports.excel import placement
from services.reports.writer import accuracy_files
from tests.services.reports.fixtures import ReportCase, stored

MNKR = 1e6
# The nämnd has one förvaltning, so the two are one row (the nämnd's).
LEVEL_NODES = {"namnd": ["VON"], "avdelning": ["AO", "LSS", "IFO"]}


@pytest.fixture(scope="module")
def accuracy(report_case: ReportCase) -> Accuracy:
    return compute_accuracy(
        list(report_case.snapshots.values()), report_case.domain, report_case.year
    )


def _outcome_from_events(report_case: ReportCase) -> dict[str, float]:
    """The year's net cost per node, summed straight from the scenario's cost events."""
    org = report_case.domain.org
    totals: dict[str, list[float]] = {}
    for event in report_case.scenario.costs:
        if event["period"].startswith(f"{report_case.year}-"):
            for node in org.path(event["org_unit"]):
                totals.setdefault(node, []).append(float(event["amount_sek"]))
    return {node: math.fsum(values) for node, values in totals.items()}


def test_outcome_and_forecasts_match_an_independent_computation(
    accuracy: Accuracy, report_case: ReportCase
) -> None:
    outcome = _outcome_from_events(report_case)
    periods = ["2024-03", "2024-04", "2024-08", "2024-10"]
    assert accuracy.outcome_snapshot.period == "2024-12"
    assert [(r.level, r.org_unit, r.snapshot.period) for r in accuracy.rows] == [
        (level, node, period)
        for level, nodes in LEVEL_NODES.items()
        for node in nodes
        for period in periods
    ]
    for row in accuracy.rows:
        assert row.outcome == pytest.approx(outcome[row.org_unit], abs=0.01)
        month = int(row.snapshot.period[5:])
        node = report_case.forecasts[month].get(row.org_unit, TOTAL)
        assert node is not None
        assert row.forecast == node.full_year
        assert row.difference == pytest.approx(node.full_year - outcome[row.org_unit], abs=0.01)
        assert row.difference_pct == pytest.approx(100 * row.difference / row.outcome)
    # The nämnd's outcome is the scenario's designed overrun year: ≈ 1 091 mnkr.
    assert 1_080 < outcome["VON"] / MNKR < 1_100


def test_table_and_files_carry_the_same_numbers(accuracy: Accuracy) -> None:
    table = accuracy.table()
    files = accuracy_files(accuracy)
    assert set(files) == {"prognossakerhet-2024.csv", "prognossakerhet-2024.xlsx"}
    parsed = list(
        csv.reader(
            io.StringIO(files["prognossakerhet-2024.csv"].decode("utf-8-sig")), delimiter=";"
        )
    )
    assert parsed[0] == [c.header for c in table.columns]
    ws = load_workbook(io.BytesIO(files["prognossakerhet-2024.xlsx"]))["Prognossäkerhet"]
    for offset, row in enumerate(accuracy.rows):
        line = parsed[offset + 1]
        assert line[1] == row.org_unit and line[4] == row.snapshot.period
        # No approved förvaltning forecast without a follow-up: the model's columns only.
        assert len(line) == 9
        assert float(line[5].replace(",", ".")) == pytest.approx(row.forecast / MNKR, abs=5e-4)
        assert float(line[6].replace(",", ".")) == pytest.approx(row.outcome / MNKR, abs=5e-4)
        assert float(line[7].replace(",", ".")) == pytest.approx(row.difference / MNKR, abs=5e-4)
    sheet_rows = dict((id(r), n) for n, r in placement(table))
    for row, table_row in zip(accuracy.rows, table.rows, strict=True):
        excel = [ws.cell(sheet_rows[id(table_row)], c).value for c in range(1, 10)]
        assert excel[1] == row.org_unit
        assert excel[5] == pytest.approx(row.forecast / MNKR)
        assert excel[7] == pytest.approx(row.difference / MNKR)
    assert ws.freeze_panes == "B4"
    notes = load_workbook(io.BytesIO(files["prognossakerhet-2024.xlsx"]))["Kommentar"]
    assert [notes.cell(r, 1).value for r in range(2, 2 + len(accuracy.sentences))] == list(
        accuracy.sentences
    )


def test_sentences_say_better_or_worse_by_the_sign(accuracy: Accuracy) -> None:
    assert (
        accuracy_sentence("nämnden", 4.3e6, 8)
        == "Utfallet för nämnden blev 4,3 mnkr bättre än prognosen efter augusti."
    )
    assert (
        accuracy_sentence("nämnden", -5.4e6, 10)
        == "Utfallet för nämnden blev 5,4 mnkr sämre än prognosen efter oktober."
    )
    assert (
        accuracy_sentence("Äldreomsorg", 40_000.0, 4)
        == "Utfallet för Äldreomsorg blev i nivå med prognosen efter april."
    )
    # From the scenario: for each snapshot the sentence follows prognos − utfall.
    for row in accuracy.rows:
        if row.level != "namnd":
            continue
        month = ("mars", "april", "augusti", "oktober")[
            ["03", "04", "08", "10"].index(row.snapshot.period[5:])
        ]
        word = "bättre" if row.forecast > row.outcome else "sämre"
        expected = (
            f"Utfallet för nämnden blev {format_mnkr(abs(row.forecast - row.outcome))} mnkr "
            f"{word} än prognosen efter {month}."
        )
        assert expected in accuracy.sentences
    # March under-forecast the overrun: the outcome was worse than that forecast.
    march = accuracy.row("VON", "2024-03")
    assert march.difference < 0
    assert any(s.endswith("sämre än prognosen efter mars.") for s in accuracy.sentences)
    # The avdelningar get the delår (August) sentence.
    assert any(
        s.startswith("Utfallet för Äldreomsorg blev") and "augusti" in s for s in accuracy.sentences
    )


def test_without_december_the_outcome_is_incomplete(report_case: ReportCase) -> None:
    partial = [s for m, s in report_case.snapshots.items() if m < 12]
    with pytest.raises(UserError) as err:
        compute_accuracy(partial, report_case.domain, 2024)
    message = str(err.value)
    assert "no snapshot of 2024-12" in message
    assert "2024-03, 2024-04, 2024-08, 2024-10" in message
    with pytest.raises(UserError, match="no snapshots before 2024-12"):
        compute_accuracy([report_case.snapshots[12]], report_case.domain, 2024)
    # A December snapshot of a forecast not yet as of December is not an outcome.
    early = stored(report_case.forecasts[10], snapshot_id=99)
    early = type(early)(**{**early.__dict__, "period": "2024-12"})
    with pytest.raises(UserError, match="no snapshot of 2024-12"):
        compute_accuracy([*partial, early], report_case.domain, 2024)
