"""The Excel workbook and the CSV files hold the snapshot's numbers, formatted the Swedish way."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from core.errors import UserError
from forecasts.live import TOTAL
from services.reports.excel import (
    FIRST_DATA_ROW,
    FREEZE_AT,
    HEADER_ROW,
    NUMBER_FORMATS,
    placement,
)
from services.reports.html import CSV_DECIMALS, csv_value, render_csv
from services.reports.tables import Report, Table
from services.reports.writer import report_file_name, write_atomically
from tests.services.reports.fixtures import ReportCase

MNKR = 1e6
TABLE_SLUGS = (
    "driftredovisning",
    "driftredovisning_enhet",
    "kostnadsslag",
    "prognosforandring",
    "personalkostnader",
    "sjukfranvaro",
    "volym_pris",
    "volymer",
    "nyckeltal",
)


def _workbook(files: dict[str, bytes]):  # type: ignore[no-untyped-def]
    return load_workbook(io.BytesIO(files["delarsrapport-2024-08.xlsx"]))


def _rows_by_key(ws: Worksheet, table: Table) -> dict[tuple[str, str | None], dict[str, object]]:
    """Sheet rows as {column key: value}, keyed by (Ansvar, category of the table row)."""
    out = {}
    for sheet_row, row in placement(table):
        values = {
            column.key: ws.cell(sheet_row, col).value
            for col, column in enumerate(table.columns, start=1)
        }
        assert values["ansvar"] == row.org_unit
        out[(str(row.org_unit), row.category)] = values
    return out


def test_file_names(august_files: dict[str, bytes]) -> None:
    assert set(august_files) == {
        "delarsrapport-2024-08.xlsx",
        "delarsrapport-2024-08.html",
        *(f"delarsrapport-2024-08-{slug}.csv" for slug in TABLE_SLUGS),
    }
    assert report_file_name("2024-08", "csv", "volymer") == "delarsrapport-2024-08-volymer.csv"


def test_excel_numbers_equal_the_snapshot_rows(
    august_files: dict[str, bytes], august_report: Report, report_case: ReportCase
) -> None:
    wb = _workbook(august_files)
    forecast = report_case.snapshots[8].forecast
    table = august_report.table("driftredovisning")
    rows = _rows_by_key(wb["Driftredovisning"], table)
    for org_unit in ("AO", "LSS", "IFO", "VON"):
        node = forecast.get(org_unit, TOTAL)
        assert node is not None and node.budget_full_year is not None
        row = rows[(org_unit, TOTAL)]
        for key, sek in (
            ("budget", node.budget_full_year),
            ("utfall", node.actual_ytd),
            ("prognos", node.full_year),
            ("avvikelse", node.budget_full_year - node.full_year),
        ):
            value = row[key]
            assert isinstance(value, int | float), (org_unit, key, value)  # a number, not text
            assert value == pytest.approx(sek / MNKR, rel=1e-12)
        assert row["avvikelse_pct"] == pytest.approx(
            100 * (node.budget_full_year - node.full_year) / node.budget_full_year
        )
    # The nämnd is the sum of its avdelningar in the sheet too.
    for key in ("budget", "utfall", "prognos", "avvikelse"):
        parts = math.fsum(float(rows[(a, TOTAL)][key]) for a in ("AO", "LSS", "IFO"))  # type: ignore[arg-type]
        assert rows[("VON", TOTAL)][key] == pytest.approx(parts, abs=1e-6)

    staff = _rows_by_key(wb["Personalkostnader"], august_report.table("personalkostnader"))
    for category in ("overtime", "substitutes", "sick_pay"):
        node = forecast.get("AO", category)
        assert node is not None and node.budget_full_year is not None
        assert staff[("AO", category)]["utfall"] == pytest.approx(node.actual_ytd / MNKR)
        assert staff[("AO", category)]["budget"] == pytest.approx(node.budget_full_year / MNKR)
        assert staff[("AO", category)]["prognos"] == pytest.approx(node.full_year / MNKR)

    change = _rows_by_key(wb["Prognosförändring"], august_report.table("prognosforandring"))
    for month in (3, 4, 8):
        snap = report_case.snapshots[month]
        node = snap.forecast.get("VON", TOTAL)
        assert node is not None
        assert change[("VON", TOTAL)][f"prognos_{snap.period}"] == pytest.approx(
            node.full_year / MNKR
        )


def test_every_sheet_has_formats_frozen_header_and_widths(
    august_files: dict[str, bytes], august_report: Report
) -> None:
    wb = _workbook(august_files)
    assert wb.sheetnames == [
        "Försättsblad",
        "Analys",
        "Driftredovisning",
        "Driftredovisning per enhet",
        "Kostnadsslag",
        "Prognosförändring",
        "Personalkostnader",
        "Sjukfrånvaro",
        "Volym- och priseffekt",
        "Volymer",
        "Nyckeltal",
        "Diagram",
        "Diagramdata",
    ]
    for table in august_report.tables:
        ws = wb[table.title]
        # The autofilter covers the header and the data rows, never a sum row.
        data_rows = [r for r in table.rows if not r.total]
        last_data_row = FIRST_DATA_ROW + len(data_rows) - 1
        assert ws.auto_filter.ref.endswith(str(last_data_row)), (table.slug, ws.auto_filter.ref)
        assert ws.auto_filter.ref.startswith(f"A{HEADER_ROW}:")
        for sheet_row, row in placement(table):
            assert (sheet_row <= last_data_row) == (not row.total)
        assert ws.freeze_panes == FREEZE_AT
        assert [ws.cell(HEADER_ROW, c).value for c in range(1, len(table.columns) + 1)] == [
            c.header for c in table.columns
        ]
        for col, column in enumerate(table.columns, start=1):
            letter = ws.cell(HEADER_ROW, col).column_letter
            assert ws.column_dimensions[letter].width == column.width
            if column.kind == "text":
                continue
            for sheet_row, _ in placement(table):
                cell = ws.cell(sheet_row, col)
                assert cell.number_format == NUMBER_FORMATS[column.kind], (table.slug, column.key)
                assert cell.value is None or isinstance(cell.value, int | float)
        assert all("mnkr" in c.header for c in table.columns if c.kind in ("money", "deviation"))
    deviation_format = NUMBER_FORMATS["deviation"]
    assert deviation_format == "#,##0.0;[Red]-#,##0.0;0.0"  # one decimal, minus and red
    avvikelse = august_report.table("driftredovisning").index("avvikelse") + 1
    assert wb["Driftredovisning"].cell(FIRST_DATA_ROW, avvikelse).number_format == deviation_format
    # One sign convention: every signed kind is red when negative, never when positive.
    for kind in ("change", "volume_change", "pct_change", "pct", "ratio_deviation"):
        positive, negative = NUMBER_FORMATS[kind].split(";")[:2]
        assert "[Red]" in negative and "[Red]" not in positive, kind


def test_cover_sheet_and_chart_images(
    august_files: dict[str, bytes], august_report: Report
) -> None:
    wb = _workbook(august_files)
    cover = {
        ws_row[0].value: ws_row[1].value
        for ws_row in wb["Försättsblad"].iter_rows(min_row=4, max_col=2)
        if ws_row[0].value
    }
    assert cover["Kommun"] == "Storvik kommun"
    assert cover["Status"] == august_report.status
    assert str(cover["Status"]).startswith("Prognosen är inte godkänd")
    assert cover["Nämnd"] == "Vård- och omsorgsnämnden"
    assert cover["Prognos"] == "Prognos efter augusti"
    assert cover["Snapshot-id"] == august_report.snapshot.id
    assert cover["Snapshot-version"] == 1
    assert str(cover["Period"]).startswith("2024-08")
    assert cover["Skapad (UTC)"].isoformat() == "2024-09-05T08:00:00"  # type: ignore[union-attr]
    # Native Excel charts (not pictures) drawn from the Diagramdata sheet.
    assert wb["Diagram"]._images == []
    charts = wb["Diagram"]._charts
    assert len(charts) == len(august_report.chart_data) == 4  # AO, LSS, IFO and the nämnd
    data = wb["Diagramdata"]
    node = august_report.chart_data[0][2]
    assert data.cell(1, 1).value == august_report.chart_data[0][1]
    assert [data.cell(3 + m, 2).value for m in range(8)] == pytest.approx(
        [v / MNKR for v in node.actual_monthly]
    )
    assert data.cell(3 + 8, 4).value == pytest.approx(node.path[0] / MNKR)


def test_csv_parses_back_with_decimal_comma(
    august_files: dict[str, bytes], august_report: Report
) -> None:
    for table in august_report.tables:
        raw = august_files[f"delarsrapport-2024-08-{table.slug}.csv"]
        assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for Excel
        text = raw.decode("utf-8-sig")
        parsed = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
        assert parsed[0] == [c.header for c in table.columns]
        assert len(parsed) == len(table.rows) + 1
        for line, row in zip(parsed[1:], table.rows, strict=True):
            for field, column, value in zip(line, table.columns, row.cells, strict=True):
                if column.kind == "text":
                    assert field == (value or "")
                elif value is None:
                    assert field == ""
                else:
                    # Excel reads neither U+2212 as a minus nor a dot as the decimal sign.
                    assert "." not in field and " " not in field and "\u2212" not in field
                    tolerance = 0.5 * 10 ** -CSV_DECIMALS[column.kind] + 1e-9
                    assert float(field.replace(",", ".")) == pytest.approx(value, abs=tolerance)
    drift = august_files["delarsrapport-2024-08-driftredovisning.csv"].decode("utf-8-sig")
    nämnd = next(line for line in drift.splitlines() if line.startswith("VON;"))
    assert nämnd.split(";")[2].startswith("1051,")
    avvikelse = august_report.table("driftredovisning").index("avvikelse")
    assert nämnd.split(";")[avvikelse].startswith("-")  # the deficit


def test_csv_value_rounding_and_sign() -> None:
    assert csv_value("money", -1234.5678) == "-1234,568"
    assert csv_value("money", -0.0001) == "0,000"
    assert csv_value("pct", 4.104) == "4,10"
    assert csv_value("text", "Äldreomsorg") == "Äldreomsorg"
    assert csv_value("deviation", None) == ""


def test_csv_quotes_separators_in_text() -> None:
    from services.reports.tables import Column, Row

    table = Table(
        "t",
        "T",
        "",
        (Column("a", "A; text", "text"), Column("b", "B", "money")),
        (Row(("x;y", 1.5)),),
    )
    parsed = list(csv.reader(io.StringIO(render_csv(table).decode("utf-8-sig")), delimiter=";"))
    assert parsed == [["A; text", "B"], ["x;y", "1,500"]]


def test_atomic_write_leaves_nothing_half_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = write_atomically(out, {"a.csv": b"1", "b.csv": b"2"})
    assert [p.read_bytes() for p in paths] == [b"1", b"2"]
    # A target that cannot be replaced (a directory in its place) fails the whole write: the
    # earlier complete file stays, no temporary file is left behind.
    (out / "c.csv").mkdir()
    with pytest.raises(UserError, match="cannot write the report"):
        write_atomically(out, {"a.csv": b"new", "c.csv": b"3"})
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.csv", "c.csv"]
    assert (out / "a.csv").read_bytes() in (b"1", b"new")


def test_out_that_is_a_file_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="exists and is not a directory"):
        write_atomically(blocker, {"a.csv": b"1"})
    with pytest.raises(UserError, match="cannot create the directory"):
        write_atomically(blocker / "sub", {"a.csv": b"1"})
