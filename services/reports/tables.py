"""The delårsrapport as tables of numbers: pure functions from stored snapshots to rows.

Everything the Excel, HTML and CSV writers show comes from here, so the three formats cannot
disagree. Conventions (those of the Swedish municipal reports in ``shared/domain``):

* amounts are net costs (costs positive, revenues negative, as in the ledger), shown in mnkr;
  a table stores the unrounded value in mnkr (``sek / 1e6``), the writers round for display;
* *avvikelse* = budget − prognos (or budget − utfall): a negative value is an underskott;
* *Avvikelse %* = avvikelse / budget helår × 100;
* *förändring* (Prognosförändring) = prognos − föregående prognos: a positive value is a higher
  forecast net cost, i.e. a deterioration;
* volumes of stock measures (unit ``st``: places, clients, households) are monthly levels, so
  their year-to-date and full-year figures are averages per month, not sums.

A table row carries the org unit, level and category it shows, so tests and other code can find
a row without parsing labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from core.domain import DomainConfig
from core.hierarchy import UNMAPPED_ID, OrgTree
from core.swedish import MONTH_ABBR_SV, MONTH_NAMES_SV, format_mnkr, format_number_sv
from forecasts.live import TOTAL, NodeForecast, OrganisationForecast

if TYPE_CHECKING:
    from services.reports.charts import Chart

MNKR = 1e6

#: How each column's numbers are shown. Only deviation-like kinds turn red when negative.
ColumnKind = Literal[
    "text",
    "money",  # mnkr, e.g. budget, utfall, prognos
    "deviation",  # mnkr, negative = underskott (red)
    "pct",  # percent of budget, negative = underskott (red)
    "change",  # mnkr, forecast change; positive = higher cost (red), shown with a sign
    "volume",  # measure units, no decimals
    "volume_change",  # measure units with a sign (utfall − plan), neutral colour
    "pct_change",  # percent with a sign, neutral colour
    "ratio",  # kr or tkr per unit
    "ratio_deviation",  # budget − prognos of a unit cost, negative = dearer than budget (red)
]
Cell = float | str | None

#: Personalkostnader: the staff-cost categories of the table, in this order (brief §3).
STAFF_CATEGORIES = ("salaries", "substitutes", "overtime", "sick_pay", "agency_staff")
STAFF_CATEGORY_FALLBACK_SV = {
    "salaries": "Löner",
    "substitutes": "Vikarier",
    "overtime": "Övertid",
    "sick_pay": "Sjuklön",
    "agency_staff": "Inhyrd personal",
}
STAFF_SUM = "summa"
STOCK_UNIT = "st"

CompareMode = Literal["auto", "all", "checkpoints"]


class SnapshotLike(Protocol):
    """What the report reads of a ``services.snapshots.store.StoredSnapshot``."""

    @property
    def id(self) -> int: ...
    @property
    def period(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def checkpoint(self) -> str | None: ...
    @property
    def trigger(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def late_event_count(self) -> int: ...
    @property
    def forecast(self) -> OrganisationForecast: ...


# --- Table model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # Swedish, with the unit
    kind: ColumnKind
    width: float = 14.0  # Excel column width in characters


@dataclass(frozen=True)
class Row:
    cells: tuple[Cell, ...]
    org_unit: str | None = None
    level: str | None = None
    category: str | None = None  # category, measure or ratio id
    total: bool = False  # a summary row, shown in bold


@dataclass(frozen=True)
class Table:
    slug: str  # file-name part of the CSV, ASCII
    title: str  # heading and sheet name (≤ 31 characters)
    caption: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]

    def index(self, key: str) -> int:
        for i, column in enumerate(self.columns):
            if column.key == key:
                return i
        raise KeyError(key)

    def value(self, row: Row, key: str) -> Cell:
        return row.cells[self.index(key)]

    def find(self, org_unit: str, category: str | None = None) -> Row:
        for row in self.rows:
            if row.org_unit == org_unit and (category is None or row.category == category):
                return row
        raise KeyError((org_unit, category))


@dataclass(frozen=True)
class SnapshotInfo:
    id: int
    period: str
    version: int
    checkpoint: str | None
    trigger: str
    created_at: datetime
    late_event_count: int
    as_of_month: int
    label: str  # column name in Prognosförändring, e.g. "Prognos aug"


@dataclass(frozen=True)
class Report:
    municipality: str
    namnd_id: str
    namnd_name: str
    forvaltning_names: tuple[str, ...]
    period: str
    year: int
    as_of_month: int
    snapshot: SnapshotInfo
    compared: tuple[SnapshotInfo, ...]  # Prognosförändring columns, oldest first, current last
    summary: tuple[str, ...]
    tables: tuple[Table, ...]
    charts: tuple[Chart, ...] = field(default=())

    @property
    def month_name(self) -> str:
        return MONTH_NAMES_SV[self.as_of_month - 1]

    @property
    def title(self) -> str:
        return f"Delårsrapport {self.year}: prognos efter {self.month_name}"

    def table(self, slug: str) -> Table:
        return next(t for t in self.tables if t.slug == slug)


# --- Helpers ---------------------------------------------------------------------------------


def snapshot_label(snapshot: SnapshotLike) -> str:
    """``Prognos <checkpoint>`` for a snapshot taken at a named checkpoint, else the month."""
    if snapshot.checkpoint:
        return f"Prognos {snapshot.checkpoint}"
    return f"Prognos {MONTH_ABBR_SV[snapshot.forecast.as_of_month - 1]}"


def snapshot_info(snapshot: SnapshotLike) -> SnapshotInfo:
    return SnapshotInfo(
        id=snapshot.id,
        period=snapshot.period,
        version=snapshot.version,
        checkpoint=snapshot.checkpoint,
        trigger=snapshot.trigger,
        created_at=snapshot.created_at,
        late_event_count=snapshot.late_event_count,
        as_of_month=snapshot.forecast.as_of_month,
        label=snapshot_label(snapshot),
    )


def node_name(org: OrgTree, node_id: str) -> str:
    node = org.nodes.get(node_id)
    return node.name if node is not None else node_id


def _mnkr(value: float | None) -> float | None:
    return None if value is None else value / MNKR


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or whole == 0:
        return None
    return 100.0 * part / whole


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


@dataclass(frozen=True)
class ReportNode:
    id: str
    level: str  # avdelning | forvaltning | namnd
    total: bool  # a summary row (förvaltning, nämnd)


def report_nodes(org: OrgTree, forecast: OrganisationForecast) -> list[ReportNode]:
    """Avdelningar grouped under their förvaltning, each förvaltning's sum, then the nämnd.

    The unmapped node (``omappad``, an avdelning directly under the nämnd) is listed only when
    money was booked on it, so the nämnd always equals the sum of the listed avdelningar.
    """
    root = org.root
    out: list[ReportNode] = []
    for child in org.children(root.id):
        if child.level == "forvaltning":
            out.extend(
                ReportNode(avd.id, "avdelning", False)
                for avd in org.children(child.id)
                if avd.level == "avdelning"
            )
            out.append(ReportNode(child.id, "forvaltning", True))
        elif child.level == "avdelning":
            if child.id == UNMAPPED_ID and forecast.get(child.id, TOTAL) is None:
                continue
            out.append(ReportNode(child.id, "avdelning", False))
    out.append(ReportNode(root.id, "namnd", True))
    return out


def _label(org: OrgTree, node: ReportNode) -> str:
    name = node_name(org, node.id)
    return f"Summa {name}" if node.total else name


def _category_name(domain: DomainConfig, category: str) -> str:
    spec = domain.categories.get(category)
    return spec.name_sv if spec is not None else STAFF_CATEGORY_FALLBACK_SV.get(category, category)


def choose_compared(
    current: SnapshotLike, earlier: Sequence[SnapshotLike], mode: CompareMode = "auto"
) -> list[SnapshotLike]:
    """The snapshots shown side by side in Prognosförändring, oldest first, current last.

    ``all``: every earlier snapshot of the year; ``checkpoints``: only those taken at a named
    checkpoint; ``auto``: the checkpoint ones if any earlier snapshot has a checkpoint, else all
    (monthly snapshots without checkpoints would otherwise make a table twelve columns wide).
    """
    year = current.forecast.year
    before = sorted(
        (s for s in earlier if s.forecast.year == year and s.period < current.period),
        key=lambda s: (s.period, s.version),
    )
    latest: dict[str, SnapshotLike] = {}
    for snap in before:
        latest[snap.period] = snap  # the highest version of each period wins
    chosen = list(latest.values())
    if mode == "checkpoints" or (mode == "auto" and any(s.checkpoint for s in chosen)):
        chosen = [s for s in chosen if s.checkpoint]
    return [*chosen, current]


# --- Tables ----------------------------------------------------------------------------------


def _id_columns() -> tuple[Column, Column]:
    return Column("ansvar", "Ansvar", "text", 9), Column("verksamhet", "Verksamhet", "text", 36)


def driftredovisning(
    forecast: OrganisationForecast, domain: DomainConfig, nodes: Sequence[ReportNode]
) -> Table:
    month = MONTH_ABBR_SV[forecast.as_of_month - 1]
    columns = (
        *_id_columns(),
        Column("budget", "Budget helår (mnkr)", "money"),
        Column("budget_ytd", f"Budget t.o.m. {month} (mnkr)", "money"),
        Column("utfall", f"Utfall t.o.m. {month} (mnkr)", "money"),
        Column("prognos", "Prognos helår (mnkr)", "money"),
        Column("low", "Prognos 80 % lägre (mnkr)", "money"),
        Column("high", "Prognos 80 % övre (mnkr)", "money"),
        Column("avvikelse", "Avvikelse mot budget (mnkr)", "deviation", 16),
        Column("avvikelse_pct", "Avvikelse (%)", "pct", 12),
    )
    rows = []
    for node in nodes:
        fc = forecast.get(node.id, TOTAL)
        cells: tuple[Cell, ...] = (node.id, _label(domain.org, node))
        if fc is None:
            cells += (None,) * (len(columns) - 2)
        else:
            cells += (
                _mnkr(fc.budget_full_year),
                _mnkr(fc.budget_ytd),
                _mnkr(fc.actual_ytd),
                _mnkr(fc.full_year),
                _mnkr(fc.low),
                _mnkr(fc.high),
                _mnkr(fc.deviation),
                _pct(fc.deviation, fc.budget_full_year),
            )
        rows.append(Row(cells, node.id, node.level, TOTAL, node.total))
    return Table(
        "driftredovisning",
        "Driftredovisning",
        f"Driftredovisning per verksamhet efter {MONTH_NAMES_SV[forecast.as_of_month - 1]} "
        f"{forecast.year}: nettokostnad (kostnader minus intäkter) i mnkr. Avvikelse = budget "
        "helår − prognos helår; ett negativt värde är ett underskott. Med 80 % sannolikhet "
        "hamnar helårsutfallet inom prognosens intervall (lägre–övre).",
        columns,
        tuple(rows),
    )


def prognosforandring(
    compared: Sequence[SnapshotLike], domain: DomainConfig, nodes: Sequence[ReportNode]
) -> Table:
    current = compared[-1].forecast
    columns: list[Column] = [*_id_columns(), Column("budget", "Budget helår (mnkr)", "money")]
    for i, snap in enumerate(compared):
        label = snapshot_label(snap)
        columns.append(Column(f"prognos_{snap.period}", f"{label} (mnkr)", "money"))
        if i > 0:
            previous = snapshot_label(compared[i - 1]).removeprefix("Prognos ")
            columns.append(
                Column(
                    f"forandring_{snap.period}",
                    f"Förändring sedan {previous} (mnkr)",
                    "change",
                    16,
                )
            )
    columns.append(Column("avvikelse", "Avvikelse mot budget (mnkr)", "deviation", 16))
    rows = []
    for node in nodes:
        latest = current.get(node.id, TOTAL)
        cells: list[Cell] = [
            node.id,
            _label(domain.org, node),
            _mnkr(latest.budget_full_year) if latest else None,
        ]
        previous_value: float | None = None
        for i, snap in enumerate(compared):
            fc = snap.forecast.get(node.id, TOTAL)
            value = fc.full_year if fc is not None else None
            cells.append(_mnkr(value))
            if i > 0:
                cells.append(_mnkr(_diff(value, previous_value)))
            previous_value = value
        cells.append(_mnkr(latest.deviation) if latest else None)
        rows.append(Row(tuple(cells), node.id, node.level, TOTAL, node.total))
    labels = ", ".join(snapshot_label(s).removeprefix("Prognos ") for s in compared)
    return Table(
        "prognosforandring",
        "Prognosförändring",
        f"Prognos helår (nettokostnad, mnkr) vid varje prognostillfälle under {current.year} "
        f"({labels}). Förändring = prognosen minus föregående prognos; ett positivt värde är en "
        "högre prognostiserad nettokostnad, dvs. en försämring.",
        tuple(columns),
        tuple(rows),
    )


def personalkostnader(
    forecast: OrganisationForecast, domain: DomainConfig, nodes: Sequence[ReportNode]
) -> Table:
    month = MONTH_ABBR_SV[forecast.as_of_month - 1]
    columns = (
        *_id_columns(),
        Column("kostnadsslag", "Kostnadsslag", "text", 26),
        Column("budget", "Budget helår (mnkr)", "money"),
        Column("budget_ytd", f"Budget t.o.m. {month} (mnkr)", "money"),
        Column("utfall", f"Utfall t.o.m. {month} (mnkr)", "money"),
        Column("prognos", "Prognos helår (mnkr)", "money"),
        Column("avvikelse", "Avvikelse mot budget (mnkr)", "deviation", 16),
        Column("avvikelse_pct", "Avvikelse (%)", "pct", 12),
    )
    rows = []
    for node in (n for n in nodes if n.level != "forvaltning"):
        sums = [0.0, 0.0, 0.0, 0.0]
        for category in STAFF_CATEGORIES:
            fc = forecast.get(node.id, category)
            # No booked cost and no budget for a category means zero, not unknown.
            figures = (
                (fc.budget_full_year or 0.0, fc.budget_ytd or 0.0, fc.actual_ytd, fc.full_year)
                if fc is not None
                else (0.0, 0.0, 0.0, 0.0)
            )
            sums = [s + f for s, f in zip(sums, figures, strict=True)]
            rows.append(
                Row(
                    _staff_cells(node.id, _label(domain.org, node), category, domain, figures),
                    node.id,
                    node.level,
                    category,
                    False,
                )
            )
        budget, budget_ytd, actual, full_year = sums
        rows.append(
            Row(
                _staff_cells(
                    node.id,
                    _label(domain.org, node),
                    STAFF_SUM,
                    domain,
                    (budget, budget_ytd, actual, full_year),
                ),
                node.id,
                node.level,
                STAFF_SUM,
                True,
            )
        )
    names = ", ".join(_category_name(domain, c).lower() for c in STAFF_CATEGORIES)
    return Table(
        "personalkostnader",
        "Personalkostnader",
        f"Personalkostnader per verksamhet i mnkr: {names}. Summa = summan av dessa "
        "kostnadsslag. Avvikelse = budget helår − prognos helår; negativt värde = underskott. "
        "Ett kostnadsslag utan budget och utan bokade kostnader visas som 0,0.",
        columns,
        tuple(rows),
    )


def _staff_cells(
    node_id: str,
    label: str,
    category: str,
    domain: DomainConfig,
    figures: tuple[float, float, float, float],
) -> tuple[Cell, ...]:
    budget, budget_ytd, actual, full_year = figures
    name = "Summa" if category == STAFF_SUM else _category_name(domain, category)
    deviation = budget - full_year
    return (
        node_id,
        label,
        name,
        budget / MNKR,
        budget_ytd / MNKR,
        actual / MNKR,
        full_year / MNKR,
        deviation / MNKR,
        _pct(deviation, budget),
    )


def _measure_nodes(
    forecast: OrganisationForecast, org: OrgTree
) -> list[tuple[str, str, list[NodeForecast]]]:
    """(avdelning, measure, [enhet nodes…, avdelning node]) for every measure of an avdelning."""
    by_avdelning: dict[tuple[str, str], list[NodeForecast]] = {}
    for node in forecast.nodes:
        if node.kind != "measure" or node.level != "enhet":
            continue
        avdelning = next(
            (n for n in org.path(node.org_unit) if org.level_of(n) == "avdelning"), None
        )
        if avdelning is not None:
            by_avdelning.setdefault((avdelning, node.category), []).append(node)
    out = []
    for (avdelning, measure), enheter in by_avdelning.items():
        members = sorted(enheter, key=lambda n: n.org_unit)
        summed = forecast.get(avdelning, measure)
        if summed is not None and summed.kind == "measure":
            members.append(summed)
        out.append((avdelning, measure, members))
    order = {n.id: i for i, n in enumerate(org.nodes.values())}
    return sorted(out, key=lambda t: (order.get(t[0], len(order)), t[1]))


def volymer(forecast: OrganisationForecast, domain: DomainConfig) -> Table:
    as_of = forecast.as_of_month
    month = MONTH_ABBR_SV[as_of - 1]
    columns = (
        *_id_columns(),
        Column("matt", "Mått", "text", 30),
        Column("enhet", "Enhet", "text", 18),
        Column("plan_ytd", f"Plan t.o.m. {month}", "volume"),
        Column("utfall_ytd", f"Utfall t.o.m. {month}", "volume"),
        Column("avvikelse_ytd", "Avvikelse utfall − plan", "volume_change", 16),
        Column("avvikelse_ytd_pct", "Avvikelse (%)", "pct_change", 12),
        Column("plan", "Plan helår", "volume"),
        Column("prognos", "Prognos helår", "volume"),
        Column("avvikelse", "Avvikelse prognos − plan", "volume_change", 16),
    )
    rows = []
    for _avdelning, measure, members in _measure_nodes(forecast, domain.org):
        spec = domain.measures.get(measure)
        unit = spec.unit if spec is not None else ""
        stock = unit == STOCK_UNIT
        for node in members:
            # A stock is a level per month: its year figures are monthly averages.
            ytd_div, year_div = (as_of, 12) if stock else (1, 1)
            plan_ytd = node.budget_ytd / ytd_div if node.budget_ytd is not None else None
            actual_ytd = node.actual_ytd / ytd_div
            plan = node.budget_full_year / year_div if node.budget_full_year is not None else None
            prognos = node.full_year / year_div
            deviation_ytd = _diff(actual_ytd, plan_ytd)
            is_sum = node.level != "enhet"
            name = node_name(domain.org, node.org_unit)
            rows.append(
                Row(
                    (
                        node.org_unit,
                        f"Summa {name}" if is_sum else name,
                        spec.name_sv if spec is not None else measure,
                        f"{unit} (snitt per månad)" if stock else unit,
                        plan_ytd,
                        actual_ytd,
                        deviation_ytd,
                        _pct(deviation_ytd, plan_ytd),
                        plan,
                        prognos,
                        _diff(prognos, plan),
                    ),
                    node.org_unit,
                    node.level,
                    measure,
                    is_sum,
                )
            )
    return Table(
        "volymer",
        "Volymer",
        f"Volymer per enhet och avdelning: plan och utfall t.o.m. "
        f"{MONTH_NAMES_SV[as_of - 1]}, prognos och plan för helåret. Mått i styck (st) är "
        "nivåer per månad och visas som genomsnitt per månad; övriga mått är summor.",
        columns,
        tuple(rows),
    )


@dataclass(frozen=True)
class RatioSpec:
    """A unit cost: a cost (a category or the net total, minus some categories) per volume."""

    id: str
    label: str
    unit: str
    measure: str
    numerator: str  # category id or TOTAL
    exclude: tuple[str, ...] = ()  # categories taken out of a TOTAL numerator
    per_year: bool = False  # stock measures: per place-year (level-months / 12)
    scale: float = 1.0  # 1000 for tkr


#: Key ratios shown where the measure exists (facts.md: ≈ 640 kr per hemtjänsttimme, ≈ 674 tkr
#: per SÄBO-plats, ≈ 897 tkr per LSS-plats, ≈ 1 233 tkr per köpt plats, bistånd per hushåll).
KEY_RATIOS = (
    RatioSpec(
        "cost_per_home_care_hour", "Kostnad per hemtjänsttimme", "kr/h", "home_care_hours", TOTAL
    ),
    RatioSpec(
        "cost_per_sabo_place",
        "Kostnad per plats i särskilt boende (egen regi)",
        "tkr per årsplats",
        "sabo_residents",
        TOTAL,
        exclude=("purchased_care",),
        per_year=True,
        scale=1000.0,
    ),
    RatioSpec(
        "cost_per_lss_place",
        "Kostnad per plats i LSS-boende",
        "tkr per årsplats",
        "lss_residents",
        TOTAL,
        per_year=True,
        scale=1000.0,
    ),
    RatioSpec(
        "cost_per_purchased_place",
        "Kostnad per köpt plats",
        "tkr per årsplats",
        "purchased_places",
        "purchased_care",
        per_year=True,
        scale=1000.0,
    ),
    RatioSpec(
        "aid_per_household",
        "Ekonomiskt bistånd per hushåll och månad",
        "kr per hushåll och månad",
        "econ_aid_households",
        "transfers",
    ),
)


@dataclass
class _RatioParts:
    budget_cost: float = 0.0
    budget_volume: float = 0.0
    actual_cost: float = 0.0
    actual_volume: float = 0.0
    forecast_cost: float = 0.0
    forecast_volume: float = 0.0
    has_budget: bool = True

    def add(
        self, numerator: NodeForecast, excluded: Sequence[NodeForecast], volume: NodeForecast
    ) -> None:
        if numerator.budget_full_year is None or volume.budget_full_year is None:
            self.has_budget = False
        else:
            self.budget_cost += numerator.budget_full_year - math.fsum(
                e.budget_full_year or 0.0 for e in excluded
            )
            self.budget_volume += volume.budget_full_year
        self.actual_cost += numerator.actual_ytd - math.fsum(e.actual_ytd for e in excluded)
        self.forecast_cost += numerator.full_year - math.fsum(e.full_year for e in excluded)
        self.actual_volume += volume.actual_ytd
        self.forecast_volume += volume.full_year


def _ratio(cost: float, volume: float, spec: RatioSpec) -> float | None:
    if volume <= 0:
        return None
    denominator = volume / 12.0 if spec.per_year else volume
    return cost / denominator / spec.scale


def nyckeltal(forecast: OrganisationForecast, domain: DomainConfig) -> Table:
    as_of = forecast.as_of_month
    month = MONTH_ABBR_SV[as_of - 1]
    columns = (
        *_id_columns(),
        Column("nyckeltal", "Nyckeltal", "text", 40),
        Column("enhet", "Enhet", "text", 22),
        Column("budget", "Budget helår", "ratio"),
        Column("utfall_ytd", f"Utfall t.o.m. {month}", "ratio"),
        Column("prognos", "Prognos helår", "ratio"),
        Column("avvikelse", "Avvikelse budget − prognos", "ratio_deviation", 16),
        Column("avvikelse_pct", "Avvikelse (%)", "pct", 12),
    )
    org = domain.org
    rows = []
    for spec in KEY_RATIOS:
        per_avdelning: dict[str, _RatioParts] = {}
        for volume in sorted(
            (n for n in forecast.nodes if n.kind == "measure" and n.category == spec.measure),
            key=lambda n: n.org_unit,
        ):
            if volume.level != "enhet":
                continue
            numerator = forecast.get(volume.org_unit, spec.numerator)
            if numerator is None or numerator.kind != "cost":
                continue
            excluded = [
                e
                for e in (forecast.get(volume.org_unit, c) for c in spec.exclude)
                if e is not None and e.kind == "cost"
            ]
            parts = _RatioParts()
            parts.add(numerator, excluded, volume)
            avdelning = next(
                (n for n in org.path(volume.org_unit) if org.level_of(n) == "avdelning"), None
            )
            if avdelning is not None:
                per_avdelning.setdefault(avdelning, _RatioParts()).add(numerator, excluded, volume)
            rows.append(
                _ratio_row(
                    spec, volume.org_unit, "enhet", node_name(org, volume.org_unit), parts, False
                )
            )
        for avdelning, parts in per_avdelning.items():
            label = f"Summa {node_name(org, avdelning)}"
            rows.append(_ratio_row(spec, avdelning, "avdelning", label, parts, True))
    return Table(
        "nyckeltal",
        "Nyckeltal",
        "Nyckeltal där volymmåttet finns: kostnad per volymenhet för budget, utfall t.o.m. "
        f"{MONTH_NAMES_SV[as_of - 1]} och prognos helår. Kostnad per hemtjänsttimme och per plats "
        "avser enhetens nettokostnad (särskilt boende utan köpta platser); per köpt plats och per "
        "hushåll avser kostnadsslaget köpt verksamhet respektive ekonomiskt bistånd. Summa-raden "
        "avser avdelningens enheter med måttet. Avvikelse = budget − prognos; negativt värde = "
        "dyrare per enhet än budgeterat.",
        columns,
        tuple(rows),
    )


def _ratio_row(
    spec: RatioSpec, org_unit: str, level: str, label: str, parts: _RatioParts, total: bool
) -> Row:
    budget = _ratio(parts.budget_cost, parts.budget_volume, spec) if parts.has_budget else None
    actual = _ratio(parts.actual_cost, parts.actual_volume, spec)
    prognos = _ratio(parts.forecast_cost, parts.forecast_volume, spec)
    deviation = _diff(budget, prognos)
    return Row(
        (
            org_unit,
            label,
            spec.label,
            spec.unit,
            budget,
            actual,
            prognos,
            deviation,
            _pct(deviation, budget),
        ),
        org_unit,
        level,
        spec.id,
        total,
    )


# --- The report ------------------------------------------------------------------------------


def summary_sentences(
    forecast: OrganisationForecast, domain: DomainConfig, compared: Sequence[SnapshotLike]
) -> list[str]:
    """What a controller writes first: the nämnd's forecast result, its interval, the trend."""
    org = domain.org
    root = org.root
    month = MONTH_NAMES_SV[forecast.as_of_month - 1]
    fc = forecast.get(root.id, TOTAL)
    if fc is None:
        return [f"Det finns inga bokade kostnader för {root.name} {forecast.year}."]
    lines = []
    deviation = fc.deviation
    if deviation is not None and fc.budget_full_year:
        word = "ett underskott" if deviation < 0 else "ett överskott"
        pct = format_number_sv(100 * deviation / fc.budget_full_year)
        lines.append(
            f"Prognosen efter {month} {forecast.year} visar en nettokostnad för "
            f"{root.name.lower()} på {format_mnkr(fc.full_year)} mnkr mot en budget på "
            f"{format_mnkr(fc.budget_full_year)} mnkr, {word} på "
            f"{format_mnkr(abs(deviation))} mnkr ({pct} %)."
        )
    else:
        lines.append(
            f"Prognosen efter {month} {forecast.year} visar en nettokostnad för "
            f"{root.name.lower()} på {format_mnkr(fc.full_year)} mnkr."
        )
    lines.append(
        f"Med 80 % sannolikhet hamnar helårsutfallet mellan {format_mnkr(fc.low)} och "
        f"{format_mnkr(fc.high)} mnkr."
    )
    parts = []
    for node in report_nodes(org, forecast):
        avd = forecast.get(node.id, TOTAL)
        if node.level == "avdelning" and avd is not None and avd.deviation is not None:
            parts.append(f"{node_name(org, node.id)} {format_mnkr(avd.deviation)} mnkr")
    if parts:
        lines.append("Avvikelse mot budget per avdelning: " + ", ".join(parts) + ".")
    if len(compared) > 1:
        previous = compared[-2]
        prev_fc = previous.forecast.get(root.id, TOTAL)
        if prev_fc is not None:
            change = fc.full_year - prev_fc.full_year
            prev_month = MONTH_NAMES_SV[previous.forecast.as_of_month - 1]
            if round(abs(change) / MNKR, 1) == 0:
                lines.append(f"Prognosen är oförändrad sedan prognosen efter {prev_month}.")
            else:
                verb = "ökat" if change > 0 else "minskat"
                lines.append(
                    f"Den prognostiserade nettokostnaden har {verb} med "
                    f"{format_mnkr(abs(change))} mnkr sedan prognosen efter {prev_month}."
                )
    return lines


def build_tables(
    current: SnapshotLike, compared: Sequence[SnapshotLike], domain: DomainConfig
) -> tuple[Table, ...]:
    forecast = current.forecast
    nodes = report_nodes(domain.org, forecast)
    return (
        driftredovisning(forecast, domain, nodes),
        prognosforandring(compared, domain, nodes),
        personalkostnader(forecast, domain, nodes),
        volymer(forecast, domain),
        nyckeltal(forecast, domain),
    )


def chart_nodes(domain: DomainConfig, forecast: OrganisationForecast) -> list[str]:
    """The avdelningar (and the nämnd last) that get a chart."""
    return [n.id for n in report_nodes(domain.org, forecast) if n.level in ("avdelning", "namnd")]


def build_report(
    current: SnapshotLike,
    earlier: Iterable[SnapshotLike],
    domain: DomainConfig,
    *,
    compare: CompareMode = "auto",
    charts: bool = True,
) -> Report:
    """The delårsrapport of ``current`` with the year's ``earlier`` snapshots (any order)."""
    forecast = current.forecast
    compared = choose_compared(current, list(earlier), compare)
    org = domain.org
    root = org.root
    rendered: tuple[Chart, ...] = ()
    if charts:
        from services.reports.charts import render_charts

        rendered = tuple(
            render_charts(
                [
                    (node_id, node_name(org, node_id), forecast.get(node_id, TOTAL))
                    for node_id in chart_nodes(domain, forecast)
                ]
            )
        )
    return Report(
        municipality=domain.municipality,
        namnd_id=root.id,
        namnd_name=root.name,
        forvaltning_names=tuple(c.name for c in org.children(root.id) if c.level == "forvaltning"),
        period=current.period,
        year=forecast.year,
        as_of_month=forecast.as_of_month,
        snapshot=snapshot_info(current),
        compared=tuple(snapshot_info(s) for s in compared),
        summary=tuple(summary_sentences(forecast, domain, compared)),
        tables=build_tables(current, compared, domain),
        charts=rendered,
    )
