"""Prognossäkerhet: every snapshot's full-year forecast of a year against the year's outcome.

The outcome is the net cost to date (``actual_ytd``, category ``total``) of the latest version
of the year's December snapshot (period ``YYYY-12``, as of month 12): only then are the year's
actuals complete. Every earlier snapshot of the year (the latest version of each period) is
compared with it per level: the nämnd, each förvaltning and each avdelning.

*Avvikelse* = prognos − utfall, the one sign convention of every report: negative = the outcome
was worse (a higher net cost) than the forecast, shown red; *Avvikelse %* is relative to the
outcome. Beside the model's forecast stands the förvaltning's approved forecast of the same
checkpoint (from the follow-up: the model's figure with the förvaltning's adjustments, when the
period's forecast was approved), so the nämnd sees whether the adjustments helped. The sentence is
the one the annual report carries (Knivsta 2024: "Utfallet är 4,3 miljoner kronor bättre än
prognosen efter augusti månad").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.domain import DomainConfig
from core.errors import UserError
from core.swedish import MONTH_NAMES_SV, format_mnkr
from forecasts.live import TOTAL
from services.reports.tables import (
    MNKR,
    Column,
    Row,
    SnapshotInfo,
    SnapshotLike,
    Table,
    adjusted_nodes,
    forvaltning_forecasts,
    node_name,
    report_namnd,
    report_nodes,
    snapshot_info,
)

#: The snapshot whose sentences are written per avdelning too: the delårsrapport (August).
DELAR_MONTH = 8
LEVEL_ORDER = ("namnd", "forvaltning", "avdelning")
LEVEL_LABELS = {"namnd": "Nämnd", "forvaltning": "Förvaltning", "avdelning": "Avdelning"}
#: The columns of the förvaltning's approved forecast in the prognossäkerhet table.
FORVALTNING_KEYS = ("prognos_forv", "skillnad_forv")


@dataclass(frozen=True)
class AccuracyRow:
    org_unit: str
    name: str
    level: str
    snapshot: SnapshotInfo
    forecast: float  # full-year forecast at the snapshot, SEK
    outcome: float  # the year's actual net cost, SEK
    adjusted: float | None = None  # förvaltningens godkända prognos, SEK (None: none approved)

    @property
    def difference(self) -> float:
        """Prognos − utfall: positive means the outcome was better (lower cost)."""
        return self.forecast - self.outcome

    @property
    def difference_pct(self) -> float | None:
        return None if self.outcome == 0 else 100.0 * self.difference / self.outcome

    @property
    def adjusted_difference(self) -> float | None:
        """Förvaltningens prognos − utfall; None without an approved förvaltning forecast."""
        return None if self.adjusted is None else self.adjusted - self.outcome


@dataclass(frozen=True)
class Accuracy:
    year: int
    outcome_snapshot: SnapshotInfo
    rows: tuple[AccuracyRow, ...]
    sentences: tuple[str, ...]

    def row(self, org_unit: str, period: str) -> AccuracyRow:
        return next(r for r in self.rows if r.org_unit == org_unit and r.snapshot.period == period)

    def table(self) -> Table:
        columns: tuple[Column, ...] = (
            Column("niva", "Nivå", "text", 12),
            Column("ansvar", "Ansvar", "text", 9),
            Column("verksamhet", "Verksamhet", "text", 32),
            Column("prognostillfalle", "Prognos", "text", 16),
            Column("period", "Period", "text", 10),
            Column("prognos", "Modellens prognos helår (mnkr)", "money", 15),
            Column("prognos_forv", "Förvaltningens godkända prognos (mnkr)", "money", 16),
            Column("utfall", "Utfall helår (mnkr)", "money"),
            Column("skillnad", "Avvikelse modellens prognos − utfall (mnkr)", "deviation", 18),
            Column("skillnad_pct", "Avvikelse modellen (% av utfall)", "pct", 14),
            Column(
                "skillnad_forv", "Avvikelse förvaltningens prognos − utfall (mnkr)", "deviation", 18
            ),
        )
        # The förvaltning's columns only when some forecast of the year was approved: a column
        # of dashes tells the nämnd nothing.
        keep = [
            c.key not in FORVALTNING_KEYS or any(r.adjusted is not None for r in self.rows)
            for c in columns
        ]
        rows = tuple(
            Row(
                tuple(
                    cell
                    for cell, kept in zip(
                        (
                            LEVEL_LABELS.get(r.level, r.level),
                            r.org_unit,
                            r.name,
                            r.snapshot.label,
                            r.snapshot.period,
                            r.forecast / MNKR,
                            None if r.adjusted is None else r.adjusted / MNKR,
                            r.outcome / MNKR,
                            r.difference / MNKR,
                            r.difference_pct,
                            None if r.adjusted_difference is None else r.adjusted_difference / MNKR,
                        ),
                        keep,
                        strict=True,
                    )
                    if kept
                ),
                r.org_unit,
                r.level,
                TOTAL,
                r.level == "namnd",
            )
            for r in self.rows
        )
        columns = tuple(c for c, kept in zip(columns, keep, strict=True) if kept)
        snap = self.outcome_snapshot
        return Table(
            "prognossakerhet",
            "Prognossäkerhet",
            f"Prognossäkerhet {self.year}: helårsprognosen (nettokostnad) vid varje snapshot "
            f"jämförd med årets utfall (snapshot {snap.period}, id {snap.id}, version "
            f"{snap.version}). Avvikelse = prognos − utfall, samma tecken som i hela rapporten: "
            "ett negativt värde (rött) betyder att utfallet blev sämre (högre nettokostnad) än "
            "prognosen, ett positivt att det blev bättre."
            + (
                " Förvaltningens godkända prognos är modellens prognos med förvaltningens "
                "justeringar vid prognostillfällen där prognosen godkändes (– = ingen godkänd "
                "prognos)."
                if any(r.adjusted is not None for r in self.rows)
                else " Ingen av årets prognoser godkändes med förvaltningens justeringar."
            ),
            columns,
            rows,
        )


def accuracy_sentence(subject: str, difference_sek: float, as_of_month: int) -> str:
    """'Utfallet för nämnden blev 4,3 mnkr bättre än prognosen efter augusti.'

    ``difference_sek`` is prognos − utfall of a net cost: positive is better.
    """
    month = MONTH_NAMES_SV[as_of_month - 1]
    if round(abs(difference_sek) / MNKR, 1) == 0:
        return f"Utfallet för {subject} blev i nivå med prognosen efter {month}."
    word = "bättre" if difference_sek > 0 else "sämre"
    return (
        f"Utfallet för {subject} blev {format_mnkr(abs(difference_sek))} mnkr {word} än "
        f"prognosen efter {month}."
    )


def _subject(level: str, name: str) -> str:
    return {"namnd": "nämnden", "forvaltning": "förvaltningen"}.get(level, name)


def _latest_per_period(snapshots: Sequence[SnapshotLike], year: int) -> list[SnapshotLike]:
    latest: dict[str, SnapshotLike] = {}
    for snap in sorted(snapshots, key=lambda s: (s.period, s.version)):
        if snap.forecast.year == year:
            latest[snap.period] = snap
    return list(latest.values())


def compute_accuracy(
    snapshots: Sequence[SnapshotLike],
    domain: DomainConfig,
    year: int,
    follow_ups: Mapping[str, Any] | None = None,
    *,
    checkpoints_only: bool = False,
) -> Accuracy:
    """Compare the year's snapshots with its outcome; a :class:`UserError` without December.

    ``follow_ups`` maps a period to its ``PeriodFollowUp`` (the förvaltning's approved forecast);
    ``checkpoints_only`` keeps only snapshots taken at a named checkpoint.
    """
    of_year = _latest_per_period(snapshots, year)
    december = next((s for s in of_year if s.period == f"{year:04d}-12"), None)
    if december is None or december.forecast.as_of_month != 12:
        periods = ", ".join(s.period for s in of_year) or "none"
        raise UserError(
            f"the outcome of {year} is not complete: there is no snapshot of "
            f"{year:04d}-12 (snapshots of {year}: {periods}). Prognossäkerhet compares with "
            f"the December snapshot's outcome; take it when December is closed "
            f"(`budgetvakt snapshot --period {year:04d}-12`)."
        )
    earlier = [s for s in of_year if s.period < december.period]
    if checkpoints_only:
        earlier = [s for s in earlier if s.checkpoint] or earlier
    if not earlier:
        raise UserError(
            f"there are no snapshots before {year:04d}-12 to compare with the outcome of {year}."
        )
    outcome_forecast = december.forecast
    org = domain.org
    nodes = sorted(
        (n for n in report_nodes(org, outcome_forecast) if n.level in LEVEL_ORDER),
        key=lambda n: LEVEL_ORDER.index(n.level),
    )
    approved: dict[str, dict[str, float]] = {}
    for snap in earlier:
        follow_up = (follow_ups or {}).get(snap.period)
        if follow_up is None or not _is_approved(follow_up, report_namnd(org).id, snap.version):
            continue
        approved[snap.period] = forvaltning_forecasts(snap.forecast, org, adjusted_nodes(follow_up))
    rows = []
    for node in nodes:
        outcome = outcome_forecast.get(node.id, TOTAL)
        if outcome is None:
            continue
        for snap in earlier:
            fc = snap.forecast.get(node.id, TOTAL)
            if fc is None:
                continue
            rows.append(
                AccuracyRow(
                    node.id,
                    node_name(org, node.id),
                    node.level,
                    snapshot_info(snap),
                    fc.full_year,
                    outcome.actual_ytd,
                    approved.get(snap.period, {}).get(node.id),
                )
            )
    return Accuracy(year, snapshot_info(december), tuple(rows), tuple(_sentences(rows, earlier)))


def _is_approved(follow_up: Any, root_id: str, version: int) -> bool:
    node = follow_up.nodes.get(root_id)
    approval = getattr(node, "approval", None) if node is not None else None
    return approval is not None and approval.snapshot_version == version


def adjustment_sentence(row: AccuracyRow) -> str | None:
    """Whether the förvaltning's adjustments brought its forecast nearer the outcome."""
    if row.adjusted_difference is None:
        return None
    model, adjusted = abs(row.difference), abs(row.adjusted_difference)
    month = MONTH_NAMES_SV[row.snapshot.as_of_month - 1]
    subject = _subject(row.level, row.name)
    gap = abs(model - adjusted)
    if round(gap / MNKR, 1) == 0:
        return (
            f"Förvaltningens godkända prognos efter {month} för {subject} träffade lika nära "
            "som modellens."
        )
    better = adjusted < model
    return (
        f"Förvaltningens godkända prognos efter {month} för {subject} låg "
        f"{format_mnkr(gap)} mnkr {'närmare' if better else 'längre från'} utfallet än "
        f"modellens: justeringarna {'hjälpte' if better else 'hjälpte inte'}."
    )


def _sentences(rows: Sequence[AccuracyRow], earlier: Sequence[SnapshotLike]) -> list[str]:
    """The nämnd against every snapshot, then each avdelning against the delår snapshot."""
    delar = next((s for s in earlier if s.forecast.as_of_month == DELAR_MONTH), earlier[-1]).period
    out = [
        accuracy_sentence(_subject(r.level, r.name), r.difference, r.snapshot.as_of_month)
        for r in rows
        if r.level == "namnd"
    ]
    out += [
        accuracy_sentence(_subject(r.level, r.name), r.difference, r.snapshot.as_of_month)
        for r in rows
        if r.level == "avdelning" and r.snapshot.period == delar
    ]
    out += [s for r in rows if r.level == "namnd" and (s := adjustment_sentence(r)) is not None]
    return out
