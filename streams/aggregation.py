"""Pure state logic of the stream worker: table keys, applying events, and the metric views.

No Kafka here. Every event is processed on its *home partition* (``streams.ownership``: the
partition the Kafka default partitioner picks for the key of the nämnd that owns its
``org_unit``, or for the ``org_unit`` itself under the legacy ``cost_centre`` scheme); an event
that arrives elsewhere is forwarded there first, so all events of a nämnd, and every re-sent copy
of one, meet in one place whatever the producer did with keys.
The worker keeps ONE changelog-backed table; every key starts with that partition
(``p{partition}|...``) so that a key is only ever written from its own partition:

* ``p{p}|{org_unit}|{YYYY-MM}``      → ``{"ids": [...], "cost": {category: sek},
  "volume": {measure: value}}``
* ``p{p}|{org_unit}|budget|{YYYY}``  → ``{"ids": [...], "budget": {name: {"kind", "version",
  "annual", "monthly"}}}``
* ``p{p}|{org_unit}|closed``         → ``{"ids": [...], "closed": ["YYYY-MM", ...],
  "close_count": {"YYYY-MM": n}}`` (a period closed again counts again)

The de-duplication ids live in the same value as the aggregates they changed, so one table write
records both: replaying events after a crash (changelog written, offset not yet committed) finds
their ids and changes nothing. That is the exactly-once-by-idempotence argument.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from core.domain import DomainConfig
from core.hierarchy import OrgTree
from forecasts.live import LeafSeries, SeriesKind

# Re-exported for the callers of old; the home is decided in streams.ownership.
from streams.ownership import home_partition as home_partition

Outcome = Literal["accepted", "duplicate", "failed"]
StateValue = dict[str, Any]

BUDGET_SEGMENT = "budget"
CLOSED_SEGMENT = "closed"


def _event_type(event: Any) -> str:
    return str(event.type)


def _period(event: Any) -> str:
    """``YYYY-MM`` whatever the record type uses (str or date-like)."""
    period = event.period
    if isinstance(period, str):
        return period[:7]
    return f"{period.year:04d}-{period.month:02d}"


def state_key(partition: int, event: Any) -> str:
    """The table key an event updates; it includes the source partition (see module doc)."""
    kind = _event_type(event)
    prefix = f"p{partition}|{event.org_unit}"
    if kind in ("cost", "volume"):
        return f"{prefix}|{_period(event)}"
    if kind == "budget":
        return f"{prefix}|{BUDGET_SEGMENT}|{int(event.year):04d}"
    if kind == "period_close":
        return f"{prefix}|{CLOSED_SEGMENT}"
    raise ValueError(f"unknown event type {kind!r}")


@dataclass(frozen=True)
class ParsedKey:
    partition: int
    org_unit: str
    kind: Literal["month", "budget", "closed"]
    year: int | None = None
    month: int | None = None


def parse_key(key: str) -> ParsedKey:
    head, _, rest = key.partition("|")
    partition = int(head[1:])
    if rest.endswith(f"|{CLOSED_SEGMENT}"):
        return ParsedKey(partition, rest[: -len(CLOSED_SEGMENT) - 1], "closed")
    unit, _, last = rest.rpartition("|")
    if unit.endswith(f"|{BUDGET_SEGMENT}"):
        return ParsedKey(partition, unit[: -len(BUDGET_SEGMENT) - 1], "budget", int(last))
    year, _, month = last.partition("-")
    return ParsedKey(partition, unit, "month", int(year), int(month))


def closed_periods(items: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, set[str]]:
    """org_unit → the periods (``YYYY-MM``) a ``period_close`` event closed for it."""
    out: dict[str, set[str]] = {}
    for key, value in items:
        if key.endswith(f"|{CLOSED_SEGMENT}"):
            out.setdefault(parse_key(key).org_unit, set()).update(value.get("closed", []))
    return out


def close_counts(items: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, int]:
    """period → how many ``period_close`` events closed it (any org_unit)."""
    out: dict[str, int] = {}
    for key, value in items:
        if key.endswith(f"|{CLOSED_SEGMENT}"):
            for period in value.get("closed", []):
                count = int(value.get("close_count", {}).get(period, 1))
                out[period] = out.get(period, 0) + count
    return out


def is_closed(period: str, path: Sequence[str], closed: Mapping[str, set[str]]) -> bool:
    """Closed for a unit when the unit or any ancestor in ``path`` (e.g. the nämnd) closed it
    or a later month: the ledger closes months in order."""
    return any(period <= max(closed[node]) for node in path if closed.get(node))


def budget_monthly(event: Any, domain: DomainConfig) -> list[float]:
    """The event's own monthly split, else the category's profile, else flat (measures)."""
    monthly = getattr(event, "monthly", None)
    if monthly:
        return [float(v) for v in monthly]
    annual = float(event.annual)
    category = getattr(event, "category", None)
    if category is not None and category in domain.categories:
        return domain.periodise(category, annual)
    months = [annual / 12.0] * 12
    months[-1] = annual - sum(months[:-1])
    return months


def total(values: Iterable[float]) -> float:
    """The exact sum (``math.fsum``), but never an exception: a sum that overflows is ±inf (or
    nan), as plain float addition gives it, so a scrape of ``/metrics`` cannot fail on it (the
    state may hold such values from before the bounds, or recovered from an old changelog)."""
    values = list(values)
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):  # "intermediate overflow", "-inf + inf in fsum"
        return float(sum(values))


class NonFiniteSum(ValueError):
    """Applying the event would make a sum infinite: the event is dead-lettered instead."""


def _add(sums: dict[str, float], name: str, amount: float) -> float:
    new = sums.get(name, 0.0) + amount
    if not math.isfinite(new):
        raise NonFiniteSum("the month's sum would not be a finite number")
    return new


def _apply_one(value: StateValue, event: Any, domain: DomainConfig) -> None:
    """Mutate ``value``; everything that can raise is computed before the first mutation."""
    kind = _event_type(event)
    if kind == "cost":
        category, amount = str(event.category), float(event.amount_sek)
        new = _add(value.get("cost", {}), category, amount)
        value.setdefault("cost", {})[category] = new
    elif kind == "volume":
        measure, amount = str(event.measure), float(event.value)
        new = _add(value.get("volume", {}), measure, amount)
        value.setdefault("volume", {})[measure] = new
    elif kind == "budget":
        budget_category = getattr(event, "category", None)
        name = str(budget_category if budget_category is not None else event.measure)
        line = {
            "kind": "category" if budget_category is not None else "measure",
            "version": getattr(event, "version", None),
            "annual": float(event.annual),
            "monthly": budget_monthly(event, domain),
        }
        # A later budget for the same (org_unit, year, category) replaces the earlier one: a
        # revised budget is a new version of the whole line, not an addition to it.
        value.setdefault("budget", {})[name] = line
    elif kind == "period_close":
        period = _period(event)
        closed = value.setdefault("closed", [])
        if period not in closed:
            closed.append(period)
            closed.sort()
        # Closing a period again is a new close (the snapshot gets a new version).
        counts = value.setdefault("close_count", {})
        counts[period] = counts.get(period, 0) + 1
    else:
        raise ValueError(f"unknown event type {kind!r}")


@dataclass
class ApplyResult:
    value: StateValue
    outcomes: list[Outcome]
    errors: list[str | None]
    changed: bool


def apply_events(
    current: Mapping[str, Any] | None, events: Sequence[Any], domain: DomainConfig
) -> ApplyResult:
    """Apply events (all for the same state key) in order; an id already seen is a duplicate.

    A correction is an ordinary posting (it carries its own id and a signed amount), so it simply
    adds. An event whose application raises is reported as ``failed`` and leaves the value as it
    was, so one bad event cannot poison the others.
    """
    value: StateValue = _copy(current) if current else {"ids": []}
    seen = set(value["ids"])
    outcomes: list[Outcome] = []
    errors: list[str | None] = []
    changed = False
    for event in events:
        event_id = str(event.event_id)
        if event_id in seen:
            outcomes.append("duplicate")
            errors.append(None)
            continue
        try:
            _apply_one(value, event, domain)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            outcomes.append("failed")
            # Our own reason names no value; another exception's text might, so only its type.
            reason = str(err) if isinstance(err, NonFiniteSum) else type(err).__name__
            errors.append(f"processing failed: {reason}")
            continue
        value["ids"].append(event_id)
        seen.add(event_id)
        outcomes.append("accepted")
        errors.append(None)
        changed = True
    return ApplyResult(value, outcomes, errors, changed)


def _copy(value: Mapping[str, Any]) -> StateValue:
    out: StateValue = {}
    for k, v in value.items():
        if isinstance(v, dict):
            out[k] = {ik: (dict(iv) if isinstance(iv, dict) else iv) for ik, iv in v.items()}
        elif isinstance(v, list):
            out[k] = list(v)
        else:
            out[k] = v
    return out


LabelKey = tuple[str, str, int]  # (node, category_or_measure, year)


@dataclass
class Snapshot:
    """Metric values for the active partitions, rolled up over the org tree."""

    actual_ytd: dict[LabelKey, float] = field(default_factory=dict)
    budget_full_year: dict[LabelKey, float] = field(default_factory=dict)
    volume_ytd: dict[LabelKey, float] = field(default_factory=dict)
    volume_budget_full_year: dict[LabelKey, float] = field(default_factory=dict)
    last_month: dict[tuple[str, int], int] = field(default_factory=dict)
    last_closed: dict[str, int] = field(default_factory=dict)
    unmapped_units: set[str] = field(default_factory=set)


LeafId = tuple[int, str, int | None]  # (partition, org_unit, year); year None for "closed"


@dataclass
class LeafTotals:
    """One cost centre's sums for one year in one partition, before rolling up."""

    actual: dict[str, float] = field(default_factory=dict)
    volume: dict[str, float] = field(default_factory=dict)
    budget: dict[str, float] = field(default_factory=dict)
    volume_budget: dict[str, float] = field(default_factory=dict)
    last_month: int = 0
    last_closed: int = 0


class ActiveState:
    """What this worker knows: the table values of its active partitions, without the ids.

    Updated after each batch and rebuilt from the table on assignment; the metrics are computed
    from it at scrape time, so after a restart or rebalance they come from recovered state.
    Per (partition, org_unit, year) sums are cached and recomputed only when one of their keys
    changed, so a scrape during heavy ingest costs a roll-up of the cached sums, not a full scan.
    """

    def __init__(self) -> None:
        self._partitions: dict[int, dict[str, StateValue]] = {}
        self._keys_by_leaf: dict[LeafId, set[str]] = {}
        self._leaf_totals: dict[LeafId, LeafTotals] = {}
        self._dirty: set[LeafId] = set()
        self.version = 0

    @property
    def partitions(self) -> set[int]:
        return set(self._partitions)

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        parsed = parse_key(key)
        stripped = {k: v for k, v in value.items() if k != "ids"}
        self._partitions.setdefault(parsed.partition, {})[key] = stripped
        leaf = (parsed.partition, parsed.org_unit, parsed.year)
        self._keys_by_leaf.setdefault(leaf, set()).add(key)
        self._dirty.add(leaf)
        self.version += 1

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        dropped = set(partitions)
        for partition in dropped:
            self._partitions.pop(partition, None)
        for index in (self._keys_by_leaf, self._leaf_totals):
            for leaf in [leaf for leaf in index if leaf[0] in dropped]:
                del index[leaf]
        self._dirty = {leaf for leaf in self._dirty if leaf[0] not in dropped}
        self.version += 1

    def rebuild(self, items: Iterable[tuple[str, Mapping[str, Any]]], active: set[int]) -> None:
        self._partitions = {p: {} for p in active}
        self._keys_by_leaf.clear()
        self._leaf_totals.clear()
        self._dirty.clear()
        for key, value in items:
            if value is not None and parse_key(key).partition in active:
                self.put(key, value)
        self.version += 1

    def items(self) -> Iterator[tuple[str, StateValue]]:
        """Every (table key, value without ids) of the active partitions."""
        for values in self._partitions.values():
            yield from values.items()

    def closed_periods(self) -> dict[str, set[str]]:
        closed_keys = (
            (key, self._partitions.get(leaf[0], {}).get(key, {}))
            for leaf, keys in self._keys_by_leaf.items()
            if leaf[2] is None
            for key in keys
        )
        return closed_periods(closed_keys)

    def _leaf(self, leaf: LeafId) -> LeafTotals:
        totals = LeafTotals()
        values = self._partitions.get(leaf[0], {})
        actual: dict[str, list[float]] = defaultdict(list)
        volume: dict[str, list[float]] = defaultdict(list)
        for key in self._keys_by_leaf.get(leaf, ()):
            value = values.get(key)
            if value is None:
                continue
            parsed = parse_key(key)
            if parsed.kind == "month":
                for category, amount in value.get("cost", {}).items():
                    actual[category].append(amount)
                for measure, amount in value.get("volume", {}).items():
                    volume[measure].append(amount)
                if value.get("cost") and parsed.month is not None:
                    totals.last_month = max(totals.last_month, parsed.month)
            elif parsed.kind == "budget":
                for name, line in value.get("budget", {}).items():
                    target = (
                        totals.budget if line.get("kind") == "category" else totals.volume_budget
                    )
                    target[name] = float(line["annual"])
            else:
                closed = value.get("closed", [])
                if closed:
                    totals.last_closed = int(closed[-1][:4]) * 100 + int(closed[-1][5:7])
        totals.actual = {k: total(v) for k, v in actual.items()}
        totals.volume = {k: total(v) for k, v in volume.items()}
        return totals

    def snapshot(self, org: OrgTree) -> Snapshot:
        for leaf in self._dirty:
            if leaf in self._keys_by_leaf:
                self._leaf_totals[leaf] = self._leaf(leaf)
        self._dirty.clear()
        actual: dict[LabelKey, list[float]] = defaultdict(list)
        budget: dict[LabelKey, list[float]] = defaultdict(list)
        volume: dict[LabelKey, list[float]] = defaultdict(list)
        volume_budget: dict[LabelKey, list[float]] = defaultdict(list)
        snap = Snapshot()
        paths: dict[str, list[str]] = {}
        for (_, unit, year), totals in self._leaf_totals.items():
            path = paths.get(unit)
            if path is None:
                path = paths[unit] = org.path(unit)
                if not org.is_known(unit):
                    snap.unmapped_units.add(unit)
            if year is None:
                if totals.last_closed:
                    snap.last_closed[unit] = max(snap.last_closed.get(unit, 0), totals.last_closed)
                continue
            for source, target in (
                (totals.actual, actual),
                (totals.volume, volume),
                (totals.budget, budget),
                (totals.volume_budget, volume_budget),
            ):
                for name, amount in source.items():
                    for node in path:
                        target[(node, name, year)].append(amount)
            if totals.last_month:
                for node in path:
                    previous = snap.last_month.get((node, year), 0)
                    snap.last_month[(node, year)] = max(previous, totals.last_month)
        snap.actual_ytd = {k: total(v) for k, v in actual.items()}
        snap.budget_full_year = {k: total(v) for k, v in budget.items()}
        snap.volume_ytd = {k: total(v) for k, v in volume.items()}
        snap.volume_budget_full_year = {k: total(v) for k, v in volume_budget.items()}
        return snap


def leaf_series(
    items: Iterable[tuple[str, Mapping[str, Any]]], year: int
) -> tuple[list[LeafSeries], int]:
    """The cost and measure series of every cost centre from table values, for ``year``.

    Returns the leaves (all years' months as history; the year's budget as the plan) and the
    as-of month: the year's latest month with a cost booked anywhere (0 if none).
    """
    actuals: dict[tuple[str, SeriesKind, str], dict[str, float]] = defaultdict(dict)
    plans: dict[tuple[str, SeriesKind, str], list[float]] = {}
    as_of = 0
    for key, value in items:
        parsed = parse_key(key)
        if parsed.kind == "month" and parsed.year is not None and parsed.year <= year:
            period = f"{parsed.year:04d}-{parsed.month:02d}"
            for kind, section in (("cost", "cost"), ("measure", "volume")):
                for name, amount in value.get(section, {}).items():
                    series = actuals[(parsed.org_unit, kind, name)]  # type: ignore[index]
                    series[period] = series.get(period, 0.0) + float(amount)
            if parsed.year == year and value.get("cost") and parsed.month:
                as_of = max(as_of, parsed.month)
        elif parsed.kind == "budget" and parsed.year == year:
            for name, line in value.get("budget", {}).items():
                line_kind: SeriesKind = "cost" if line.get("kind") == "category" else "measure"
                plans[(parsed.org_unit, line_kind, name)] = [float(v) for v in line["monthly"]]
    keys = sorted(set(actuals) | set(plans))
    leaves = [
        LeafSeries(
            unit, kind, name, actuals.get((unit, kind, name), {}), plans.get((unit, kind, name))
        )
        for unit, kind, name in keys
    ]
    return leaves, as_of
