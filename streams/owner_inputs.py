"""The live forecaster's inputs per owner (nämnd or ``omappad``), and what a change makes stale.

Pure state logic, no Kafka. :class:`OwnerIndex` splits the worker's state items by the owner of
their cost centre (``OrgTree.owner_of``), remembering each key's owner and partition so that a
tick parses only keys it has not seen. :class:`ForecastCache` keeps one owner's forecasts with
the items they were computed from; :meth:`ForecastCache.update` compares the new items with those
(by identity first: :class:`streams.aggregation.ActiveState` replaces a value's dict when it
changes, so an unchanged owner costs one pointer comparison per key) and drops only the
forecasts the change can alter.

Which forecasts a change alters (``forecasts.live``/``forecasts.series``): the forecast of
``year`` as of month ``m`` reads the postings of the months up to ``m`` (``build_panel`` ignores
later entries), the budgets of ``year``, and which series exist in the years up to ``year`` (a
series is a leaf of the panel, even one whose first entry lies after ``m``). So

* a changed posting of month ``p`` makes the forecasts as of ``p`` or later stale;
* a posting that starts a series (a cost centre × category or measure not seen in that year or
  before), or carries an amount the forecast would leave out (not finite, beyond
  ``MAX_SERIES_MAGNITUDE``), makes every forecast of its year and later stale;
* a changed budget of year ``y`` makes the forecasts of ``y`` stale;
* a close changes no forecast (it moves the evaluation target and makes snapshots due).

The forecast as of the month a close is about to close is therefore still in the cache when
the close arrives, unless a posting for that month or an earlier one came in between.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.hierarchy import OrgTree
from forecasts.live import MAX_SERIES_MAGNITUDE, OrganisationForecast
from streams.aggregation import StateValue, parse_key

SeriesId = tuple[str, str, str]  # (org_unit, "cost" | "volume", category or measure)


@dataclass(frozen=True, order=True)
class ForecastRequest:
    year: int
    as_of_month: int

    @property
    def period(self) -> str:
        return f"{self.year:04d}-{self.as_of_month:02d}"

    @classmethod
    def of(cls, period: str) -> ForecastRequest:
        return cls(int(period[:4]), int(period[5:7]))


class OwnerIndex:
    """state key → (owner, partition), computed once per key."""

    def __init__(self, org: OrgTree) -> None:
        self.org = org
        self._of_key: dict[str, tuple[str, int]] = {}

    def owner_and_partition(self, key: str) -> tuple[str, int]:
        known = self._of_key.get(key)
        if known is None:
            parsed = parse_key(key)
            known = self._of_key[key] = (self.org.owner_of(parsed.org_unit), parsed.partition)
        return known

    def group(
        self, items: Iterable[tuple[str, StateValue]]
    ) -> tuple[dict[str, dict[str, StateValue]], dict[str, set[int]]]:
        """owner → its items; owner → the partitions its items are in."""
        groups: dict[str, dict[str, StateValue]] = {}
        partitions: dict[str, set[int]] = {}
        for key, value in items:
            owner, partition = self.owner_and_partition(key)
            groups.setdefault(owner, {})[key] = value
            partitions.setdefault(owner, set()).add(partition)
        return groups, partitions

    def forget(self) -> None:
        """After a revocation: keys of partitions gone need not be remembered."""
        self._of_key.clear()


def _bad_amount(value: Mapping[str, Any] | None) -> bool:
    if not value:
        return False
    for section in ("cost", "volume"):
        for amount in value.get(section, {}).values():
            number = float(amount)
            if not math.isfinite(number) or abs(number) > MAX_SERIES_MAGNITUDE:
                return True
    return False


@dataclass
class Staleness:
    """Which forecasts a change of an owner's items makes stale (see the module doc)."""

    changed: bool = False  # any key changed, closes included
    from_period: ForecastRequest | None = None  # forecasts as of this month or later
    from_year: int | None = None  # every forecast of this year or later
    budget_years: set[int] = field(default_factory=set)  # every forecast of these years

    def covers(self, request: ForecastRequest) -> bool:
        return (
            (self.from_period is not None and request >= self.from_period)
            or (self.from_year is not None and request.year >= self.from_year)
            or request.year in self.budget_years
        )

    def _month(self, request: ForecastRequest) -> None:
        if self.from_period is None or request < self.from_period:
            self.from_period = request

    def _year(self, year: int) -> None:
        if self.from_year is None or year < self.from_year:
            self.from_year = year


@dataclass
class ForecastCache:
    """One owner's forecasts and the items they were computed from."""

    inputs: dict[str, StateValue] = field(default_factory=dict)
    forecasts: dict[ForecastRequest, OrganisationForecast] = field(default_factory=dict)
    # series → the first year it has a posting in (what makes it a leaf of that year's panel)
    series_from: dict[SeriesId, int] = field(default_factory=dict)

    def update(self, items: dict[str, StateValue]) -> Staleness:
        """Take ``items`` as the owner's inputs; drop the forecasts their change makes stale."""
        stale = Staleness()
        old = self.inputs
        changed = [k for k, v in items.items() if old.get(k) is not v and old.get(k) != v]
        removed = [k for k in old if k not in items]
        if not changed and not removed:
            return stale
        stale.changed = True
        for key in changed + removed:
            parsed = parse_key(key)
            if parsed.kind == "closed":
                continue
            if parsed.kind == "budget" and parsed.year is not None:
                stale.budget_years.add(parsed.year)
                continue
            if parsed.year is None or parsed.month is None:
                continue
            new, before = items.get(key), old.get(key)
            stale._month(ForecastRequest(parsed.year, parsed.month))
            if new is None or _bad_amount(new) or _bad_amount(before):
                stale._year(parsed.year)  # a series may appear, vanish or be left out
            for section in ("cost", "volume"):
                for name in (new or {}).get(section, {}):
                    series = (parsed.org_unit, section, name)
                    first = self.series_from.get(series)
                    if first is None or parsed.year < first:
                        stale._year(parsed.year)  # a new leaf in this year's panel and later
                        self.series_from[series] = parsed.year
        self.inputs = items
        self.forecasts = {r: f for r, f in self.forecasts.items() if not stale.covers(r)}
        return stale
