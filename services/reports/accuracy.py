"""Prognossäkerhet: every snapshot's full-year forecast of a year against the year's outcome.

The outcome is the net cost to date (``actual_ytd``, category ``total``) of the latest version
of the year's December snapshot (period ``YYYY-12``, as of month 12): only then are the year's
actuals complete. Every earlier snapshot of the year (the latest version of each period) is
compared with it per level: the nämnd, each förvaltning and each avdelning.

*Skillnad* = prognos − utfall. For a net cost a positive difference means the outcome was
lower, i.e. better than the forecast; *Skillnad %* is relative to the outcome. The sentence is
the one the annual report carries (Knivsta 2024: "Utfallet är 4,3 miljoner kronor bättre än
prognosen efter augusti månad").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
    node_name,
    report_nodes,
    snapshot_info,
)

#: The snapshot whose sentences are written per avdelning too: the delårsrapport (August).
DELAR_MONTH = 8
LEVEL_ORDER = ("namnd", "forvaltning", "avdelning")
LEVEL_LABELS = {"namnd": "Nämnd", "forvaltning": "Förvaltning", "avdelning": "Avdelning"}


@dataclass(frozen=True)
class AccuracyRow:
    org_unit: str
    name: str
    level: str
    snapshot: SnapshotInfo
    forecast: float  # full-year forecast at the snapshot, SEK
    outcome: float  # the year's actual net cost, SEK

    @property
    def difference(self) -> float:
        """Prognos − utfall: positive means the outcome was better (lower cost)."""
        return self.forecast - self.outcome

    @property
    def difference_pct(self) -> float | None:
        return None if self.outcome == 0 else 100.0 * self.difference / self.outcome


@dataclass(frozen=True)
class Accuracy:
    year: int
    outcome_snapshot: SnapshotInfo
    rows: tuple[AccuracyRow, ...]
    sentences: tuple[str, ...]

    def row(self, org_unit: str, period: str) -> AccuracyRow:
        return next(r for r in self.rows if r.org_unit == org_unit and r.snapshot.period == period)

    def table(self) -> Table:
        columns = (
            Column("niva", "Nivå", "text", 12),
            Column("ansvar", "Ansvar", "text", 9),
            Column("verksamhet", "Verksamhet", "text", 32),
            Column("prognostillfalle", "Prognos", "text", 16),
            Column("period", "Period", "text", 10),
            Column("prognos", "Prognos helår (mnkr)", "money"),
            Column("utfall", "Utfall helår (mnkr)", "money"),
            Column("skillnad", "Skillnad prognos − utfall (mnkr)", "deviation", 18),
            Column("skillnad_pct", "Skillnad (% av utfall)", "pct", 14),
        )
        rows = tuple(
            Row(
                (
                    LEVEL_LABELS.get(r.level, r.level),
                    r.org_unit,
                    r.name,
                    r.snapshot.label,
                    r.snapshot.period,
                    r.forecast / MNKR,
                    r.outcome / MNKR,
                    r.difference / MNKR,
                    r.difference_pct,
                ),
                r.org_unit,
                r.level,
                TOTAL,
                r.level == "namnd",
            )
            for r in self.rows
        )
        snap = self.outcome_snapshot
        return Table(
            "prognossakerhet",
            "Prognossäkerhet",
            f"Prognossäkerhet {self.year}: helårsprognosen (nettokostnad) vid varje snapshot "
            f"jämförd med årets utfall (snapshot {snap.period}, id {snap.id}, version "
            f"{snap.version}). Skillnad = prognos − utfall; ett positivt värde betyder att "
            "utfallet blev bättre (lägre nettokostnad) än prognosen, ett negativt att det blev "
            "sämre.",
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
    snapshots: Sequence[SnapshotLike], domain: DomainConfig, year: int
) -> Accuracy:
    """Compare the year's snapshots with its outcome; a :class:`UserError` without December."""
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
                )
            )
    return Accuracy(year, snapshot_info(december), tuple(rows), tuple(_sentences(rows, earlier)))


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
    return out
