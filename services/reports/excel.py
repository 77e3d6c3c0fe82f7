"""Excel files of the reports (openpyxl): one sheet per table with real numbers.

Cells hold unrounded numbers in the unit of the column header (mnkr, %, h …); the number format
does the rounding and the Swedish look. Format codes in an xlsx file are locale independent
(``#,##0.0`` shows as ``1 051,5`` in a Swedish Excel). Deviation-like columns show negative
values (underskott) with a minus sign in red; a forecast change is red when it is an increase.
Each table sheet has a title row, a caption row and the header row, frozen together with the
first column, an autofilter, fixed column widths and a landscape, fit-to-width page setup.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime

from openpyxl import Workbook
from openpyxl.drawing.image import Image
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from services.reports.tables import ColumnKind, Report, Table

NUMBER_FORMATS: dict[ColumnKind, str] = {
    "text": "@",
    "money": "#,##0.0;-#,##0.0;0.0",
    "deviation": "#,##0.0;[Red]-#,##0.0;0.0",
    "pct": "0.0;[Red]-0.0;0.0",
    "change": "[Red]+#,##0.0;-#,##0.0;0.0",
    "volume": "#,##0;-#,##0;0",
    "volume_change": "+#,##0;-#,##0;0",
    "pct_change": "+0.0;-0.0;0.0",
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
CHART_ROWS = 21  # rows per chart image on the Diagram sheet (380 px at 20 px per row, + gap)


def _naive_utc(moment: datetime) -> datetime:
    """openpyxl cannot write aware datetimes; the cover says the time is UTC."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def write_table_sheet(ws: Worksheet, table: Table) -> None:
    ws.title = table.title
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
    for offset, row in enumerate(table.rows):
        excel_row = FIRST_DATA_ROW + offset
        for col, (column, value) in enumerate(zip(table.columns, row.cells, strict=True), start=1):
            cell = ws.cell(excel_row, col, value)
            if column.kind != "text":
                cell.number_format = NUMBER_FORMATS[column.kind]
            if row.total:
                cell.font = Font(bold=True)
                cell.fill = _TOTAL_FILL
                cell.border = Border(top=_THIN)
    ws.freeze_panes = FREEZE_AT
    last_row = FIRST_DATA_ROW + max(len(table.rows), 1) - 1
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
            (
                "Belopp",
                "mnkr (miljoner kronor) om inget annat anges. Nettokostnad: kostnader "
                "positiva, intäkter negativa. Avvikelse = budget − prognos; negativt värde = "
                "underskott, visas med minustecken i rött.",
            ),
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
    sheets = [(t.title, t.caption.split(":")[0]) for t in report.tables]
    if report.charts:
        sheets.append(("Diagram", "Utfall, budget och prognos per avdelning och för nämnden"))
    _key_value_rows(ws, contents + 1, sheets)


def _charts_sheet(ws: Worksheet, report: Report) -> None:
    ws.title = "Diagram"
    ws.cell(1, 1, "Diagram: nettokostnad per månad och ackumulerad avvikelse").font = Font(
        bold=True, size=14
    )
    for i, chart in enumerate(report.charts):
        image = Image(io.BytesIO(chart.png))
        image.width, image.height = chart.width_px, chart.height_px
        ws.add_image(image, f"A{2 + i * CHART_ROWS}")


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
    for table in report.tables:
        write_table_sheet(workbook.create_sheet(), table)
    if report.charts:
        _charts_sheet(workbook.create_sheet(), report)
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
