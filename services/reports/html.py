"""HTML and CSV renderings of the report tables.

HTML: one self-contained page (Jinja2, autoescape on) with the charts embedded as PNG data
URIs; numbers in Swedish format (space as thousands separator, decimal comma, the minus sign
U+2212), red for underskott, a caption per table.

CSV: one file per table, the way a Swedish Excel opens it without an import dialog: UTF-8 with
a byte order mark, semicolon as separator, decimal comma, no thousands separator, the ASCII
hyphen-minus as minus sign (Excel does not read U+2212 as a number), CRLF line ends. Amounts in
mnkr keep three decimals (whole tkr), percentages two, volumes and unit costs one; the header
row names the unit of every column.
"""

from __future__ import annotations

import base64
import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from core.swedish import format_number_sv
from services.reports.tables import MEASURE_STATUS_SV, Cell, ColumnKind, Report, Table

TEMPLATE_DIR = Path(__file__).parent / "templates"

#: Decimals shown in the HTML report (the Excel number formats round the same way).
DISPLAY_DECIMALS: dict[ColumnKind, int] = {
    "money": 1,
    "deviation": 1,
    "pct": 1,
    "change": 1,
    "volume": 0,
    "volume_change": 0,
    "pct_change": 1,
    "pct_level": 1,
    "ratio": 0,
    "ratio_deviation": 0,
}
CSV_DECIMALS: dict[ColumnKind, int] = {
    "money": 3,
    "deviation": 3,
    "change": 3,
    "pct": 2,
    "pct_change": 2,
    "pct_level": 2,
    "volume": 1,
    "volume_change": 1,
    "ratio": 1,
    "ratio_deviation": 1,
}
SIGNED_KINDS = {"change", "volume_change", "pct_change"}
#: One sign convention: negative = underskott or försämring, red (the legend says so).
RED_WHEN_NEGATIVE = {
    "deviation",
    "pct",
    "ratio_deviation",
    "change",
    "volume_change",
    "pct_change",
}
DASH = "–"
NBSP = "\u00a0"
#: A space inside a number ("1 051,5") or between a number and its unit ("4,1 %", "43,1 mnkr").
_BREAKABLE_SPACE = re.compile(
    r"(?<=\d) (?=\d{3}(?!\d))|(?<=\d) (?=(?:%|mnkr|tkr|kr|procentenheter|timmar|h|st)(?![\w]))"
)


def nbsp(text: str) -> str:
    """Non-breaking spaces inside numbers and before units, so "−4,1 %" never wraps."""
    return _BREAKABLE_SPACE.sub(NBSP, text)


@dataclass(frozen=True)
class DisplayCell:
    text: str
    css: str


def format_cell(kind: ColumnKind, value: Cell) -> DisplayCell:
    """A cell as the HTML report and the terminal show it: text and CSS classes."""
    if kind == "text":
        return DisplayCell("" if value is None else str(value), "text")
    if value is None or isinstance(value, str):
        return DisplayCell(DASH if value is None else value, "num")
    decimals = DISPLAY_DECIMALS[kind]
    text = format_number_sv(value, decimals)
    shown = round(value, decimals)
    if kind in SIGNED_KINDS and shown > 0:
        text = "+" + text
    red = kind in RED_WHEN_NEGATIVE and shown < 0
    return DisplayCell(text, "num neg" if red else "num")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters["nbsp"] = nbsp
    env.filters["mnkr"] = lambda sek: nbsp(format_number_sv(sek / 1e6)) if sek is not None else DASH
    return env


def _table_view(table: Table, notes: tuple[str, ...] = ()) -> dict[str, object]:
    return {
        "slug": table.slug,
        "title": table.title,
        "caption": table.caption,
        "notes": notes,
        "columns": [
            {"header": nbsp(c.header), "css": "text" if c.kind == "text" else "num"}
            for c in table.columns
        ],
        "rows": [
            {
                "total": row.total,
                "level": row.level or "",
                "cells": [
                    _html_cell(format_cell(c.kind, v))
                    for c, v in zip(table.columns, row.cells, strict=True)
                ],
            }
            for row in table.rows
        ],
    }


def _html_cell(cell: DisplayCell) -> DisplayCell:
    return DisplayCell(nbsp(cell.text), cell.css)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(report: Report) -> str:
    created = report.snapshot.created_at
    if created.tzinfo is not None:
        created = created.astimezone(UTC)
    notes = {"personalkostnader": report.staff_notes}
    template = _environment().get_template("delarsrapport.html.j2")
    return template.render(
        report=report,
        created=created.strftime("%Y-%m-%d %H:%M"),
        tables=[_table_view(t, notes.get(t.slug, ())) for t in report.tables],
        analyses=[
            a
            for a in report.analyses
            if a.comment or a.measures or a.adjusted_full_year_sek is not None or a.drivers
        ],
        status_labels=MEASURE_STATUS_SV,
        charts=[
            {
                "org_unit": c.org_unit,
                "title": c.title,
                "src": data_uri(c.png),
                "width": c.width_px,
                "height": c.height_px,
            }
            for c in report.charts
        ],
    )


def csv_value(kind: ColumnKind, value: Cell) -> str:
    if value is None:
        return ""
    if kind == "text" or isinstance(value, str):
        return str(value)
    text = f"{value:.{CSV_DECIMALS[kind]}f}"
    if float(text) == 0:
        text = text.lstrip("-")  # no "-0,000"
    return text.replace(".", ",")


def render_csv(table: Table) -> bytes:
    """One table as Swedish-Excel CSV (see module doc)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([c.header for c in table.columns])
    for row in table.rows:
        writer.writerow(
            [csv_value(c.kind, v) for c, v in zip(table.columns, row.cells, strict=True)]
        )
    return buffer.getvalue().encode("utf-8-sig")
