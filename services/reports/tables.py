"""The delårsrapport as tables of numbers: pure functions from stored snapshots to rows.

Everything the Excel, HTML and CSV writers show comes from here, so the three formats cannot
disagree. Conventions (those of the Swedish municipal reports in ``shared/domain``):

* amounts are net costs (costs positive, revenues negative, as in the ledger), shown in mnkr;
  a table stores the unrounded value in mnkr (``sek / 1e6``), the writers round for display;
* *avvikelse* = budget − prognos (or budget − utfall): a negative value is an underskott;
* *Avvikelse %* = avvikelse / budget helår × 100;
* *förändring* (Prognosförändring) = föregående prognos − prognos: a negative value is a higher
  forecast net cost, i.e. a deterioration (one sign convention everywhere: negative = worse, red);
* volumes: *avvikelse* = plan − utfall (more hours or days than planned is negative);
* *förvaltningens prognos* = the model's forecast where the förvaltning did not adjust it; an
  adjusted node carries its adjustment up to every roll-up above it;
* volumes of stock measures (unit ``st``: places, clients, households) are monthly levels, so
  their year-to-date and full-year figures are averages per month, not sums.

A table row carries the org unit, level and category it shows, so tests and other code can find
a row without parsing labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from core.domain import DomainConfig
from core.errors import UserError
from core.hierarchy import UNMAPPED_ID, OrgNode, OrgTree
from core.swedish import MONTH_ABBR_SV, MONTH_NAMES_SV, format_mnkr, format_number_sv
from forecasts.live import TOTAL, NodeForecast, OrganisationForecast
from services.followup.models import MEASURE_STATUS_SV as FOLLOW_UP_STATUS_SV

if TYPE_CHECKING:
    from services.reports.charts import Chart

MNKR = 1e6

#: How each column's numbers are shown. Only deviation-like kinds turn red when negative.
ColumnKind = Literal[
    "text",
    "money",  # mnkr, e.g. budget, utfall, prognos
    "deviation",  # mnkr, negative = underskott (red)
    "pct",  # percent of budget, negative = underskott (red)
    "change",  # mnkr, föregående − prognos; negative = higher cost (red), shown with a sign
    "volume",  # measure units, no decimals
    "volume_change",  # measure units with a sign (plan − utfall), negative = more (red)
    "pct_change",  # percent with a sign, negative = worse (red)
    "pct_level",  # a percentage that is a level, e.g. sjukfrånvaro (no colour)
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
class MeasureView:
    """An åtgärd as the report shows it (from the follow-up's ``Measure``)."""

    org_unit: str
    text: str
    responsible: str
    amount_sek: float
    status: str  # planerad | beslutad | genomford
    decided: date | None
    realised_sek: float | None


@dataclass(frozen=True)
class NodeAnalysis:
    """Analys av avvikelsen for one node: the chef's comment, the förvaltning's adjustment,
    the åtgärder and the drivers the snapshot holds (volume and price effects)."""

    org_unit: str
    name: str
    level: str
    comment: str | None
    comment_by: str | None
    adjusted_full_year_sek: float | None
    model_full_year_sek: float | None
    adjustment_reason: str | None
    #: Förvaltningens prognos of the node, its own adjustment or those made below it.
    forvaltning_full_year_sek: float | None
    approved_by: str | None
    approved_at: datetime | None
    measures: tuple[MeasureView, ...]
    drivers: tuple[str, ...]


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
    #: What the cover says about the version: approved by whom, or "not approved, the latest".
    status: str = ""
    approved: bool = False
    analyses: tuple[NodeAnalysis, ...] = ()
    #: Which method produced the forecasts and how often its intervals have held.
    method_notes: tuple[str, ...] = ()
    #: Sentences under the personnel table that explain a forecast deviation by its driver.
    staff_notes: tuple[str, ...] = ()
    legend: tuple[str, ...] = ()
    #: Per-chart native Excel charts: (node id, name, the node's net-cost forecast).
    chart_data: tuple[tuple[str, str, NodeForecast], ...] = ()

    @property
    def month_name(self) -> str:
        return MONTH_NAMES_SV[self.as_of_month - 1]

    @property
    def title(self) -> str:
        return f"Delårsrapport {self.year}: prognos efter {self.month_name}"

    def table(self, slug: str) -> Table:
        return next(t for t in self.tables if t.slug == slug)

    def has_table(self, slug: str) -> bool:
        return any(t.slug == slug for t in self.tables)


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


def report_namnd(org: OrgTree) -> OrgNode:
    """The nämnd a report is about: the one nämnd of its organisation. A report sees one
    nämnd's part of the configuration (``DomainConfig.for_owner``); the whole organisation of a
    kommun is refused here rather than reported as if it were one nämnd."""
    namnder = org.namnder
    if len(namnder) != 1:
        raise UserError(
            f"a report is about one nämnd; this organisation has {len(namnder)} "
            f"({', '.join(namnder) or 'none'}): report per nämnd (--namnd)"
        )
    return org.nodes[namnder[0]]


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
    #: The nämnd's row stands for its only förvaltning too when the two are the same money.
    also: str | None = None


def _has_money(forecast: OrganisationForecast, node_id: str) -> bool:
    return forecast.get(node_id, TOTAL) is not None


def report_nodes(org: OrgTree, forecast: OrganisationForecast) -> list[ReportNode]:
    """Avdelningar grouped under their förvaltning, each förvaltning's sum, then the nämnd.

    The unmapped node (``omappad``, an avdelning directly under the nämnd) is listed only when
    money was booked on it, so the nämnd always equals the sum of the listed avdelningar. When the
    nämnd has exactly one förvaltning and nothing else with money, the two sums are the same
    figures: one row stands for both (``also``), instead of two identical rows.
    """
    root = report_namnd(org)
    children = org.children(root.id)
    forvaltningar = [c for c in children if c.level == "forvaltning"]
    others = [c for c in children if c.level != "forvaltning" and _has_money(forecast, c.id)]
    single = forvaltningar[0].id if len(forvaltningar) == 1 and not others else None
    out: list[ReportNode] = []
    for child in children:
        if child.level == "forvaltning":
            out.extend(
                ReportNode(avd.id, "avdelning", False)
                for avd in org.children(child.id)
                if avd.level == "avdelning"
            )
            if single is None:
                out.append(ReportNode(child.id, "forvaltning", True))
        elif child.level == "avdelning":
            if child.id == UNMAPPED_ID and not _has_money(forecast, child.id):
                continue
            out.append(ReportNode(child.id, "avdelning", False))
    out.append(ReportNode(root.id, "namnd", True, also=single))
    return out


def _label(org: OrgTree, node: ReportNode) -> str:
    name = node_name(org, node.id)
    if node.also is not None:
        return f"Summa {name} (= förvaltningen)"
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


# --- Förvaltningens prognos ------------------------------------------------------------------


def adjusted_nodes(follow_up: Any) -> dict[str, float]:
    """org unit → förvaltningens prognos (SEK) of every node the förvaltning adjusted.

    ``follow_up`` is a ``services.followup.read.PeriodFollowUp`` (read by attribute, so the
    tables stay pure) or None.
    """
    if follow_up is None:
        return {}
    return {
        org_unit: float(node.adjusted_full_year_sek)
        for org_unit, node in follow_up.nodes.items()
        if getattr(node, "adjusted_full_year_sek", None) is not None
    }


def forvaltning_forecasts(
    forecast: OrganisationForecast, org: OrgTree, adjusted: Mapping[str, float]
) -> dict[str, float]:
    """Förvaltningens prognos helår (net cost, SEK) of every node with a forecast.

    A node the förvaltning adjusted has its adjusted figure; any other node has the model's
    forecast plus the adjustments made below it (each child's förvaltningens prognos minus the
    model's), so the roll-ups add up to the adjusted parts.
    """
    out: dict[str, float] = {}

    def visit(node_id: str) -> float | None:
        fc = forecast.get(node_id, TOTAL)
        delta = 0.0
        for child in org.children(node_id):
            child_value = visit(child.id)
            child_fc = forecast.get(child.id, TOTAL)
            if child_value is not None and child_fc is not None:
                delta += child_value - child_fc.full_year
        if fc is None:
            return None
        value = adjusted.get(node_id, fc.full_year + delta)
        out[node_id] = value
        return value

    visit(report_namnd(org).id)
    for node in forecast.nodes:  # e.g. omappad outside the tree
        if node.category == TOTAL and node.org_unit not in out:
            out[node.org_unit] = adjusted.get(node.org_unit, node.full_year)
    return out


# --- Tables ----------------------------------------------------------------------------------


def _id_columns() -> tuple[Column, Column]:
    return Column("ansvar", "Ansvar", "text", 9), Column("verksamhet", "Verksamhet", "text", 36)


def _money_columns(year: int, month: str, with_previous: bool) -> list[Column]:
    columns = []
    if with_previous:
        columns.append(Column("bokslut_fg", f"Bokslut {year - 1} (mnkr)", "money"))
    columns += [
        Column("budget", f"Budget {year} (mnkr)", "money"),
        Column("budget_ytd", f"Budget t.o.m. {month} (mnkr)", "money"),
        Column("utfall", f"Utfall t.o.m. {month} (mnkr)", "money"),
        Column("prognos_modell", "Modellens prognos helår (mnkr)", "money", 15),
        Column("low", "Modellens 80 %-intervall, lägre (mnkr)", "money", 15),
        Column("high", "Modellens 80 %-intervall, övre (mnkr)", "money", 15),
        Column("prognos", "Förvaltningens prognos helår (mnkr)", "money", 16),
        Column("avvikelse", "Avvikelse budget − prognos (mnkr)", "deviation", 16),
        Column("avvikelse_pct", "Avvikelse (%)", "pct", 12),
    ]
    return columns


def _money_cells(
    fc: NodeForecast | None,
    forvaltning: float | None,
    previous: NodeForecast | None,
    with_previous: bool,
) -> tuple[Cell, ...]:
    cells: tuple[Cell, ...] = ()
    if with_previous:
        cells += (_mnkr(previous.actual_ytd) if previous is not None else None,)
    if fc is None:
        return cells + (None,) * 9
    prognos = forvaltning if forvaltning is not None else fc.full_year
    deviation = _diff(fc.budget_full_year, prognos)
    return (
        *cells,
        _mnkr(fc.budget_full_year),
        _mnkr(fc.budget_ytd),
        _mnkr(fc.actual_ytd),
        _mnkr(fc.full_year),
        _mnkr(fc.low),
        _mnkr(fc.high),
        _mnkr(prognos),
        _mnkr(deviation),
        _pct(deviation, fc.budget_full_year),
    )


def _money_caption(forecast: OrganisationForecast, previous: OrganisationForecast | None) -> str:
    text = (
        "Nettokostnad (kostnader minus intäkter) i mnkr. Modellens prognos är budgetvakts "
        "statistiska helårsprognos med dess 80 %-intervall; förvaltningens prognos är den "
        "prognos förvaltningen lägger fram (modellens där förvaltningen inte har justerat den, "
        "och justeringar på enhet eller avdelning ingår i summorna ovanför). Avvikelse = budget "
        "− förvaltningens prognos; ett negativt värde är ett underskott."
    )
    if previous is not None:
        text += f" Bokslut {forecast.year - 1} = utfallet för helåret {forecast.year - 1}."
    return text


def driftredovisning(
    forecast: OrganisationForecast,
    domain: DomainConfig,
    nodes: Sequence[ReportNode],
    forvaltning: Mapping[str, float] | None = None,
    previous: OrganisationForecast | None = None,
) -> Table:
    month = MONTH_ABBR_SV[forecast.as_of_month - 1]
    with_previous = previous is not None
    columns = (*_id_columns(), *_money_columns(forecast.year, month, with_previous))
    forvaltning = forvaltning or {}
    rows = []
    for node in nodes:
        cells: tuple[Cell, ...] = (node.id, _label(domain.org, node))
        cells += _money_cells(
            forecast.get(node.id, TOTAL),
            forvaltning.get(node.id),
            previous.get(node.id, TOTAL) if previous is not None else None,
            with_previous,
        )
        rows.append(Row(cells, node.id, node.level, TOTAL, node.total))
    return Table(
        "driftredovisning",
        "Driftredovisning",
        f"Driftredovisning per verksamhet efter {MONTH_NAMES_SV[forecast.as_of_month - 1]} "
        f"{forecast.year}. " + _money_caption(forecast, previous),
        columns,
        tuple(rows),
    )


def driftredovisning_enhet(
    forecast: OrganisationForecast,
    domain: DomainConfig,
    nodes: Sequence[ReportNode],
    forvaltning: Mapping[str, float] | None = None,
    previous: OrganisationForecast | None = None,
) -> Table:
    """The drill-down: every enhet with money, under its avdelning, and the avdelning's sum."""
    org = domain.org
    month = MONTH_ABBR_SV[forecast.as_of_month - 1]
    with_previous = previous is not None
    columns = (
        Column("ansvar", "Ansvar", "text", 9),
        Column("verksamhet", "Enhet", "text", 34),
        Column("avdelning", "Avdelning", "text", 26),
        *_money_columns(forecast.year, month, with_previous),
    )
    forvaltning = forvaltning or {}
    rows = []

    def cells_of(node_id: str) -> tuple[Cell, ...]:
        return _money_cells(
            forecast.get(node_id, TOTAL),
            forvaltning.get(node_id),
            previous.get(node_id, TOTAL) if previous is not None else None,
            with_previous,
        )

    for node in nodes:
        if node.level != "avdelning":
            continue
        avdelning = node_name(org, node.id)
        enheter = [n.id for n in org.children(node.id)] if node.id in org.nodes else []
        if node.id == UNMAPPED_ID:
            enheter = sorted(
                {
                    n.org_unit
                    for n in forecast.nodes
                    if n.level == "enhet" and n.category == TOTAL and not org.is_known(n.org_unit)
                }
            )
        for enhet in enheter:
            if not _has_money(forecast, enhet):
                continue
            rows.append(
                Row(
                    (enhet, node_name(org, enhet), avdelning, *cells_of(enhet)),
                    enhet,
                    "enhet",
                    TOTAL,
                    False,
                )
            )
        rows.append(
            Row(
                (node.id, f"Summa {avdelning}", avdelning, *cells_of(node.id)),
                node.id,
                "avdelning",
                TOTAL,
                True,
            )
        )
    return Table(
        "driftredovisning_enhet",
        "Driftredovisning per enhet",
        f"Driftredovisning per enhet efter {MONTH_NAMES_SV[forecast.as_of_month - 1]} "
        f"{forecast.year}, med avdelningens summa efter dess enheter. "
        + _money_caption(forecast, previous),
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
        columns.append(
            Column(f"prognos_{snap.period}", f"Modellens {label.lower()} (mnkr)", "money")
        )
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
    columns.append(
        Column("avvikelse", "Avvikelse budget − modellens prognos (mnkr)", "deviation", 16)
    )
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
                cells.append(_mnkr(_diff(previous_value, value)))
            previous_value = value
        cells.append(_mnkr(latest.deviation) if latest else None)
        rows.append(Row(tuple(cells), node.id, node.level, TOTAL, node.total))
    labels = ", ".join(snapshot_label(s).removeprefix("Prognos ") for s in compared)
    return Table(
        "prognosforandring",
        "Prognosförändring",
        f"Modellens prognos helår (nettokostnad, mnkr) vid varje prognostillfälle under "
        f"{current.year} ({labels}). Förändring = föregående prognos − prognosen; ett negativt "
        "värde är en högre prognostiserad nettokostnad, dvs. en försämring (rött), som "
        "avvikelsen mot budget.",
        tuple(columns),
        tuple(rows),
    )


def _staff_figures(fc: NodeForecast | None) -> tuple[float, float, float, float, float, float]:
    """(budget, budget t.o.m., utfall t.o.m., prognos, budget rest of year, prognos rest)."""
    if fc is None:
        return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    budget = fc.budget_full_year or 0.0
    budget_ytd = fc.budget_ytd or 0.0
    return (
        budget,
        budget_ytd,
        fc.actual_ytd,
        fc.full_year,
        budget - budget_ytd,
        fc.full_year - fc.actual_ytd,
    )


def staff_categories_present(forecast: OrganisationForecast, node_id: str) -> list[str]:
    """The staff categories with any budget, cost or forecast at the node (no 0,0 rows)."""
    present = []
    for category in STAFF_CATEGORIES:
        fc = forecast.get(node_id, category)
        if fc is None:
            continue
        if any(abs(v) >= 0.5 for v in _staff_figures(fc)[:4]):
            present.append(category)
    return present


def personalkostnader(
    forecast: OrganisationForecast, domain: DomainConfig, nodes: Sequence[ReportNode]
) -> Table:
    month = MONTH_ABBR_SV[forecast.as_of_month - 1]
    rest = f"{MONTH_ABBR_SV[forecast.as_of_month]}–dec" if forecast.as_of_month < 12 else "resten"
    columns = (
        *_id_columns(),
        Column("kostnadsslag", "Kostnadsslag", "text", 26),
        Column("budget", "Budget helår (mnkr)", "money"),
        Column("budget_ytd", f"Budget t.o.m. {month} (mnkr)", "money"),
        Column("utfall", f"Utfall t.o.m. {month} (mnkr)", "money"),
        Column("prognos", "Prognos helår (mnkr)", "money"),
        Column("avvikelse_ytd", f"Avvikelse t.o.m. {month} (mnkr)", "deviation", 14),
        Column("avvikelse_rest", f"Avvikelse {rest} (mnkr)", "deviation", 14),
        Column("avvikelse", "Avvikelse helår (mnkr)", "deviation", 14),
        Column("avvikelse_pct", "Avvikelse (%)", "pct", 12),
    )
    rows = []
    for node in (n for n in nodes if n.level != "forvaltning"):
        sums = [0.0] * 6
        for category in staff_categories_present(forecast, node.id):
            figures = _staff_figures(forecast.get(node.id, category))
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
        rows.append(
            Row(
                _staff_cells(
                    node.id,
                    _label(domain.org, node),
                    STAFF_SUM,
                    domain,
                    tuple(sums),  # type: ignore[arg-type]
                ),
                node.id,
                node.level,
                STAFF_SUM,
                True,
            )
        )
    return Table(
        "personalkostnader",
        "Personalkostnader",
        "Personalkostnader per verksamhet i mnkr; bara de kostnadsslag som har budget eller "
        "kostnader visas. Summa = summan av kostnadsslagen. Avvikelse = budget − prognos; "
        f"negativt värde = underskott. Avvikelse helår = avvikelsen t.o.m. {month} (budget − "
        f"utfall) + avvikelsen för {rest} (periodiserad budget − modellens prognos för "
        "månaderna som återstår): den visar om avvikelsen redan har uppstått eller är prognos.",
        columns,
        tuple(rows),
    )


def _staff_cells(
    node_id: str,
    label: str,
    category: str,
    domain: DomainConfig,
    figures: tuple[float, float, float, float, float, float],
) -> tuple[Cell, ...]:
    budget, budget_ytd, actual, full_year, budget_rest, forecast_rest = figures
    name = "Summa personal" if category == STAFF_SUM else _category_name(domain, category)
    deviation = budget - full_year
    return (
        node_id,
        label,
        name,
        budget / MNKR,
        budget_ytd / MNKR,
        actual / MNKR,
        full_year / MNKR,
        (budget_ytd - actual) / MNKR,
        (budget_rest - forecast_rest) / MNKR,
        deviation / MNKR,
        _pct(deviation, budget),
    )


#: Measures shown as sjukfrånvaro in per cent, not as volumes of their own.
SJUK_MEASURES = ("sick_leave_hours", "scheduled_hours")


def _measure_nodes(
    forecast: OrganisationForecast, org: OrgTree
) -> list[tuple[str, str, list[NodeForecast]]]:
    """(avdelning, measure, [enhet nodes…, avdelning node]) for every measure of an avdelning."""
    by_avdelning: dict[tuple[str, str], list[NodeForecast]] = {}
    for node in forecast.nodes:
        if node.kind != "measure" or node.level != "enhet" or node.category in SJUK_MEASURES:
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
        Column("avvikelse_ytd", "Avvikelse plan − utfall", "volume_change", 16),
        Column("avvikelse_ytd_pct", "Avvikelse (%)", "pct_change", 12),
        Column("plan", "Plan helår", "volume"),
        Column("prognos", "Prognos helår", "volume"),
        Column("avvikelse", "Avvikelse plan − prognos", "volume_change", 16),
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
            deviation_ytd = _diff(plan_ytd, actual_ytd)
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
                        _diff(plan, prognos),
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
        "nivåer per månad och visas som genomsnitt per månad; övriga mått är summor. Avvikelse = "
        "plan − utfall (eller plan − prognos), samma tecken som för pengar: fler timmar, dygn "
        "eller platser än planerat är negativt (rött).",
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


# --- Kostnadsslag, sjukfrånvaro, drivers, åtgärder -------------------------------------------


@dataclass(frozen=True)
class CostGroup:
    id: str
    label: str
    categories: tuple[str, ...]
    revenue: bool


#: The groups of the kostnadsslag table, as the seeds' resultaträkning groups them (004 L803–824).
#: A category of config/categories.yaml not named here falls into "övriga" of its kind.
COST_GROUPS = (
    CostGroup("taxor", "Taxor och avgifter", ("revenue_fees",), True),
    CostGroup("bidrag", "Statsbidrag och andra bidrag", ("revenue_grants",), True),
    CostGroup("ovriga_intakter", "Övriga intäkter", ("revenue_other",), True),
    CostGroup("personal", "Personalkostnader", STAFF_CATEGORIES, False),
    CostGroup("kop", "Köp av verksamhet", ("purchased_care",), False),
    CostGroup("lokaler", "Lokaler", ("premises",), False),
    CostGroup("bistand", "Ekonomiskt bistånd och bidrag", ("transfers",), False),
    CostGroup("ovrigt", "Övriga kostnader", ("other_costs", "capital"), False),
)


def _cost_groups(domain: DomainConfig) -> list[CostGroup]:
    named = {c for g in COST_GROUPS for c in g.categories}
    extra_revenue = tuple(
        c for c, spec in domain.categories.items() if c not in named and spec.kind == "revenue"
    )
    extra_cost = tuple(
        c for c, spec in domain.categories.items() if c not in named and spec.kind != "revenue"
    )
    out = []
    for group in COST_GROUPS:
        if group.id == "ovriga_intakter":
            group = CostGroup(group.id, group.label, group.categories + extra_revenue, True)
        elif group.id == "ovrigt":
            group = CostGroup(group.id, group.label, group.categories + extra_cost, False)
        out.append(group)
    return out


def kostnadsslag(
    forecast: OrganisationForecast,
    domain: DomainConfig,
    node_id: str,
    previous: OrganisationForecast | None = None,
) -> Table:
    """The nämnd's net cost by kostnadsslag: intäkter, then kostnader, then the net cost."""
    month = MONTH_ABBR_SV[forecast.as_of_month - 1]
    with_previous = previous is not None
    columns = [Column("grupp", "Kostnadsslag", "text", 34)]
    if with_previous:
        columns.append(Column("bokslut_fg", f"Bokslut {forecast.year - 1} (mnkr)", "money"))
    columns += [
        Column("budget", f"Budget {forecast.year} (mnkr)", "money"),
        Column("utfall", f"Utfall t.o.m. {month} (mnkr)", "money"),
        Column("prognos", "Modellens prognos helår (mnkr)", "money", 15),
        Column("avvikelse", "Avvikelse budget − prognos (mnkr)", "deviation", 16),
        Column("avvikelse_pct", "Avvikelse (%)", "pct", 12),
    ]

    def figures(categories: Iterable[str]) -> tuple[float | None, float, float, float] | None:
        found = [forecast.get(node_id, c) for c in categories]
        nodes = [n for n in found if n is not None and n.kind == "cost"]
        if not nodes:
            return None
        prev = [previous.get(node_id, c) for c in categories] if previous is not None else []
        prev_sum = math.fsum(p.actual_ytd for p in prev if p is not None) if prev else None
        return (
            prev_sum,
            math.fsum(n.budget_full_year or 0.0 for n in nodes),
            math.fsum(n.actual_ytd for n in nodes),
            math.fsum(n.full_year for n in nodes),
        )

    def row(
        key: str, label: str, values: tuple[float | None, float, float, float], total: bool
    ) -> Row:
        prev, budget, actual, full_year = values
        cells: list[Cell] = [label]
        if with_previous:
            cells.append(_mnkr(prev))
        deviation = budget - full_year
        cells += [
            budget / MNKR,
            actual / MNKR,
            full_year / MNKR,
            deviation / MNKR,
            _pct(deviation, abs(budget)),
        ]
        return Row(tuple(cells), node_id, None, key, total)

    rows: list[Row] = []
    sums: dict[bool, list[float]] = {True: [0.0] * 4, False: [0.0] * 4}
    for group in _cost_groups(domain):
        values = figures(group.categories)
        if values is None or all(abs(v or 0.0) < 0.5 for v in values):
            continue  # a kostnadsslag that does not exist here
        rows.append(row(group.id, group.label, values, False))
        sums[group.revenue] = [
            s + (v or 0.0) for s, v in zip(sums[group.revenue], values, strict=True)
        ]
    intakter = [r for r in rows if any(g.id == r.category and g.revenue for g in COST_GROUPS)]
    out = [*intakter]
    if intakter:
        out.append(row("summa_intakter", "Summa intäkter", tuple(sums[True]), True))  # type: ignore[arg-type]
    out += [r for r in rows if r not in intakter]
    out.append(row("summa_kostnader", "Summa kostnader", tuple(sums[False]), True))  # type: ignore[arg-type]
    net = forecast.get(node_id, TOTAL)
    if net is not None:
        prev_net = previous.get(node_id, TOTAL) if previous is not None else None
        out.append(
            row(
                TOTAL,
                "Nettokostnad",
                (
                    prev_net.actual_ytd if prev_net is not None else None,
                    net.budget_full_year or 0.0,
                    net.actual_ytd,
                    net.full_year,
                ),
                True,
            )
        )
    return Table(
        "kostnadsslag",
        "Kostnadsslag",
        f"{node_name(domain.org, node_id)}: intäkter och kostnader per kostnadsslag i mnkr. "
        "Intäkter är negativa (de minskar nettokostnaden), så en intäkt som blir lägre än "
        "budgeterat ger en negativ avvikelse, ett underskott. Bara kostnadsslag som finns visas. "
        "Avvikelse % är av budgetens belopp.",
        tuple(columns),
        tuple(out),
    )


SICK_LEAVE, SCHEDULED = SJUK_MEASURES


def _sick_pct(
    fc_sick: NodeForecast | None, fc_sched: NodeForecast | None, months: int
) -> float | None:
    if fc_sick is None or fc_sched is None:
        return None
    sick = math.fsum(fc_sick.actual_monthly[:months])
    scheduled = math.fsum(fc_sched.actual_monthly[:months])
    return None if scheduled <= 0 else 100.0 * sick / scheduled


def sjukfranvaro(
    forecast: OrganisationForecast,
    domain: DomainConfig,
    nodes: Sequence[ReportNode],
    previous: OrganisationForecast | None = None,
) -> Table | None:
    """Sjukfrånvaro in per cent of scheduled hours per enhet, avdelning and the nämnd."""
    if not any(n.category == SICK_LEAVE for n in forecast.nodes):
        return None
    as_of = forecast.as_of_month
    month = MONTH_ABBR_SV[as_of - 1]
    columns = [
        *_id_columns(),
        Column("sjuk_ytd", f"Sjukfrånvaro t.o.m. {month} {forecast.year} (%)", "pct_level", 14),
    ]
    if previous is not None:
        columns += [
            Column("sjuk_ytd_fg", f"Samma period {forecast.year - 1} (%)", "pct_level", 14),
            Column(
                "forandring",
                f"Förändring {forecast.year - 1} − {forecast.year} (procentenheter)",
                "pct_change",
                16,
            ),
            Column("sjuk_helar_fg", f"Helår {forecast.year - 1} (%)", "pct_level", 12),
        ]
    org = domain.org
    rows = []
    ordered: list[tuple[str, str, bool]] = []
    for node in nodes:
        if node.level == "avdelning" and node.id in org.nodes:
            ordered += [(e.id, "enhet", False) for e in org.children(node.id)]
        if node.level != "forvaltning":
            ordered.append((node.id, node.level, node.level != "enhet"))
    for node_id, level, total in ordered:
        now = _sick_pct(forecast.get(node_id, SICK_LEAVE), forecast.get(node_id, SCHEDULED), as_of)
        if now is None:
            continue
        name = node_name(org, node_id)
        label = f"Summa {name}" if total else name
        if level == "namnd":
            label = next(_label(org, n) for n in nodes if n.id == node_id)
        cells: list[Cell] = [node_id, label, now]
        if previous is not None:
            before = _sick_pct(
                previous.get(node_id, SICK_LEAVE), previous.get(node_id, SCHEDULED), as_of
            )
            full = _sick_pct(
                previous.get(node_id, SICK_LEAVE), previous.get(node_id, SCHEDULED), 12
            )
            cells += [before, _diff(before, now), full]
        rows.append(Row(tuple(cells), node_id, level, SICK_LEAVE, total))
    caption = (
        "Sjukfrånvaro = sjukfrånvarotimmar i procent av schemalagda timmar, per enhet, "
        "avdelning och för nämnden."
    )
    if previous is not None:
        caption += (
            " Förändring = fjolårets andel − årets, samma tecken som avvikelserna: mer "
            "sjukfrånvaro än i fjol är negativt (rött)."
        )
    return Table("sjukfranvaro", "Sjukfrånvaro", caption, tuple(columns), tuple(rows))


def volym_pris(
    forecast: OrganisationForecast, domain: DomainConfig, nodes: Sequence[ReportNode]
) -> Table | None:
    """The deviation of volume-driven categories split into a volume and a price effect."""
    org = domain.org
    columns = (
        *_id_columns(),
        Column("kostnadsslag", "Kostnadsslag", "text", 26),
        Column("avvikelse", "Avvikelse budget − prognos (mnkr)", "deviation", 16),
        Column("volymeffekt", "Därav volymeffekt (mnkr)", "deviation", 14),
        Column("priseffekt", "Därav priseffekt (mnkr)", "deviation", 14),
    )
    rows = []
    for node in nodes:
        if node.level == "forvaltning":
            continue
        for category in domain.categories:
            fc = forecast.get(node.id, category)
            if fc is None or fc.volume_effect is None or fc.price_effect is None:
                continue
            if abs(fc.volume_effect) + abs(fc.price_effect) < 0.05 * MNKR:
                continue
            rows.append(
                Row(
                    (
                        node.id,
                        _label(org, node),
                        _category_name(domain, category),
                        _mnkr(fc.deviation),
                        _mnkr(fc.volume_effect),
                        _mnkr(fc.price_effect),
                    ),
                    node.id,
                    node.level,
                    category,
                    node.total,
                )
            )
    if not rows:
        return None
    return Table(
        "volym_pris",
        "Volym- och priseffekt",
        "Avvikelsen för kostnadsslag som styrs av en volym (vikarietimmar, övertidstimmar, köpta "
        "platser, hushåll) delad i volymeffekt (volymens avvikelse från plan × budgeterat pris "
        "per enhet) och priseffekt (prisets avvikelse × prognostiserad volym). Negativt = "
        "underskott. Volym- och priseffekt summerar till avvikelsen mot den budget som har en "
        "volymplan.",
        columns,
        tuple(rows),
    )


#: The follow-up's status names as table cells (capitalised).
MEASURE_STATUS_SV = {k: v.capitalize() for k, v in FOLLOW_UP_STATUS_SV.items()}


def atgarder(analyses: Sequence[NodeAnalysis]) -> Table | None:
    """Every åtgärd of the period with its bedömd besparing and what has been realised."""
    measures = [(a, m) for a in analyses for m in a.measures]
    if not measures:
        return None
    columns = (
        Column("ansvar", "Ansvar", "text", 9),
        Column("verksamhet", "Verksamhet", "text", 28),
        Column("atgard", "Åtgärd", "text", 48),
        Column("ansvarig", "Ansvarig", "text", 20),
        Column("status", "Status", "text", 12),
        Column("beslutad", "Beslutad", "text", 12),
        Column("besparing", "Bedömd besparing helår (mnkr)", "money", 14),
        Column("realiserad", "Realiserad besparing (mnkr)", "money", 14),
    )
    rows = [
        Row(
            (
                a.org_unit,
                a.name,
                m.text,
                m.responsible,
                MEASURE_STATUS_SV.get(m.status, m.status),
                m.decided.isoformat() if m.decided else "–",
                m.amount_sek / MNKR,
                _mnkr(m.realised_sek),
            ),
            a.org_unit,
            a.level,
            m.status,
            False,
        )
        for a, m in measures
    ]
    decided = [m for _, m in measures if m.status in ("beslutad", "genomford")]
    rows.append(
        Row(
            (
                "",
                "Summa beslutade och genomförda åtgärder",
                f"{len(decided)} av {len(measures)} åtgärder",
                "",
                "",
                "",
                math.fsum(m.amount_sek for m in decided) / MNKR,
                math.fsum(m.realised_sek or 0.0 for m in decided) / MNKR,
            ),
            None,
            None,
            "summa",
            True,
        )
    )
    return Table(
        "atgarder",
        "Åtgärder",
        "Åtgärder för ekonomi i balans: bedömd besparing på helår när åtgärden beslutades och "
        "den besparing som har realiserats hittills (som i Enköpings verksamhetsberättelse 2024, "
        "avsnitt 7.2). Summan avser beslutade och genomförda åtgärder; planerade ingår inte.",
        columns,
        tuple(rows),
    )


def _drivers(forecast: OrganisationForecast, domain: DomainConfig, node_id: str) -> list[str]:
    """The largest category deviations behind a node's total, with their volume/price split."""
    out = []
    parts = []
    for category in domain.categories:
        fc = forecast.get(node_id, category)
        if fc is None or fc.deviation is None or abs(fc.deviation) < 0.5 * MNKR:
            continue
        parts.append((fc.deviation, category, fc))
    parts.sort(key=lambda p: -abs(p[0]))  # the largest first, deficit or surplus
    for deviation, category, fc in parts[:3]:
        text = f"{_category_name(domain, category)} {format_number_sv(deviation / MNKR)} mnkr"
        if fc.volume_effect is not None and fc.price_effect is not None:
            text += (
                f" (volym {format_number_sv(fc.volume_effect / MNKR)}, pris "
                f"{format_number_sv(fc.price_effect / MNKR)})"
            )
        out.append(text)
    return out


def node_analyses(
    forecast: OrganisationForecast,
    domain: DomainConfig,
    nodes: Sequence[ReportNode],
    follow_up: Any = None,
    forvaltning: Mapping[str, float] | None = None,
) -> tuple[NodeAnalysis, ...]:
    """Analys per avdelning and nämnd (and every enhet with follow-up data), in report order."""
    org = domain.org
    by_node = dict(follow_up.nodes) if follow_up is not None else {}
    order: list[tuple[str, str]] = []
    for node in nodes:  # each avdelning, then its enheter with follow-up data
        if node.level in ("avdelning", "namnd") or node.id in by_node:
            order.append((node.id, node.level))
        if node.level == "avdelning" and node.id in org.nodes:
            order += [(e.id, "enhet") for e in org.children(node.id) if e.id in by_node]
    out = []
    for node_id, level in order:
        data = by_node.get(node_id)
        fc = forecast.get(node_id, TOTAL)
        approval = getattr(data, "approval", None) if data is not None else None
        out.append(
            NodeAnalysis(
                org_unit=node_id,
                name=node_name(org, node_id),
                level=level,
                comment=getattr(data, "comment", None),
                comment_by=getattr(data, "comment_by", None),
                adjusted_full_year_sek=getattr(data, "adjusted_full_year_sek", None),
                model_full_year_sek=fc.full_year if fc is not None else None,
                forvaltning_full_year_sek=(forvaltning or {}).get(node_id),
                adjustment_reason=getattr(data, "adjustment_reason", None),
                approved_by=approval.approved_by if approval is not None else None,
                approved_at=approval.approved_at if approval is not None else None,
                measures=tuple(
                    MeasureView(
                        node_id,
                        m.text,
                        m.responsible,
                        float(m.amount_sek),
                        m.status,
                        m.decided,
                        None if m.realised_sek is None else float(m.realised_sek),
                    )
                    for m in (getattr(data, "measures", ()) or ())
                ),
                drivers=tuple(_drivers(forecast, domain, node_id)),
            )
        )
    return tuple(out)


# --- Method and intervals --------------------------------------------------------------------

#: Swedish words for the forecast methods a leaf row's ``model`` names.
METHOD_WORDS = {
    "fallback": "reservmetoden (budgetens profil och årets utfall; för kort historik för att "
    "pröva modellerna mot tidigare år)",
    "ensemble": "en viktad ensemble av modeller, vägda efter hur väl de har träffat tidigare år",
}


def method_label(model: str) -> str:
    """``auto:fallback`` → the Swedish words for the method, else the model's own name."""
    tail = model.split(":", 1)[1] if ":" in model else model
    return METHOD_WORDS.get(tail, f"modellen {model}")


def _leaf_rows(forecast: OrganisationForecast) -> list[NodeForecast]:
    return [
        n for n in forecast.nodes if n.kind == "cost" and n.model != "sum" and n.category != TOTAL
    ]


def interval_coverage(
    snapshots: Sequence[SnapshotLike], outcome: OrganisationForecast
) -> tuple[int, int]:
    """(hits, rows): how many cost rows' 80 % intervals held the year's outcome, over the
    snapshots before December of the outcome's year, every level and category."""
    hits = rows = 0
    for snap in snapshots:
        fc = snap.forecast
        if fc.year != outcome.year or fc.as_of_month >= 12:
            continue
        for node in fc.nodes:
            if node.kind != "cost":
                continue
            actual = outcome.get(node.org_unit, node.category)
            if actual is None:
                continue
            rows += 1
            hits += node.low <= actual.actual_ytd <= node.high
    return hits, rows


def coverage_by_method(
    snapshots: Sequence[SnapshotLike], outcome: OrganisationForecast
) -> dict[str, tuple[int, int]]:
    """(hits, rows) per forecast method over the leaf rows (enhet × category) of the snapshots
    before December of the outcome's year: how often each method's intervals held."""
    out: dict[str, tuple[int, int]] = {}
    for snap in snapshots:
        fc = snap.forecast
        if fc.year != outcome.year or fc.as_of_month >= 12:
            continue
        for node in _leaf_rows(fc):
            actual = outcome.get(node.org_unit, node.category)
            if actual is None:
                continue
            method = getattr(node, "interval_method", None) or node.model
            hits, rows = out.get(method, (0, 0))
            out[method] = (hits + (node.low <= actual.actual_ytd <= node.high), rows + 1)
    return out


def method_notes(
    forecast: OrganisationForecast,
    previous_year: Sequence[SnapshotLike] = (),
    previous_outcome: OrganisationForecast | None = None,
) -> list[str]:
    """Which method produced the report's forecasts and how often its intervals have held."""
    leaves = _leaf_rows(forecast)
    if not leaves:
        return []
    methods: dict[str, int] = {}
    for leaf in leaves:
        name = getattr(leaf, "interval_method", None) or leaf.model
        methods[name] = methods.get(name, 0) + 1
    notes = []
    ranked = sorted(methods.items(), key=lambda kv: -kv[1])
    if len(ranked) == 1:
        parts = [f"alla med {method_label(ranked[0][0])}"]
    else:
        parts = [f"{count} av {len(leaves)} med {method_label(name)}" for name, count in ranked]
    notes.append(
        "Modellens prognos görs per enhet och kostnadsslag (" + str(len(leaves)) + " serier) och "
        "summeras uppåt: " + "; ".join(parts) + "."
    )
    fallback = sum(c for n, c in methods.items() if n.endswith("fallback"))
    if fallback * 2 > len(leaves):
        who = "Alla serier" if fallback == len(leaves) else f"De flesta serierna ({fallback})"
        notes.append(
            f"{who} har alltså prognostiserats med reservmetoden, eftersom historiken är för "
            "kort för att pröva modellerna mot tidigare år. Läs intervallen med försiktighet."
        )
    # Where the intervals' own backtest coverage is stored with the rows (a share 0..1), use it.
    stored = [
        float(c) / (100.0 if float(c) > 1.0 else 1.0)  # a share; tolerate per cent
        for n in leaves
        if (c := getattr(n, "interval_coverage", None)) is not None
    ]
    if stored:
        share = 100.0 * math.fsum(stored) / len(stored)
        notes.append(
            f"Intervallet har träffat i {format_number_sv(share, 0)} % av fallen i efterhand "
            "(80 %-intervallen i tidigare prognoser av samma slag)."
        )
    elif previous_outcome is not None:
        hits, rows = interval_coverage(previous_year, previous_outcome)
        if rows:
            share = 100.0 * hits / rows
            notes.append(
                f"Intervallet har träffat i {format_number_sv(share, 0)} % av fallen i efterhand: "
                f"av {format_number_sv(rows, 0)} prognoser under {previous_outcome.year} "
                f"(januari–november, alla nivåer och kostnadsslag) hamnade helårsutfallet inom "
                f"80 %-intervallet i {format_number_sv(hits, 0)}."
                + (" Intervallen är alltså smalare än de borde vara." if share < 70 else "")
            )
        per_method = coverage_by_method(previous_year, previous_outcome)
        if len(per_method) > 1:
            notes.append(
                "Per metod (enhet och kostnadsslag): "
                + "; ".join(
                    f"{method_label(method)}: {format_number_sv(100.0 * h / n, 0)} % av {n}"
                    for method, (h, n) in sorted(per_method.items(), key=lambda kv: -kv[1][1])
                    if n
                )
                + "."
            )
    else:
        notes.append(
            "Hur ofta intervallen har träffat kan ännu inte sägas: det finns inget avslutat år "
            "med prognoser att jämföra med."
        )
    return notes


# --- The report ------------------------------------------------------------------------------

LEGEND = (
    "Belopp i mnkr (miljoner kronor) om inget annat anges; nettokostnad: kostnader positiva, "
    "intäkter negativa.",
    "Avvikelse = budget − prognos (eller budget − utfall, plan − utfall för volymer, föregående "
    "prognos − prognos för förändringar, prognos − utfall för prognossäkerhet): ett negativt "
    "värde är ett underskott eller en försämring och visas i rött.",
    "Summor kan avvika från summan av de visade delarna på grund av avrundning.",
)


def staff_notes(forecast: OrganisationForecast, domain: DomainConfig, node_id: str) -> list[str]:
    """Explain a staff category whose full-year deviation is forecast, not yet booked."""
    month = MONTH_NAMES_SV[forecast.as_of_month - 1]
    notes = []
    for category in staff_categories_present(forecast, node_id):
        budget, budget_ytd, actual, full_year, budget_rest, forecast_rest = _staff_figures(
            forecast.get(node_id, category)
        )
        ytd = budget_ytd - actual
        rest = budget_rest - forecast_rest
        if abs(budget - full_year) < 2 * MNKR or abs(rest) < 2 * abs(ytd):
            continue
        word = "ett överskott" if rest > 0 else "ett underskott"
        notes.append(
            f"{_category_name(domain, category)}: utfallet t.o.m. {month} avviker med "
            f"{format_number_sv(ytd / MNKR)} mnkr från budget, men prognosen visar {word} på "
            f"{format_number_sv(abs(budget - full_year) / MNKR)} mnkr för helåret. Skillnaden "
            f"ligger i resten av året: budgeten för de återstående månaderna är "
            f"{format_number_sv(budget_rest / MNKR)} mnkr och modellen prognostiserar "
            f"{format_number_sv(forecast_rest / MNKR)} mnkr utifrån årets kostnadsnivå per "
            "månad. Den periodiserade budgeten och det faktiska mönstret (semester, "
            "lönerevision) skiljer sig, så delar av avvikelsen kan vara en periodiseringseffekt."
        )
    return notes


def summary_sentences(
    forecast: OrganisationForecast,
    domain: DomainConfig,
    compared: Sequence[SnapshotLike],
    forvaltning: Mapping[str, float] | None = None,
) -> list[str]:
    """What a controller writes first: the nämnd's forecast result, its interval, the trend."""
    org = domain.org
    root = report_namnd(org)
    month = MONTH_NAMES_SV[forecast.as_of_month - 1]
    fc = forecast.get(root.id, TOTAL)
    if fc is None:
        return [f"Det finns inga bokade kostnader för {root.name} {forecast.year}."]
    forvaltning = forvaltning or {}
    lines = []
    adjusted = forvaltning.get(root.id, fc.full_year)
    has_adjustment = abs(adjusted - fc.full_year) >= 0.05 * MNKR
    deviation = fc.deviation
    if deviation is not None and fc.budget_full_year:
        word = "ett underskott" if deviation < 0 else "ett överskott"
        pct = format_number_sv(100 * deviation / fc.budget_full_year)
        lines.append(
            f"Modellens prognos efter {month} {forecast.year} visar en nettokostnad för "
            f"{root.name.lower()} på {format_mnkr(fc.full_year)} mnkr mot en budget på "
            f"{format_mnkr(fc.budget_full_year)} mnkr, {word} på "
            f"{format_mnkr(abs(deviation))} mnkr ({pct} %)."
        )
        if has_adjustment:
            adj_dev = fc.budget_full_year - adjusted
            word = "ett underskott" if adj_dev < 0 else "ett överskott"
            lines.append(
                f"Förvaltningens prognos, med de justeringar som motiveras i analysen, är "
                f"{format_mnkr(adjusted)} mnkr: {word} på {format_mnkr(abs(adj_dev))} mnkr."
            )
    else:
        lines.append(
            f"Modellens prognos efter {month} {forecast.year} visar en nettokostnad för "
            f"{root.name.lower()} på {format_mnkr(fc.full_year)} mnkr."
        )
    lines.append(
        f"Modellens 80 %-intervall för helårsutfallet är {format_mnkr(fc.low)}–"
        f"{format_mnkr(fc.high)} mnkr."
    )
    parts = []
    for node in report_nodes(org, forecast):
        avd = forecast.get(node.id, TOTAL)
        if node.level == "avdelning" and avd is not None and avd.budget_full_year is not None:
            value = forvaltning.get(node.id, avd.full_year)
            parts.append(
                f"{node_name(org, node.id)} {format_mnkr(avd.budget_full_year - value)} mnkr"
            )
    if parts:
        lines.append("Avvikelse mot budget per avdelning: " + ", ".join(parts) + ".")
    if len(compared) > 1:
        previous = compared[-2]
        prev_fc = previous.forecast.get(root.id, TOTAL)
        if prev_fc is not None:
            change = fc.full_year - prev_fc.full_year
            prev_month = MONTH_NAMES_SV[previous.forecast.as_of_month - 1]
            if round(abs(change) / MNKR, 1) == 0:
                lines.append(f"Modellens prognos är oförändrad sedan prognosen efter {prev_month}.")
            else:
                verb = "ökat" if change > 0 else "minskat"
                lines.append(
                    f"Den prognostiserade nettokostnaden har {verb} med "
                    f"{format_mnkr(abs(change))} mnkr sedan prognosen efter {prev_month}."
                )
    return lines


def build_tables(
    current: SnapshotLike,
    compared: Sequence[SnapshotLike],
    domain: DomainConfig,
    *,
    forvaltning: Mapping[str, float] | None = None,
    previous: OrganisationForecast | None = None,
    analyses: Sequence[NodeAnalysis] = (),
    accuracy_table: Table | None = None,
) -> tuple[Table, ...]:
    forecast = current.forecast
    nodes = report_nodes(domain.org, forecast)
    tables: list[Table | None] = [
        driftredovisning(forecast, domain, nodes, forvaltning, previous),
        driftredovisning_enhet(forecast, domain, nodes, forvaltning, previous),
        kostnadsslag(forecast, domain, report_namnd(domain.org).id, previous),
        prognosforandring(compared, domain, nodes),
        atgarder(analyses),
        personalkostnader(forecast, domain, nodes),
        sjukfranvaro(forecast, domain, nodes, previous),
        volym_pris(forecast, domain, nodes),
        volymer(forecast, domain),
        nyckeltal(forecast, domain),
        accuracy_table,
    ]
    return tuple(t for t in tables if t is not None)


def chart_nodes(domain: DomainConfig, forecast: OrganisationForecast) -> list[str]:
    """The avdelningar (and the nämnd last) that get a chart."""
    return [n.id for n in report_nodes(domain.org, forecast) if n.level in ("avdelning", "namnd")]


def approval_status(approval: Any, version: int, latest_version: int | None) -> tuple[bool, str]:
    """(approved, the cover's sentence) of the snapshot version the report is built from.

    ``approval`` is the nämnd's newest ``Approval`` (any version) or None.
    """
    later = latest_version is not None and latest_version > version
    if approval is not None and approval.snapshot_version == version:
        moment = approval.approved_at.strftime("%Y-%m-%d %H:%M")
        text = f"Godkänd av {approval.approved_by} {moment} UTC (snapshot-version {version})."
        if approval.comment:
            text += f" Kommentar: {approval.comment}"
        if later:
            text += (
                f" Det finns en senare version ({latest_version}) med ändringar efter "
                "godkännandet; den är inte godkänd och ingår inte i rapporten."
            )
        return True, text
    which = (
        f"version {version} av snapshoten (den senaste är {latest_version})"
        if later
        else f"den senaste versionen ({version}) av snapshoten"
    )
    return False, (
        f"Prognosen är inte godkänd: rapporten bygger på {which}, som ingen har godkänt för "
        "nämnden."
    )


def build_report(
    current: SnapshotLike,
    earlier: Iterable[SnapshotLike],
    domain: DomainConfig,
    *,
    compare: CompareMode = "auto",
    charts: bool = True,
    follow_up: Any = None,
    previous_year: Sequence[SnapshotLike] = (),
    accuracy_table: Table | None = None,
    accuracy_notes: Sequence[str] = (),
    approval: Any = None,
    latest_version: int | None = None,
) -> Report:
    """The delårsrapport of ``current`` with the year's ``earlier`` snapshots (any order).

    ``follow_up`` (a ``PeriodFollowUp`` or None) adds the comments, åtgärder, förvaltningens
    prognos and the approval; ``previous_year`` (the previous year's snapshots, the December one
    among them) adds Bokslut, last year's sjukfrånvaro and the intervals' hit rate.
    """
    forecast = current.forecast
    compared = choose_compared(current, list(earlier), compare)
    org = domain.org
    root = report_namnd(org)
    nodes = report_nodes(org, forecast)
    december = next(
        (
            s
            for s in sorted(previous_year, key=lambda s: (s.period, s.version), reverse=True)
            if s.forecast.year == forecast.year - 1 and s.forecast.as_of_month == 12
        ),
        None,
    )
    previous = december.forecast if december is not None else None
    forvaltning = forvaltning_forecasts(forecast, org, adjusted_nodes(follow_up))
    analyses = node_analyses(forecast, domain, nodes, follow_up, forvaltning)
    if approval is None and follow_up is not None and root.id in follow_up.nodes:
        approval = follow_up.nodes[root.id].approval
    approved, status = approval_status(approval, current.version, latest_version)
    chart_data = tuple(
        (node_id, node_name(org, node_id), fc)
        for node_id in chart_nodes(domain, forecast)
        if (fc := forecast.get(node_id, TOTAL)) is not None
    )
    rendered: tuple[Chart, ...] = ()
    if charts:
        from services.reports.charts import render_charts

        rendered = tuple(render_charts(chart_data))
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
        summary=tuple(summary_sentences(forecast, domain, compared, forvaltning)),
        tables=build_tables(
            current,
            compared,
            domain,
            forvaltning=forvaltning,
            previous=previous,
            analyses=analyses,
            accuracy_table=accuracy_table,
        ),
        charts=rendered,
        status=status,
        approved=approved,
        analyses=analyses,
        method_notes=(*method_notes(forecast, previous_year, previous), *accuracy_notes),
        staff_notes=tuple(staff_notes(forecast, domain, root.id)),
        legend=LEGEND,
        chart_data=chart_data,
    )
