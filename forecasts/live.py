"""The organisation's forecast at one as-of month: every leaf forecast, every node rolled up.

Pure: the stream worker (``streams.forecasting``), the snapshot command and the demo build the
leaf series from aggregated events and call :func:`forecast_organisation`; what comes back is the
one shape that gauges, ``forecast.v1`` events, deviation rules, snapshots and reports read.

A *leaf* is one (enhet, category) cost series or one (enhet, measure) volume series. Cost leaves
are forecast together in one ``auto`` panel (the cross-learned correction needs the panel);
measures in a second panel. Nodes are the leaves' enheter and every ancestor: per category (the
category's total under the node) and ``TOTAL`` (all cost categories, revenues included, i.e.
the net cost as a nämnd reports it). Measures roll up per measure only. Intervals of roll-ups
come from ``forecasts.rollup`` (equicorrelated errors).

One series cannot stop the organisation's forecast (:func:`forecast_organisation`): a leaf whose
history or plan is not finite or beyond :data:`MAX_SERIES_MAGNITUDE` is left out before the
panel is built (it would make the panel's arithmetic overflow, and a pooled correction would
carry that into every other leaf); a panel that raises is split in halves until the failing
leaves are found; a leaf or node whose figures come out non-finite is left out. What was left
out is listed in :attr:`OrganisationForecast.failed` for the caller to report.

The stream worker calls :func:`forecast_organisation` again after every change, for several
(year, as-of month) pairs, in one long-lived pool process. Three bounded caches
(``forecasts.cache``) make the repeated work cheap without changing a figure: a whole result
is reused when every input is the same (the same leaves, figures, plans and configuration: a
history year's forecast, re-run at every change in the current year); ``forecasts.engine``
reuses the origin-year tables and ``forecasts.crosslearn`` the fitted correction as long as the
history years they learnt from are unchanged. Each key is a fingerprint of exactly the data
used, so a late posting or a new budget is always seen.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

from core.domain import DomainConfig
from core.hierarchy import OrgTree
from core.period import Period, PeriodError
from forecasts.cache import BoundedCache, check_abort
from forecasts.candidates import MONTHS
from forecasts.engine import Z80
from forecasts.rollup import DEFAULT_RHO, Leaf, aggregate_sums
from forecasts.series import SeriesForecast, forecast_many
from forecasts.volume import split_deviation

#: The ``category`` label of a node's net cost over all cost categories.
TOTAL = "total"

#: The largest monthly amount (or plan) a series may have to be forecast: 10¹⁵ kr is a hundred
#: events at the contract's bound of 10¹³ kr in one month, far beyond any municipality's books,
#: and far enough from float overflow (≈ 1.8·10³⁰⁸) for sums, squares and roll-ups.
MAX_SERIES_MAGNITUDE = 1e15

SeriesKind = Literal["cost", "measure"]


@dataclass(frozen=True)
class LeafSeries:
    """One cost centre's monthly history of one category or measure, and its plan for the year.

    ``actuals`` maps ``YYYY-MM`` → amount (SEK as booked, or the measure's unit) over all years
    known; ``budget_monthly`` is the forecast year's periodised budget (12 values) or None.
    """

    org_unit: str
    kind: SeriesKind
    name: str  # category or measure id
    actuals: Mapping[str, float]
    budget_monthly: Sequence[float] | None = None


@dataclass(frozen=True)
class NodeForecast:
    """A node's full-year forecast of one category, measure or ``TOTAL`` at one as-of month."""

    org_unit: str
    level: str  # namnd | forvaltning | avdelning | enhet (or omappad)
    kind: SeriesKind
    category: str  # category id, measure id, or TOTAL
    year: int
    as_of_month: int
    actual_monthly: tuple[float, ...]  # months 1 … as_of_month
    budget_monthly: tuple[float, ...] | None  # 12 periodised months; None without a budget
    path: tuple[float, ...]  # forecast of months as_of_month+1 … 12
    full_year: float
    low: float  # 80 % interval of the full-year total
    high: float
    sigma: float  # standard deviation of the full-year total
    model: str  # the leaf's model; "sum" for a roll-up
    volume_effect: float | None = None  # of budget − forecast, when a volume plan drives it
    price_effect: float | None = None
    # How the 80 % interval's width was set (forecasts.calibration): "backtest" (the series' own
    # backtest, calibrated on the panel), "panel" (learnt from comparable series), "fallback"
    # (uncalibrated), "actual" (December). A roll-up carries its weakest leaf's method.
    interval_method: str = "fallback"
    # Share of the calibration set's outcomes inside such an interval ("har träffat i 81 % av
    # fallen i efterhand"); a roll-up's is its leaves' average weighted by variance; None unknown.
    interval_coverage: float | None = None

    @property
    def actual_ytd(self) -> float:
        return math.fsum(self.actual_monthly)

    @property
    def budget_full_year(self) -> float | None:
        return math.fsum(self.budget_monthly) if self.budget_monthly is not None else None

    @property
    def budget_ytd(self) -> float | None:
        if self.budget_monthly is None:
            return None
        return math.fsum(self.budget_monthly[: self.as_of_month])

    @property
    def deviation(self) -> float | None:
        """Budget − forecast; negative is a forecast deficit (underskott) for a cost."""
        budget = self.budget_full_year
        return None if budget is None else budget - self.full_year

    @property
    def month_spread(self) -> float:
        """Half-width of one forecast month's 80 % interval; 0 in December.

        The month's SD is the full-year SD spread evenly over the remaining months as if their
        errors were independent (σ_month = σ / √remaining): a documented approximation.
        """
        return Z80 * self.sigma / math.sqrt(len(self.path)) if self.path else 0.0

    def next_month(self) -> tuple[float, float, float] | None:
        """Forecast of month ``as_of_month + 1`` with an 80 % interval; None in December."""
        if not self.path:
            return None
        spread = self.month_spread
        return self.path[0], self.path[0] - spread, self.path[0] + spread


@dataclass(frozen=True)
class FailedSeries:
    """A leaf or node left out of an organisation forecast, and why (no amounts: the reason is
    one of a few fixed texts)."""

    org_unit: str
    kind: SeriesKind
    name: str  # category id, measure id, or TOTAL
    reason: str


@dataclass(frozen=True)
class OrganisationForecast:
    year: int
    as_of_month: int
    nodes: list[NodeForecast] = field(default_factory=list)
    failed: list[FailedSeries] = field(default_factory=list)

    def get(self, org_unit: str, category: str) -> NodeForecast | None:
        return self._by_key.get((org_unit, category))

    @cached_property
    def _by_key(self) -> dict[tuple[str, str], NodeForecast]:
        return {(n.org_unit, n.category): n for n in self.nodes}


@dataclass
class _Member:
    """A leaf as a roll-up sees it."""

    leaf: Leaf
    actual: np.ndarray  # (as_of,)
    path: np.ndarray  # (12 - as_of,)
    budget: np.ndarray | None  # (12,)
    model: str
    interval_method: str = "fallback"
    interval_coverage: float | None = None


def _forecast_leaves(
    leaves: Sequence[LeafSeries], domain: DomainConfig, year: int, as_of: int, model: str
) -> list[SeriesForecast]:
    if not leaves:
        return []
    categories = [
        domain.categories.get(leaf.name) if leaf.kind == "cost" else None for leaf in leaves
    ]
    return forecast_many(
        [leaf.actuals for leaf in leaves],
        year,
        as_of,
        [leaf.budget_monthly for leaf in leaves],
        model=model,
        categories=categories,
    )


def _members(
    leaves: Sequence[LeafSeries], forecasts: Sequence[SeriesForecast], year: int, as_of: int
) -> list[_Member]:
    out = []
    periods = [f"{year:04d}-{m:02d}" for m in range(1, as_of + 1)]
    for leaf, fc in zip(leaves, forecasts, strict=True):
        actual = np.array([float(leaf.actuals.get(period, 0.0)) for period in periods])
        budget = (
            np.asarray(leaf.budget_monthly, dtype=float)
            if leaf.budget_monthly is not None
            else None
        )
        out.append(
            _Member(
                Leaf(ytd=fc.ytd, full_year=fc.full_year, sigma=fc.sigma),
                actual,
                np.asarray(fc.path, dtype=float),
                budget,
                fc.model,
                fc.interval_method,
                fc.interval_coverage,
            )
        )
    return out


class _Members:
    """Every leaf a roll-up reads, as columns (one row per leaf), so that a node sums rows."""

    def __init__(self, members: Sequence[_Member], as_of: int) -> None:
        self.members = members
        rem = MONTHS - as_of
        self.actual = np.zeros((len(members), as_of))
        self.path = np.zeros((len(members), rem))
        self.budget = np.zeros((len(members), MONTHS))
        self.has_budget = np.zeros(len(members), dtype=bool)
        for row, member in enumerate(members):
            self.actual[row] = member.actual
            self.path[row] = member.path
            if member.budget is not None:
                self.budget[row] = member.budget
                self.has_budget[row] = True
        self.sigma = np.array([m.leaf.sigma for m in members], dtype=float)
        self.ytd = [m.leaf.ytd for m in members]
        self.full_year = [m.leaf.full_year for m in members]

    def node(
        self,
        org: OrgTree,
        node_id: str,
        kind: SeriesKind,
        name: str,
        year: int,
        as_of: int,
        rows: Sequence[int],
    ) -> NodeForecast:
        """The sum of the leaves ``rows`` (roll-ups: ``forecasts.rollup``; leaves carry no
        backtest errors here, so the correlation is the default)."""
        index = np.asarray(rows)
        members = [self.members[i] for i in rows]
        agg = aggregate_sums(
            [self.ytd[i] for i in rows],
            [self.full_year[i] for i in rows],
            self.sigma[index],
            DEFAULT_RHO,
        )
        budgeted = index[self.has_budget[index]]
        budget = self.budget[budgeted].sum(axis=0) if budgeted.size else None
        return NodeForecast(
            org_unit=node_id,
            level=org.level_of(node_id) if node_id in org.nodes else "enhet",
            kind=kind,
            category=name,
            year=year,
            as_of_month=as_of,
            actual_monthly=tuple(self.actual[index].sum(axis=0).tolist()),
            budget_monthly=tuple(budget.tolist()) if budget is not None else None,
            path=tuple(self.path[index].sum(axis=0).tolist()),
            full_year=agg.full_year,
            low=agg.low,
            high=agg.high,
            sigma=agg.sigma,
            model=members[0].model if len(members) == 1 else "sum",
            interval_method=_weakest_method(members),
            interval_coverage=_rolled_coverage(members),
        )


#: From the strongest to the weakest way of setting an interval's width.
_METHOD_ORDER = ("actual", "backtest", "panel", "fallback")


def _weakest_method(members: Sequence[_Member]) -> str:
    methods = {m.interval_method for m in members}
    known = [m for m in _METHOD_ORDER if m in methods]
    return known[-1] if known and len(known) == len(methods) else "fallback"


def _rolled_coverage(members: Sequence[_Member]) -> float | None:
    """The leaves' calibration coverage weighted by their variance (the widest dominate)."""
    weights = [m.leaf.sigma**2 for m in members]
    if any(m.interval_coverage is None for m in members if m.leaf.sigma > 0):
        return None
    total = math.fsum(weights)
    if total <= 0:
        return None
    return (
        math.fsum(w * (m.interval_coverage or 0.0) for w, m in zip(weights, members, strict=True))
        / total
    )


def _finite(values: Sequence[float | None]) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


def _forecastable(leaf: LeafSeries) -> bool:
    values = np.fromiter(leaf.actuals.values(), dtype=float, count=len(leaf.actuals))
    if leaf.budget_monthly is not None:
        values = np.concatenate([values, np.asarray(leaf.budget_monthly, dtype=float)])
    return bool(np.all(np.abs(values) <= MAX_SERIES_MAGNITUDE))  # False for NaN and ±inf


def _series_ok(fc: SeriesForecast) -> bool:
    return _finite([fc.ytd, fc.full_year, fc.low, fc.high, fc.sigma, *fc.path])


def _forecast_isolating(
    leaves: Sequence[LeafSeries],
    domain: DomainConfig,
    year: int,
    as_of: int,
    model: str,
    failed: list[FailedSeries],
) -> list[tuple[LeafSeries, SeriesForecast]]:
    """Forecast ``leaves`` as one panel; if the panel raises, forecast its halves (recursively)
    so that only the leaves that fail by themselves are left out (into ``failed``)."""
    if not leaves:
        return []
    try:
        forecasts = _forecast_leaves(leaves, domain, year, as_of, model)
    except Exception as err:  # one series must not stop the others; reported, not hidden
        if len(leaves) == 1:
            leaf = leaves[0]
            reason = f"forecast failed: {type(err).__name__}"
            failed.append(FailedSeries(leaf.org_unit, leaf.kind, leaf.name, reason))
            return []
        middle = len(leaves) // 2
        return _forecast_isolating(
            leaves[:middle], domain, year, as_of, model, failed
        ) + _forecast_isolating(leaves[middle:], domain, year, as_of, model, failed)
    out = []
    for leaf, fc in zip(leaves, forecasts, strict=True):
        if _series_ok(fc):
            out.append((leaf, fc))
        else:
            failed.append(FailedSeries(leaf.org_unit, leaf.kind, leaf.name, "non-finite forecast"))
    return out


def _node_ok(node: NodeForecast) -> bool:
    """Every figure a consumer reads is finite (a roll-up of huge leaves can overflow)."""
    try:
        figures = [
            node.full_year,
            node.low,
            node.high,
            node.sigma,
            node.actual_ytd,
            node.budget_full_year,
            node.budget_ytd,
            node.deviation,
            node.volume_effect,
            node.price_effect,
            *node.path,
        ]
    except (OverflowError, ValueError):  # math.fsum of the months overflowed
        return False
    return _finite(figures)


#: Bounds of the cache of whole organisation forecasts: a nämnd of 2 660 leaves is ≈ 3 000 nodes,
#: ≈ 3,6 MB. The stream worker keeps each nämnd's forecasts itself and asks again only for the
#: (year, month) pairs whose inputs changed (``streams.owner_inputs``), whose keys are then new:
#: so this cache is hit mostly within a pass and after a warm-up, and at 256 MB it held ≈ 200 MB
#: of stale results in a worker's forecast pool. At 64 MB a worker holding three nämnder of
#: 1 060 cost centres peaked at 831 MiB instead of 1 092, its closes no slower
#: (docs/performance.md, "The full kommun on three workers").
RESULT_CACHE_ENTRIES = 128
RESULT_CACHE_BYTES = 64 * 2**20


def _forecast_bytes(forecast: OrganisationForecast) -> int:
    """Roughly what a forecast holds: a node object and its tuples (24 B a float in a tuple)."""
    return sum(
        700 + 24 * (len(n.actual_monthly) + len(n.path) + len(n.budget_monthly or ()))
        for n in forecast.nodes
    ) + 200 * len(forecast.failed)


_result_cache: BoundedCache[OrganisationForecast] = BoundedCache(
    "organisation forecasts", RESULT_CACHE_ENTRIES, RESULT_CACHE_BYTES, _forecast_bytes
)


def _month_index(text: object, parsed: dict[object, int | None]) -> int | None:
    """Months since year 0 of a period text (as ``build_panel`` parses it); None if it does
    not parse. ``parsed`` memoises the texts of one call."""
    if text not in parsed:
        try:
            y, m = Period.parse(str(text))
            parsed[text] = y * MONTHS + m - 1
        except (PeriodError, ValueError):
            parsed[text] = None
    return parsed[text]


def _inputs_key(
    leaves: Sequence[LeafSeries], domain: DomainConfig, year: int, as_of: int, model: str
) -> str:
    """A fingerprint of everything a forecast at ``as_of`` reads: the org tree, the categories,
    the year, month and model, and per leaf its identity, its plan, its entries up to the as-of
    month (period text and amount as the float64 bytes every computation converts it to), its
    first month and whether all its amounts are usable (``_forecastable``). Entries after the
    as-of month are read only for those two (``build_panel`` ignores them otherwise), so a
    posting in a later month keeps the key: the forecast of the month before a close is reused
    while the closed month's postings arrive. A leaf with a period text that does not parse
    keeps every entry in its key (its forecast fails on it)."""
    digest = hashlib.blake2b(digest_size=20)
    org = list(domain.org.nodes.values())
    digest.update(repr((year, as_of, model, org, list(domain.categories.values()))).encode())
    last = year * MONTHS + as_of - 1
    parsed: dict[object, int | None] = {}
    # Most leaves share one sequence of period texts: what the key reads of a sequence (which
    # entries are kept, the first month, the kept texts) is worked out once per sequence.
    layouts: dict[tuple[object, ...], tuple[np.ndarray, str]] = {}
    for leaf in leaves:
        texts = tuple(leaf.actuals)
        layout = layouts.get(texts)
        if layout is None:
            months = [_month_index(text, parsed) for text in texts]
            known = [m for m in months if m is not None]
            if len(known) < len(months):
                kept, first = list(range(len(texts))), None
            else:
                kept = [i for i, m in enumerate(known) if m <= last]
                first = min(known, default=None)
            periods = "\x1f".join(str(texts[i]) for i in kept)
            layout = layouts[texts] = (
                np.asarray(kept, dtype=np.int64),
                f"{first}\x1f{len(kept)}\x1f{periods}",
            )
        kept_index, described = layout
        amounts = np.fromiter(leaf.actuals.values(), dtype=float, count=len(texts))
        usable = bool(np.all(np.abs(amounts) <= MAX_SERIES_MAGNITUDE))
        plan = leaf.budget_monthly
        digest.update(
            f"\x1e{leaf.org_unit}\x1f{leaf.kind}\x1f{leaf.name}\x1f{usable}"
            f"\x1f{-1 if plan is None else len(plan)}\x1f{described}".encode()
        )
        digest.update(amounts[kept_index].tobytes())
        if plan is not None:
            digest.update(np.asarray(plan, dtype=float).tobytes())
    return digest.hexdigest()


def _copy(forecast: OrganisationForecast) -> OrganisationForecast:
    """A kept forecast is handed out with lists of its own (its nodes are immutable)."""
    return OrganisationForecast(
        forecast.year, forecast.as_of_month, list(forecast.nodes), list(forecast.failed)
    )


def clear_caches() -> None:
    """Forget everything kept between runs (``forecasts.cache``): the next run is a cold one."""
    from forecasts.cache import clear_all

    clear_all()


def forecast_organisation(
    leaves: Sequence[LeafSeries],
    domain: DomainConfig,
    year: int,
    as_of_month: int,
    model: str = "auto",
) -> OrganisationForecast:
    """Forecast every leaf for ``year`` as of ``as_of_month`` and roll them up the org tree."""
    if not 1 <= as_of_month <= MONTHS:
        raise ValueError(f"as_of_month must be 1..12, got {as_of_month}")
    key = _inputs_key(leaves, domain, year, as_of_month, model)
    kept = _result_cache.get(key)
    if kept is None:
        kept = _forecast_organisation(leaves, domain, year, as_of_month, model)
        _result_cache.put(key, kept)
    return _copy(kept)


def warm_organisation(
    leaves: Sequence[LeafSeries],
    domain: DomainConfig,
    year: int,
    as_of_month: int,
    model: str = "auto",
) -> None:
    """Fill the caches a forecast as of ``as_of_month`` reads from history (the origin-year
    tables, the fitted correction: ``forecasts.cache``) from ``leaves`` as they stand, typically
    before that month has a posting. Those depend only on the years before ``year``, so the
    later forecast, with the month's postings, finds them; it is computed exactly as without
    this (the caches are keyed by what they were computed from). The forecast made here is not
    kept: the postings still to come will change it. Under ``forecasts.cache.abortable`` it
    stops with ``Aborted`` when asked to (keeping what was complete)."""
    if not 1 <= as_of_month <= MONTHS:
        raise ValueError(f"as_of_month must be 1..12, got {as_of_month}")
    check_abort()
    _forecast_organisation(leaves, domain, year, as_of_month, model)


def _forecast_organisation(
    leaves: Sequence[LeafSeries],
    domain: DomainConfig,
    year: int,
    as_of_month: int,
    model: str,
) -> OrganisationForecast:
    org = domain.org
    failed: list[FailedSeries] = []
    usable = []
    for leaf in leaves:
        if _forecastable(leaf):
            usable.append(leaf)
        else:
            reason = f"values not finite or beyond ±{MAX_SERIES_MAGNITUDE:.0e}"
            failed.append(FailedSeries(leaf.org_unit, leaf.kind, leaf.name, reason))
    groups: dict[tuple[str, SeriesKind, str], list[int]] = {}
    members: list[_Member] = []
    for kind in ("cost", "measure"):
        of_kind = [leaf for leaf in usable if leaf.kind == kind]
        pairs = _forecast_isolating(of_kind, domain, year, as_of_month, model, failed)
        done = [leaf for leaf, _ in pairs]
        forecasts = [fc for _, fc in pairs]
        for leaf, member in zip(done, _members(done, forecasts, year, as_of_month), strict=True):
            row = len(members)
            members.append(member)
            for node_id in org.path(leaf.org_unit):
                groups.setdefault((node_id, kind, leaf.name), []).append(row)
                if kind == "cost":
                    groups.setdefault((node_id, kind, TOTAL), []).append(row)
    columns = _Members(members, as_of_month)
    nodes = [
        columns.node(org, node_id, kind, name, year, as_of_month, rows)
        for (node_id, kind, name), rows in sorted(groups.items())
    ]
    finite = []
    for node in _with_volume_split(nodes, domain):
        if _node_ok(node):
            finite.append(node)
        else:
            reason = "non-finite roll-up"
            failed.append(FailedSeries(node.org_unit, node.kind, node.category, reason))
    return OrganisationForecast(year, as_of_month, finite, failed)


def _with_volume_split(nodes: list[NodeForecast], domain: DomainConfig) -> list[NodeForecast]:
    """Enköping's split of budget − forecast into volume and price/productivity effects."""
    from dataclasses import replace

    by_key = {(n.org_unit, n.kind, n.category): n for n in nodes}
    out = []
    for node in nodes:
        category = domain.categories.get(node.category) if node.kind == "cost" else None
        measure = category.volume_measure if category is not None else None
        volume = by_key.get((node.org_unit, "measure", measure)) if measure else None
        cost_budget = node.budget_full_year
        plan = volume.budget_full_year if volume is not None else None
        if volume is None or cost_budget is None or not plan:
            out.append(node)
            continue
        split = split_deviation(node.full_year, volume.full_year, cost_budget, plan)
        out.append(
            replace(node, volume_effect=split.volume_effect, price_effect=split.price_effect)
        )
    return out
