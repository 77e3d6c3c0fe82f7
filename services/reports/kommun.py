"""The kommun summary beside the nämnder's delårsrapporter: per nämnd budget, utfall t.o.m.,
förvaltningens prognos and avvikelse, summed to kommun.

Every figure is read from the nämnd's own report (its driftredovisning's nämnd row), so the
summary and the reports cannot disagree. Same sign convention as everywhere: avvikelse = budget
− prognos, negative = underskott. Unknown cost centres (``omappad``) are shown on a row of their
own below the sums: they belong to no nämnd, so no kommun sum takes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.domain import DomainConfig
from core.hierarchy import UNMAPPED_ID, UNMAPPED_NAME
from core.swedish import MONTH_NAMES_SV, format_mnkr
from forecasts.live import TOTAL, NodeForecast
from services.reports.tables import LEGEND, Column, Report, Row, Table

MNKR = 1e6
KOMMUN_STEM = "kommunsammanstallning"


@dataclass(frozen=True)
class NamndFigures:
    namnd: str
    name: str
    municipality: str
    version: int
    approved: bool
    budget_sek: float | None
    actual_ytd_sek: float | None
    forecast_sek: float | None  # förvaltningens prognos (the model's where not adjusted)

    @property
    def deviation_sek(self) -> float | None:
        if self.budget_sek is None or self.forecast_sek is None:
            return None
        return self.budget_sek - self.forecast_sek


def _sek(value: object) -> float | None:
    return None if not isinstance(value, int | float) else float(value) * MNKR


def namnd_figures(report: Report, municipality: str) -> NamndFigures:
    """The nämnd row of the report's driftredovisning."""
    table = next(t for t in report.tables if t.slug == "driftredovisning")
    row = table.find(report.namnd_id)
    return NamndFigures(
        namnd=report.namnd_id,
        name=report.namnd_name,
        municipality=municipality,
        version=report.snapshot.version,
        approved=report.approved,
        budget_sek=_sek(table.value(row, "budget")),
        actual_ytd_sek=_sek(table.value(row, "utfall")),
        forecast_sek=_sek(table.value(row, "prognos")),
    )


def _sum(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _mnkr(value: float | None) -> float | None:
    return None if value is None else value / MNKR


def _pct(part: float | None, whole: float | None) -> float | None:
    return None if part is None or not whole else 100.0 * part / whole


def kommun_table(
    figures: Sequence[NamndFigures],
    period: str,
    as_of_month: int,
    unmapped: NodeForecast | None = None,
) -> Table:
    """One row per nämnd, a sum row per kommun (in configuration order), omappad last."""
    month = MONTH_NAMES_SV[as_of_month - 1]
    columns = (
        Column("ansvar", "Ansvar", "text", 9),
        Column("verksamhet", "Nämnd", "text", 36),
        Column("budget", "Budget helår (mnkr)", "money"),
        Column("utfall", f"Utfall t.o.m. {month} (mnkr)", "money"),
        Column("prognos", "Prognos helår (mnkr)", "money", 15),
        Column("avvikelse", "Avvikelse budget − prognos (mnkr)", "deviation", 16),
        Column("avvikelse_pct", "Avvikelse (%)", "pct", 12),
        Column("status", "Prognosen", "text", 22),
    )
    rows: list[Row] = []
    kommuner: dict[str, list[NamndFigures]] = {}
    for figure in figures:
        kommuner.setdefault(figure.municipality, []).append(figure)
    for municipality, members in kommuner.items():
        for f in members:
            status = f"godkänd (version {f.version})" if f.approved else "inte godkänd"
            rows.append(
                Row(
                    (
                        f.namnd,
                        f.name,
                        _mnkr(f.budget_sek),
                        _mnkr(f.actual_ytd_sek),
                        _mnkr(f.forecast_sek),
                        _mnkr(f.deviation_sek),
                        _pct(f.deviation_sek, f.budget_sek),
                        status,
                    ),
                    f.namnd,
                    "namnd",
                    TOTAL,
                )
            )
        budget = _sum([f.budget_sek for f in members])
        forecast = _sum([f.forecast_sek for f in members])
        deviation = None if budget is None or forecast is None else budget - forecast
        rows.append(
            Row(
                (
                    "",
                    f"Summa {municipality or 'kommunen'}",
                    _mnkr(budget),
                    _mnkr(_sum([f.actual_ytd_sek for f in members])),
                    _mnkr(forecast),
                    _mnkr(deviation),
                    _pct(deviation, budget),
                    "",
                ),
                None,
                "kommun",
                TOTAL,
                total=True,
            )
        )
    if unmapped is not None:
        rows.append(
            Row(
                (
                    UNMAPPED_ID,
                    f"{UNMAPPED_NAME} (ingår inte i summorna)",
                    None,
                    _mnkr(unmapped.actual_ytd),
                    _mnkr(unmapped.full_year),
                    None,
                    None,
                    "",
                ),
                UNMAPPED_ID,
                "namnd",
                TOTAL,
            )
        )
    return Table(
        KOMMUN_STEM,
        "Kommunsammanställning",
        f"Nämndernas budget, utfall och prognos efter {month} {period[:4]}, summerat per "
        "kommun. Prognos = förvaltningens prognos (modellens där den inte har justerats), ur "
        "varje nämnds delårsrapport. Avvikelse = budget − prognos; ett negativt värde är ett "
        "underskott.",
        columns,
        tuple(rows),
    )


def kommun_sentences(figures: Sequence[NamndFigures], period: str, as_of_month: int) -> list[str]:
    """One Swedish sentence per kommun: its summed budget, prognos and avvikelse."""
    month = MONTH_NAMES_SV[as_of_month - 1]
    kommuner: dict[str, list[NamndFigures]] = {}
    for figure in figures:
        kommuner.setdefault(figure.municipality, []).append(figure)
    out = []
    for municipality, members in kommuner.items():
        budget = _sum([f.budget_sek for f in members]) or 0.0
        forecast = _sum([f.forecast_sek for f in members]) or 0.0
        deviation = budget - forecast
        word = "underskott" if deviation < 0 else "överskott"
        out.append(
            f"{municipality or 'Kommunen'} ({len(members)} nämnder) efter {month} "
            f"{period[:4]}: budget {format_mnkr(budget)} mnkr, prognos {format_mnkr(forecast)} "
            f"mnkr, avvikelse {format_mnkr(deviation)} mnkr ({word})."
        )
    return out


def kommun_files(
    table: Table, sentences: Sequence[str], period: str, created: datetime
) -> Mapping[str, bytes]:
    from services.reports.excel import render_tables_xlsx
    from services.reports.html import render_csv

    stem = f"{KOMMUN_STEM}-{period}"
    return {
        f"{stem}.csv": render_csv(table),
        f"{stem}.xlsx": render_tables_xlsx(
            [table], title=table.title, notes=[*sentences, *LEGEND], created=created
        ),
    }


def municipality_of(domain: DomainConfig, namnd: str) -> str:
    return domain.org.municipality_of(namnd) or domain.municipality
