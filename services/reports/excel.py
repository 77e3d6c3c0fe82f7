"""Excel files of the reports (openpyxl): one sheet per table with real numbers.

Cells hold unrounded numbers in the unit of the column header (mnkr, %, h …); the number format
does the rounding and the Swedish look. Format codes in an xlsx file are locale independent
(``#,##0.0`` shows as ``1 051,5`` in a Swedish Excel). Deviation-like columns show negative
values (underskott) with a minus sign in red; a forecast change is red when it is an increase.
Each table sheet has a title row, a caption row and the header row, frozen together with the
first column, fixed column widths and a landscape, fit-to-width page setup. The data rows come
first with an autofilter over them only; the sum rows (Summa …) follow after an empty row, so
sorting or filtering never mixes a sum into the parts. The charts are native Excel charts
(openpyxl.chart) drawn from a data sheet, so a controller can restyle or copy them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime

from openpyxl import Workbook
from openpyxl.chart import LineChart, Reference
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from core.swedish import MONTH_TICKS_SV, format_mnkr
from services.reports.tables import MEASURE_STATUS_SV, MNKR, ColumnKind, Report, Row, Table

NUMBER_FORMATS: dict[ColumnKind, str] = {
    "text": "@",
    "money": "#,##0.0;-#,##0.0;0.0",
    "deviation": "#,##0.0;[Red]-#,##0.0;0.0",
    "pct": "0.0;[Red]-0.0;0.0",
    "change": "+#,##0.0;[Red]-#,##0.0;0.0",
    "volume": "#,##0;-#,##0;0",
    "volume_change": "+#,##0;[Red]-#,##0;0",
    "pct_change": "+0.0;[Red]-0.0;0.0",
    "pct_level": "0.0;-0.0;0.0",
    "ratio": "#,##0;-#,##0;0",
    "ratio_deviation": "#,##0;[Red]-#,##0;0",
}
TITLE_ROW, CAPTION_ROW, HEADER_ROW = 1, 2, 3
FIRST_DATA_ROW = HEADER_ROW + 1
#: Top-left cell of the scrolling area: the title, caption and header rows and column A stay.
FREEZE_AT = f"B{FIRST_DATA_ROW}"

_HEADER_FILL = PatternFill("solid", fgColor="DCE6F1")
_TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
_THIN = Side(style="thin", color="808080")
CHART_ROWS = 18  # rows per chart on the Diagram sheet (8,5 cm high, + gap)


def _naive_utc(moment: datetime) -> datetime:
    """openpyxl cannot write aware datetimes; the cover says the time is UTC."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def placement(table: Table) -> list[tuple[int, Row]]:
    """(sheet row, table row): the data rows from FIRST_DATA_ROW, then after one empty row the
    sum rows, so that the autofilter covers the data rows only."""
    data = [r for r in table.rows if not r.total]
    sums = [r for r in table.rows if r.total]
    placed = [(FIRST_DATA_ROW + i, r) for i, r in enumerate(data)]
    first_sum = FIRST_DATA_ROW + len(data) + (1 if data else 0)
    return placed + [(first_sum + i, r) for i, r in enumerate(sums)]


def write_table_sheet(ws: Worksheet, table: Table) -> None:
    ws.title = table.title[:31]
    last_column = len(table.columns)
    ws.cell(TITLE_ROW, 1, table.title).font = Font(bold=True, size=14)
    caption = ws.cell(CAPTION_ROW, 1, table.caption)
    caption.alignment = Alignment(wrap_text=True, vertical="top")
    ws.merge_cells(
        start_row=CAPTION_ROW, start_column=1, end_row=CAPTION_ROW, end_column=last_column
    )
    ws.row_dimensions[CAPTION_ROW].height = 48
    for col, column in enumerate(table.columns, start=1):
        cell = ws.cell(HEADER_ROW, col, column.header)
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(
            wrap_text=True,
            vertical="bottom",
            horizontal="left" if column.kind == "text" else "right",
        )
        cell.border = Border(bottom=_THIN)
        ws.column_dimensions[get_column_letter(col)].width = column.width
    ws.row_dimensions[HEADER_ROW].height = 45
    placed = placement(table)
    data = [r for _, r in placed if not r.total]
    for excel_row, row in placed:
        for col, (column, value) in enumerate(zip(table.columns, row.cells, strict=True), start=1):
            cell = ws.cell(excel_row, col, value)
            if column.kind != "text":
                cell.number_format = NUMBER_FORMATS[column.kind]
            if row.total:
                cell.font = Font(bold=True)
                cell.fill = _TOTAL_FILL
                cell.border = Border(top=_THIN)
    ws.freeze_panes = FREEZE_AT
    if data:
        last_row = FIRST_DATA_ROW + len(data) - 1
        ws.auto_filter.ref = f"A{HEADER_ROW}:{get_column_letter(last_column)}{last_row}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"


def _key_value_rows(ws: Worksheet, start: int, rows: Sequence[tuple[str, object]]) -> int:
    for offset, (label, value) in enumerate(rows):
        ws.cell(start + offset, 1, label).font = Font(bold=True)
        cell = ws.cell(start + offset, 2, value)
        if isinstance(value, datetime):
            cell.number_format = "yyyy-mm-dd hh:mm"
        cell.alignment = Alignment(horizontal="left", wrap_text=True, vertical="top")
    return start + len(rows)


def _cover(ws: Worksheet, report: Report) -> None:
    ws.title = "Försättsblad"
    ws.column_dimensions["A"].width = 30
    ws.column_dimensions["B"].width = 100
    ws.cell(1, 1, f"Delårsrapport {report.year}").font = Font(bold=True, size=18)
    ws.cell(2, 1, f"Prognos efter {report.month_name}").font = Font(bold=True, size=14)
    snap = report.snapshot
    compared = ", ".join(
        f"{c.label} (period {c.period}, id {c.id}, version {c.version})" for c in report.compared
    )
    row = _key_value_rows(
        ws,
        4,
        [
            ("Status", report.status),
            ("Kommun", report.municipality),
            ("Nämnd", report.namnd_name),
            ("Förvaltning", ", ".join(report.forvaltning_names)),
            ("Period", f"{report.period} (januari–{report.month_name} {report.year})"),
            ("Prognos", f"Prognos efter {report.month_name}"),
            ("Snapshot-id", snap.id),
            ("Snapshot-version", snap.version),
            ("Skapad (UTC)", _naive_utc(snap.created_at)),
            ("Kontrollpunkt", snap.checkpoint or "–"),
            ("Utlöst av", snap.trigger),
            ("Sena händelser i snapshoten", snap.late_event_count),
            ("Jämförda prognoser", compared),
            *(("Teckenförklaring" if i == 0 else "", line) for i, line in enumerate(report.legend)),
        ],
    )
    ws.cell(row + 1, 1, "Sammanfattning").font = Font(bold=True, size=12)
    for offset, sentence in enumerate(report.summary, start=row + 2):
        cell = ws.cell(offset, 1, sentence)
        ws.merge_cells(start_row=offset, start_column=1, end_row=offset, end_column=2)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.row_dimensions[offset].height = 30
    contents = row + 3 + len(report.summary)
    ws.cell(contents, 1, "Innehåll").font = Font(bold=True, size=12)
    sheets = [("Analys", "Analys och åtgärder per verksamhet, prognosmetod och intervall")]
    sheets += [(t.title[:31], t.caption.split(". ")[0]) for t in report.tables]
    if report.chart_data:
        sheets.append(("Diagram", "Utfall, budget och prognos per avdelning och för nämnden"))
    _key_value_rows(ws, contents + 1, sheets)


def _analysis_sheet(ws: Worksheet, report: Report) -> None:
    """Analys och åtgärder as text, then the method notes: what the HTML says, in one column."""
    ws.title = "Analys"
    ws.column_dimensions["A"].width = 130
    row = 1
    ws.cell(row, 1, "Analys och åtgärder").font = Font(bold=True, size=14)

    def line(text: str, bold: bool = False) -> None:
        nonlocal row
        row += 1
        cell = ws.cell(row, 1, text)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        if bold:
            cell.font = Font(bold=True, size=12)

    for a in report.analyses:
        if not (a.comment or a.measures or a.drivers or a.adjusted_full_year_sek is not None):
            continue
        row += 1
        line(a.name, bold=True)
        if a.comment:
            line(a.comment + (f" ({a.comment_by})" if a.comment_by else ""))
        if a.adjusted_full_year_sek is not None:
            line(
                f"Förvaltningens prognos {format_mnkr(a.adjusted_full_year_sek)} mnkr "
                f"(modellens {format_mnkr(a.model_full_year_sek or 0.0)} mnkr). Skäl: "
                f"{a.adjustment_reason or '–'}"
            )
        elif (
            a.forvaltning_full_year_sek is not None
            and a.model_full_year_sek is not None
            and abs(a.forvaltning_full_year_sek - a.model_full_year_sek) >= 0.05 * MNKR
        ):
            line(
                f"Förvaltningens prognos {format_mnkr(a.forvaltning_full_year_sek)} mnkr "
                f"(modellens {format_mnkr(a.model_full_year_sek)} mnkr), med justeringarna på "
                "enheterna nedan."
            )
        if a.drivers:
            line("Största avvikelser mot budget: " + "; ".join(a.drivers) + ".")
        for m in a.measures:
            realised = (
                f", realiserat {format_mnkr(m.realised_sek)} mnkr"
                if m.realised_sek is not None
                else ""
            )
            line(
                f"Åtgärd: {m.text} ({MEASURE_STATUS_SV.get(m.status, m.status).lower()}"
                f"{' ' + m.decided.isoformat() if m.decided else ''}, ansvarig {m.responsible}): "
                f"bedömd besparing {format_mnkr(m.amount_sek)} mnkr{realised}."
            )
    row += 1
    line("Personalkostnader", bold=True)
    for note in report.staff_notes or ("Inga kommentarer.",):
        line(note)
    row += 1
    line("Prognosmetod och intervall", bold=True)
    for note in report.method_notes:
        line(note)


def _chart_data_sheet(ws: Worksheet, report: Report) -> list[tuple[str, int]]:
    """Monthly figures of every charted node in mnkr; (title, first row) of each block."""
    ws.title = "Diagramdata"
    ws.column_dimensions["A"].width = 10
    blocks = []
    row = 1
    for _org_unit, name, node in report.chart_data:
        ws.cell(row, 1, name).font = Font(bold=True)
        headers = ("Månad", "Utfall", "Budget", "Prognos", "80 % lägre", "80 % övre")
        for col, header in enumerate(headers, start=1):
            ws.cell(row + 1, col, header).font = Font(bold=True)
        as_of = node.as_of_month
        spread = node.month_spread
        for month in range(1, 13):
            r = row + 1 + month
            ws.cell(r, 1, MONTH_TICKS_SV[month - 1])
            if month <= as_of:
                ws.cell(r, 2, node.actual_monthly[month - 1] / MNKR)
            if node.budget_monthly is not None:
                ws.cell(r, 3, node.budget_monthly[month - 1] / MNKR)
            if month > as_of:
                value = node.path[month - as_of - 1]
                ws.cell(r, 4, value / MNKR)
                ws.cell(r, 5, (value - spread) / MNKR)
                ws.cell(r, 6, (value + spread) / MNKR)
            elif month == as_of:  # the forecast line starts at the last actual month
                ws.cell(r, 4, node.actual_monthly[month - 1] / MNKR)
            for col in range(2, 7):
                ws.cell(r, col).number_format = "#,##0.0"
        blocks.append((name, row + 1))
        row += 16
    return blocks


def _charts_sheet(ws: Worksheet, data: Worksheet, blocks: list[tuple[str, int]]) -> None:
    ws.title = "Diagram"
    ws.cell(1, 1, "Diagram: nettokostnad per månad, utfall, budget och prognos (mnkr)").font = Font(
        bold=True, size=14
    )
    for i, (name, header_row) in enumerate(blocks):
        chart = LineChart()
        chart.title = f"{name}: nettokostnad per månad (mnkr)"
        chart.y_axis.title = "mnkr"
        chart.y_axis.numFmt = "#,##0"
        chart.height, chart.width = 8.5, 22
        values = Reference(data, min_col=2, max_col=6, min_row=header_row, max_row=header_row + 12)
        chart.add_data(values, titles_from_data=True)
        chart.set_categories(
            Reference(data, min_col=1, min_row=header_row + 1, max_row=header_row + 12)
        )
        styles = (
            ("1F5F8B", None),
            ("444444", "dash"),
            ("C0392B", None),
            ("F1A9A0", "sysDot"),
            ("F1A9A0", "sysDot"),
        )
        for series, (colour, dash) in zip(chart.series, styles, strict=True):
            series.graphicalProperties.line.solidFill = colour
            if dash:
                series.graphicalProperties.line.dashStyle = dash
            series.smooth = False
        ws.add_chart(chart, f"A{2 + i * CHART_ROWS}")


def _save(workbook: Workbook, created: datetime) -> bytes:
    # Fixed document dates, so that the same snapshot gives the same file metadata.
    workbook.properties.created = _naive_utc(created)
    workbook.properties.modified = _naive_utc(created)
    workbook.properties.creator = "budgetvakt"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def render_xlsx(report: Report) -> bytes:
    """The delårsrapport workbook: cover, one sheet per table, the charts."""
    workbook = Workbook()
    _cover(workbook.active, report)
    _analysis_sheet(workbook.create_sheet(), report)
    for table in report.tables:
        write_table_sheet(workbook.create_sheet(), table)
    if report.chart_data:
        charts = workbook.create_sheet()
        data = workbook.create_sheet()
        _charts_sheet(charts, data, _chart_data_sheet(data, report))
    workbook.properties.title = report.title
    return _save(workbook, report.snapshot.created_at)


def render_tables_xlsx(
    tables: Sequence[Table], *, title: str, notes: Sequence[str], created: datetime
) -> bytes:
    """A workbook of plain tables, with the notes (e.g. the accuracy sentences) on a last sheet."""
    workbook = Workbook()
    first = True
    for table in tables:
        ws = workbook.active if first else workbook.create_sheet()
        first = False
        write_table_sheet(ws, table)
    if notes:
        ws = workbook.create_sheet("Kommentar")
        ws.column_dimensions["A"].width = 120
        ws.cell(1, 1, "Kommentar").font = Font(bold=True, size=14)
        for row, note in enumerate(notes, start=2):
            ws.cell(row, 1, note).alignment = Alignment(wrap_text=True)
    workbook.properties.title = title
    return _save(workbook, created)
