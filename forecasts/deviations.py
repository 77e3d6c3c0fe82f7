"""Deviation rules: from an organisation forecast to alert state changes, with Swedish messages.

Pure: :func:`evaluate` reads the current :class:`~forecasts.live.OrganisationForecast` (and the
one at the last monthly close), decides per rule and series whether an alert fires, changes
severity or resolves, updates an :class:`AlertBook` in place and returns only the changes as
``alert.v1`` events. The rules themselves are pydantic models (:class:`RuleSet`) loaded from
``config/rules.yaml`` by ``services.config.rules``.

Every rule measures an *excess* over a reference (a budget, a plan, an interval's upper bound, the
previous forecast; for sick leave the share itself) in an absolute unit (``sek`` or ``units``) and
in per cent of the reference (``pct``). A severity tier is met when the excess is positive and
reaches each of its limits (``match: all``) or one of them (``match: any``). Hysteresis keeps
alerts from flapping: a tier that fires at its limits is held until the excess falls below the
limits × (1 − hysteresis); an excess between the two keeps the current state. A firing alert
escalates as soon as a higher tier is met and steps down only when its own tier is no longer held.

While an alert fires it follows the money (docs/alerting.md, "Lifecycle"): an excess that grew by
at least the rule's *step* since this alert's previous event is a ``worsened`` event, one that fell
by a step (or a step down a tier) is ``improved``; a higher tier is a ``firing`` event with the
higher severity. An alert resolves only when the measured quantity itself is back within its
limits (never because a reference band widened), or when the year is closed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contract.output_records import SEVERITIES, AlertEvent, AlertStatus, Severity
from core.domain import DomainConfig
from core.swedish import (
    Money,
    date_sv,
    format_number_sv,
    format_pct,
    format_units,
    month_sv,
    ytd_sv,
)
from forecasts.live import TOTAL, NodeForecast, OrganisationForecast

Level = Literal["namnd", "forvaltning", "avdelning", "enhet"]
Match = Literal["all", "any"]

# --- Swedish text ------------------------------------------------------------------------------


def _lower_first(text: str) -> str:
    """``Vårddygn HVB`` → ``vårddygn HVB``; an acronym (``LSS …``) keeps its capitals."""
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- Severity tiers and hysteresis --------------------------------------------------------------


def severity_rank(severity: Severity) -> int:
    return SEVERITIES.index(severity)


def highest(severities: Iterable[Severity]) -> Severity | None:
    ranked = sorted(severities, key=severity_rank)
    return ranked[-1] if ranked else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Tier(_Strict):
    severity: Severity

    def limits(self) -> dict[str, float]:
        """The limits this tier sets, by excess key (``sek``, ``units``, ``pct``)."""
        return {
            name: value
            for name, value in self.model_dump().items()
            if name != "severity" and value is not None
        }

    @model_validator(mode="after")
    def _has_a_limit(self) -> _Tier:
        if not self.limits():
            fields = " or ".join(f for f in type(self).model_fields if f != "severity")
            raise ValueError(f"a tier needs {fields}")
        return self


class CostTier(_Tier):
    """Excess in SEK and/or in per cent of the reference."""

    sek: float | None = Field(default=None, ge=0)
    pct: float | None = Field(default=None, ge=0)


class VolumeTier(_Tier):
    """Excess in the measure's unit (days, hours) and/or in per cent of the plan."""

    units: float | None = Field(default=None, ge=0)
    pct: float | None = Field(default=None, ge=0)


class ShareTier(_Tier):
    """A share in per cent (sick-leave hours of scheduled hours)."""

    pct: float = Field(gt=0, le=100)


class AmountTier(_Tier):
    """An amount in SEK (overtime booked after a stop)."""

    sek: float = Field(ge=0)


class Step(_Strict):
    """How much an excess must move while an alert fires to be news: ``pct`` of the series'
    full-year budget (or plan), and at least ``min`` (in the rule's unit: SEK, the measure's
    unit, percentage points), per level or one number for all levels."""

    pct: float = Field(default=1.0, ge=0)
    min: float | dict[Level, float] = 0.0

    def size(self, reference: float, level: str) -> float:
        floor = self.min if isinstance(self.min, int | float) else self.min.get(level, 0.0)  # type: ignore[call-overload]
        return max(self.pct / 100 * abs(reference), float(floor))


# The default step of cost rules: 1 % of the node's budget, at least 0,5 mnkr for a nämnd (and a
# förvaltning), 250 tkr for an avdelning, 100 tkr for an enhet (rules.yaml: lifecycle.step).
DEFAULT_STEP = Step(
    pct=1.0, min={"namnd": 500_000, "forvaltning": 500_000, "avdelning": 250_000, "enhet": 100_000}
)


@dataclass(frozen=True)
class Grade:
    """Which tiers a reading meets: at the firing limits, and at the release limits."""

    entered: Severity | None
    held: frozenset[Severity]

    def at_least(self, severity: Severity) -> Grade:
        """Also met at ``severity`` (a flag such as a nämnd's minusprognos)."""
        entered = highest([severity] if self.entered is None else [severity, self.entered])
        return Grade(entered, self.held | {severity})

    def held_at(self, severity: Severity) -> Grade:
        """Keeps ``severity`` if the alert has it already, without entering it."""
        return Grade(self.entered, self.held | {severity})


def _tier_met(
    limits: Mapping[str, float], excess: Mapping[str, float], scale: float, match: Match
) -> bool:
    checks = [excess[key] > 0 and excess[key] >= limit * scale for key, limit in limits.items()]
    return all(checks) if match == "all" else any(checks)


def grade(
    tiers: Sequence[_Tier], excess: Mapping[str, float], hysteresis: float, match: Match
) -> Grade:
    entered = [t.severity for t in tiers if _tier_met(t.limits(), excess, 1.0, match)]
    held = [t.severity for t in tiers if _tier_met(t.limits(), excess, 1.0 - hysteresis, match)]
    return Grade(highest(entered), frozenset(held))


def next_severity(current: Severity | None, reading: Grade) -> Severity | None:
    """The severity after this reading (None = not firing), given the one the alert has now."""
    entered = reading.entered
    if entered is not None and (current is None or severity_rank(entered) > severity_rank(current)):
        return entered
    if current is None or current in reading.held:
        return current
    lower = [s for s in reading.held if severity_rank(s) < severity_rank(current)]
    return highest(lower)


def excess_of(amount: float, reference: float, key: str = "sek") -> dict[str, float]:
    """``amount − reference`` absolute and in per cent of |reference| (any excess over 0 is ∞ %)."""
    over = amount - reference
    if reference == 0:
        return {key: over, "pct": math.inf if over > 0 else 0.0}
    return {key: over, "pct": over / abs(reference) * 100}


# --- What a rule reads and reports ---------------------------------------------------------------


@dataclass(frozen=True)
class RuleContext:
    current: OrganisationForecast
    previous: OrganisationForecast | None
    domain: DomainConfig
    book: AlertBook | None = None

    @property
    def year_closed(self) -> bool:
        """As of December's close the figures are the year's outcome, not a forecast."""
        return self.current.as_of_month == 12

    @property
    def forecast_word(self) -> str:
        """``prognos``, or ``utfall`` once the year is closed."""
        return "utfall" if self.year_closed else "prognos"

    def node_budget(self, node: NodeForecast) -> float:
        """The node's full-year net budget (what "1 % of the node's budget" means), else the
        series' own budget."""
        total = self.current.get(node.org_unit, TOTAL)
        budget = total.budget_full_year if total is not None else None
        return budget if budget is not None else node.budget_full_year or 0.0

    def firing_state(self, alert_id: str) -> AlertState | None:
        """The alert's state if it fires now (firing, worsened or improved)."""
        state = self.book.get(alert_id) if self.book is not None else None
        return state if state is not None and state.status != "resolved" else None

    def nodes(self, kind: str, category: str, levels: Iterable[str]) -> list[NodeForecast]:
        wanted = set(levels)
        return [
            n
            for n in self.current.nodes
            if n.kind == kind and n.category == category and n.level in wanted
        ]

    def name(self, org_unit: str) -> str:
        node = self.domain.org.nodes.get(org_unit)
        return node.name if node is not None else org_unit

    def previous_node(self, node: NodeForecast) -> NodeForecast | None:
        """The same series in the previous forecast, when that was a forecast of the same year."""
        if self.previous is None or self.previous.year != node.year:
            return None
        return self.previous.get(node.org_unit, node.category)

    def subject(self, category: str) -> str:
        """What a series is called in a sentence: ``nettokostnad``, ``vårddygn HVB``, …"""
        if category == TOTAL:
            return "nettokostnad"
        named = self.domain.categories.get(category) or self.domain.measures.get(category)
        return _lower_first(named.name_sv) if named is not None else category


@dataclass(frozen=True)
class Reading:
    """One rule's view of one series now: the grade, the figures and the words for them.

    ``measured`` is the excess the lifecycle follows (positive = worse), in the rule's unit,
    rendered by ``render``; ``step_reference`` is what the rule's step is a per cent of (the
    series' full-year budget or plan), ``noun`` names the excess in a sentence
    ("underskottet"). ``title`` is the subject-ready line.
    """

    node: NodeForecast
    grade: Grade
    values: dict[str, float]
    figure: str  # the current figures, compared with what: "prognos … mot budget … (…)"
    detail: str = ""  # firing only: why it matters (volume/price split, the limit, …)
    measured: float = 0.0
    step_reference: float = 0.0
    noun: str = "överskridandet"
    render: Callable[[float, float], tuple[str, str]] | None = None
    title: str = ""


def _money_pair(previous: float, now: float) -> tuple[str, str]:
    """``(3,9, 14,5 mnkr)``: two amounts in one unit, the unit only on the second."""
    money = Money.for_amounts(previous, now)
    first = format_number_sv(previous / money.divisor, money.decimals)
    return first, money(now)


def _units_pair(unit: str) -> Callable[[float, float], tuple[str, str]]:
    def render(previous: float, now: float) -> tuple[str, str]:
        return format_number_sv(previous, 0), format_units(now, unit)

    return render


def _points_pair(previous: float, now: float) -> tuple[str, str]:
    return format_number_sv(previous, 1), format_pct(now)


def _over_under(amount: float, money: Money, what: str) -> str:
    """``22,7 mnkr över budget`` / ``1,2 mnkr under budget``."""
    return f"{money(abs(amount))} {'över' if amount > 0 else 'under'} {what}"


def _node_values(node: NodeForecast) -> dict[str, float]:
    """The documented figures of a cost series that exist: budget, actual_ytd, budget_ytd,
    forecast, low, high, volume/price effect and the interval's coverage so far."""
    values = {
        "actual_ytd": node.actual_ytd,
        "forecast": node.full_year,
        "low": node.low,
        "high": node.high,
    }
    if node.budget_monthly is not None:
        values["budget"] = node.budget_full_year or 0.0
        values["budget_ytd"] = node.budget_ytd or 0.0
    coverage = getattr(node, "interval_coverage", None)
    if isinstance(coverage, int | float) and math.isfinite(coverage):
        values["interval_coverage"] = float(coverage)
    return values | _split_values(node)


def _split_detail(node: NodeForecast, money: Money) -> str:
    if node.volume_effect is None or node.price_effect is None:
        return ""
    return (
        f" Volymeffekt {money(node.volume_effect, signed=True)},"
        f" pris/produktivitet {money(node.price_effect, signed=True)}."
    )


def _split_values(node: NodeForecast) -> dict[str, float]:
    if node.volume_effect is None or node.price_effect is None:
        return {}
    return {"volume_effect": node.volume_effect, "price_effect": node.price_effect}


def _versus(money: Money, excess: Mapping[str, float]) -> tuple[str, dict[str, float]]:
    """``(−3,3 mnkr, −36,3 %)``: reference − outcome (negative when over), and those values.

    The per cent is left out when the reference is 0 (it would be infinite).
    """
    values = {"deviation": -excess["sek"]}
    parts = [money(-excess["sek"], signed=True)]
    if math.isfinite(excess["pct"]):
        values["deviation_pct"] = -excess["pct"]
        parts.append(format_pct(-excess["pct"], signed=True))
    return f"({', '.join(parts)})", values


# --- Rules ---------------------------------------------------------------------------------------


class _Rule(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)  # Swedish, e.g. "Budgetavvikelse helår"
    enabled: bool = True
    levels: tuple[Level, ...] = Field(default=("enhet",), min_length=1)
    hysteresis: float = Field(default=0.2, ge=0, lt=1)
    match: Match = "all"
    step: Step | None = None  # None: the rule kind's default, else rules.yaml's lifecycle.step

    def default_step(self) -> Step | None:
        """The step of this kind when the rule sets none (None: the rule set's default)."""
        return None

    @field_validator("thresholds", check_fields=False)
    @classmethod
    def _rising_severities(cls, tiers: tuple[_Tier, ...]) -> tuple[_Tier, ...]:
        if not tiers:
            raise ValueError("at least one tier is needed")
        for i in range(1, len(tiers)):
            before, after = tiers[i - 1].severity, tiers[i].severity
            if severity_rank(after) <= severity_rank(before):
                raise ValueError(
                    f"severities must rise from tier to tier (info < warning < critical): "
                    f"tier {i} is {after!r} after {before!r}"
                )
        return tiers

    def references(self) -> Iterator[tuple[str, str, str]]:
        """(key, what, value) of every id this rule names: what is cost | measure | org_unit."""
        return iter(())

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        raise NotImplementedError

    def alert_id(self, node: NodeForecast) -> str:
        return f"{self.id}|{node.org_unit}|{node.category}|{node.year}"


class _CostRule(_Rule):
    """A rule on one cost category (or ``total``) of each node at the rule's levels."""

    category: str
    subject: str | None = None  # Swedish noun for messages; default from the category's name
    thresholds: tuple[CostTier, ...]

    def references(self) -> Iterator[tuple[str, str, str]]:
        yield "category", "cost", self.category

    def noun(self, ctx: RuleContext) -> str:
        return self.subject or ctx.subject(self.category)

    def _grade(self, excess: Mapping[str, float]) -> Grade:
        return grade(self.thresholds, excess, self.hysteresis, self.match)


class BudgetDeviationRule(_CostRule):
    """Full-year forecast against full-year budget; a nämnd's minusprognos is critical."""

    kind: Literal["budget_deviation"]
    category: str = TOTAL
    levels: tuple[Level, ...] = Field(default=("namnd", "avdelning", "enhet"), min_length=1)
    namnd_deficit_critical: bool = True
    # The minusprognos flag's own hysteresis: it enters at a deficit of this share of the
    # budget and holds until the nämnd is back in balance, so a forecast that wavers around
    # zero does not send critical mail every other month.
    namnd_deficit_min_pct: float = Field(default=0.25, ge=0)
    # Materiality early in the year: with fewer closed months than this, the flag needs a
    # deficit of namnd_deficit_early_pct of the budget (one month of actuals says little
    # about the year: the demo's 2023 flagged −0,4 % in January and ended in surplus).
    namnd_deficit_min_months: int = Field(default=2, ge=1, le=12)
    namnd_deficit_early_pct: float = Field(default=1.0, ge=0)

    def _flag_pct(self, as_of_month: int) -> float:
        if as_of_month < self.namnd_deficit_min_months:
            return max(self.namnd_deficit_min_pct, self.namnd_deficit_early_pct)
        return self.namnd_deficit_min_pct

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        word = ctx.forecast_word
        for node in ctx.nodes("cost", self.category, self.levels):
            budget = node.budget_full_year
            if budget is None:
                continue
            excess = excess_of(node.full_year, budget)
            grading = self._grade(excess)
            deficit_flag = self.namnd_deficit_critical and node.level == "namnd"
            detail = ""
            if deficit_flag and excess["sek"] > 0:
                if excess["pct"] >= self._flag_pct(node.as_of_month):
                    grading = grading.at_least("critical")
                else:
                    grading = grading.held_at("critical")
                detail = " Minusprognos för nämnden: en plan för ekonomi i balans behövs."
                if ctx.year_closed:
                    detail = " Nämnden gick med underskott."
            money = Money.for_amounts(node.full_year, budget)
            versus, deviation = _versus(money, excess)
            noun = self.noun(ctx)
            figure = (
                f"{word} {noun} {node.year} {money(node.full_year)} "
                f"mot budget {money(budget)} {versus}"
            )
            when = "" if ctx.year_closed else f" per {month_sv(node.as_of_month)}"
            title = (
                f"{word} {noun} {node.year} {money(node.full_year)}{when}, "
                f"{_over_under(excess['sek'], money, 'budget')}"
            )
            yield Reading(
                node,
                grading,
                _node_values(node) | {"forecast": node.full_year, "budget": budget} | deviation,
                figure,
                _split_detail(node, money) + detail,
                measured=excess["sek"],
                step_reference=budget,
                noun="underskottet" if self.category == TOTAL else "överskridandet",
                render=_money_pair,
                title=title,
            )


class StaffCostYtdRule(_CostRule):
    """A staffing cost (vikarier, övertid, sjuklön, hyrpersonal) booked so far this year
    against its budget periodised to date, per enhet and avdelning.

    One kind, one rule per category in rules.yaml. A category the domain config does not know
    (a municipality without hyrpersonal) has no series: the rule reads nothing and never fires.
    Without a budget line a series is skipped, or (``unbudgeted: zero``, hyrpersonal) compared
    with a budget of 0.
    """

    kind: Literal["staff_cost_ytd"]
    levels: tuple[Level, ...] = Field(default=("enhet", "avdelning"), min_length=1)
    unbudgeted: Literal["skip", "zero"] = "skip"

    def references(self) -> Iterator[tuple[str, str, str]]:
        yield "category", "optional_cost", self.category

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        if self.category not in ctx.domain.categories:
            return
        noun = self.noun(ctx)
        for node in ctx.nodes("cost", self.category, self.levels):
            if node.budget_monthly is None and self.unbudgeted == "skip":
                continue
            budget = node.budget_ytd or 0.0
            actual = node.actual_ytd
            excess = excess_of(actual, budget)
            money = Money.for_amounts(actual, budget)
            versus, deviation = _versus(money, excess)
            compared = (
                f"mot budget för perioden {money(budget)} {versus}" if budget else "utan budget"
            )
            figure = f"{noun} {ytd_sv(node.year, node.as_of_month)} {money(actual)} {compared}"
            over = _over_under(excess["sek"], money, "budget") if budget else "utan budget"
            title = (
                f"{noun} {money(actual)} t.o.m. {month_sv(node.as_of_month)} {node.year}, {over}"
            )
            values = _node_values(node) | {"actual_ytd": actual, "budget_ytd": budget} | deviation
            yield Reading(
                node,
                self._grade(excess),
                values,
                figure,
                measured=excess["sek"],
                step_reference=ctx.node_budget(node),
                noun="överskridandet",
                render=_money_pair,
                title=title,
            )


class OvertimeStop(_Strict):
    org_unit: str = Field(min_length=1)
    from_: date = Field(alias="from")  # the first day no overtime may be worked


def _month_start(year: int, month: int) -> date:
    """The first day of ``month`` of ``year``; month may be ≤ 0 (months of earlier years)."""
    index = year * 12 + month - 1
    return date(index // 12, index % 12 + 1, 1)


class OvertimeAfterStopRule(_Rule):
    """Overtime booked for work after an övertidsstopp (a stop covers the unit's descendants).

    Overtime is booked ``posting_lag_months`` after it is worked, so a booking month counts when
    the month it was worked starts on or after the stop date. A month the stop starts within is
    partly before the stop and is not counted (its overtime may be legitimate).
    """

    kind: Literal["overtime_after_stop"]
    category: str = "overtime"
    subject: str | None = None
    stops: tuple[OvertimeStop, ...] = ()
    thresholds: tuple[AmountTier, ...] = (AmountTier(severity="warning", sek=0),)

    @field_validator("stops")
    @classmethod
    def _one_stop_per_unit(cls, stops: tuple[OvertimeStop, ...]) -> tuple[OvertimeStop, ...]:
        seen: set[str] = set()
        for stop in stops:
            if stop.org_unit in seen:
                raise ValueError(f"org_unit {stop.org_unit!r} has more than one stop")
            seen.add(stop.org_unit)
        return stops

    def references(self) -> Iterator[tuple[str, str, str]]:
        yield "category", "cost", self.category
        for i, stop in enumerate(self.stops):
            yield f"stops[{i}].org_unit", "org_unit", stop.org_unit

    def stop_for(self, ctx: RuleContext, org_unit: str) -> date | None:
        """The stop of the unit itself or of its nearest ancestor that has one."""
        by_unit = {s.org_unit: s.from_ for s in self.stops}
        return next((by_unit[u] for u in ctx.domain.org.path(org_unit) if u in by_unit), None)

    def booked_after_stop(self, node: NodeForecast, stop: date, lag: int) -> dict[int, float]:
        """Booking month → amount, for the months whose work started on or after the stop."""
        return {
            month: amount
            for month, amount in enumerate(node.actual_monthly, start=1)
            if _month_start(node.year, month - lag) >= stop
        }

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        if not self.stops:
            return
        category = ctx.domain.categories.get(self.category)
        lag = category.posting_lag_months if category is not None else 0
        for node in ctx.nodes("cost", self.category, self.levels):
            stop = self.stop_for(ctx, node.org_unit)
            if stop is None:
                continue
            booked = self.booked_after_stop(node, stop, lag)
            amount = math.fsum(booked.values())
            excess = {"sek": amount}
            money = Money.for_amounts(amount)
            yield Reading(
                node,
                grade(self.thresholds, excess, self.hysteresis, self.match),
                {"after_stop": amount, "lag_months": float(lag), "actual_ytd": node.actual_ytd},
                self._figure(ctx, node, stop, booked, amount),
                self._lag_detail(lag),
                measured=amount,
                noun="övertiden efter stoppet",
                render=_money_pair,
                title=(
                    f"övertid {money(amount)} bokförd t.o.m. {month_sv(node.as_of_month)} "
                    f"{node.year} efter övertidsstoppet från {date_sv(stop)}"
                ),
            )

    def _figure(
        self,
        ctx: RuleContext,
        node: NodeForecast,
        stop: date,
        booked: dict[int, float],
        total: float,
    ) -> str:
        noun = self.subject or ctx.subject(self.category)
        since = f"för arbete efter övertidsstoppet från {date_sv(stop)}"
        months = [m for m, amount in booked.items() if amount > 0]
        if total <= 0 or not months:  # nothing, or bookings corrected away
            return f"ingen {noun} bokförd {since}"
        when = month_sv(months[0])
        if months[-1] != months[0]:
            when = f"{when}–{month_sv(months[-1])}"
        return f"{noun} {Money.for_amounts(total)(total)} bokförd {when} {node.year} {since}"

    @staticmethod
    def _lag_detail(lag: int) -> str:
        if lag == 0:
            return ""
        return (
            f" Övertid bokförs {lag} månad{'er' if lag > 1 else ''} efter arbetet;"
            " bokningar som avser arbete före stoppet räknas inte."
        )


class SubstitutesMonthRule(_CostRule):
    """The as-of month's cost against what the previous month's forecast expected for it.

    The limit is the higher of the upper bound of that forecast's 80 % interval (a summer peak
    the forecast expected stays inside it) and the month's periodised budget × (1 + tolerance)
    (a month within its seasonal budget is never "above expected"); without a forecast for this
    month, the budget limit alone.
    """

    kind: Literal["substitutes_month_above_expected"]
    category: str = "substitutes"
    levels: tuple[Level, ...] = Field(default=("enhet", "avdelning"), min_length=1)
    tolerance: float = Field(default=0.1, ge=0)
    # The previous forecast's upper bound counts as the limit only up to the month's budget ×
    # (1 + max_above_budget): once the model has learnt an overrun its bound is high, and an
    # overrun must not become "expected" (the budget stays part of the reference).
    max_above_budget: float = Field(default=0.25, ge=0)

    def expected(self, ctx: RuleContext, node: NodeForecast) -> tuple[float, float, float] | None:
        """(expected, low, high) from the previous month's forecast, if it forecast this month."""
        before = ctx.previous_node(node)
        if before is None or before.as_of_month != node.as_of_month - 1:
            return None
        return before.next_month()

    def budget_limit(self, node: NodeForecast) -> _MonthLimit | None:
        if node.budget_monthly is None:
            return None
        return _budget_limit(node.budget_monthly[node.as_of_month - 1], self.tolerance)

    def limit(self, ctx: RuleContext, node: NodeForecast) -> _MonthLimit | None:
        """The higher of the forecast's upper bound (capped at the month's budget ×
        (1 + max_above_budget)) and the month's budget with tolerance: a month within its
        (seasonal) budget is never "above expected", even when last month's forecast missed the
        summer peak, and a month far above its budget always is."""
        expected = self.expected(ctx, node)
        budget = self.budget_limit(node)
        if expected is None:
            return budget
        cap = None
        if node.budget_monthly is not None:
            cap = node.budget_monthly[node.as_of_month - 1] * (1 + self.max_above_budget)
        forecast = _forecast_limit(expected, node.as_of_month - 1, cap)
        return budget if budget is not None and budget.limit > forecast.limit else forecast

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        noun = self.noun(ctx)
        for node in ctx.nodes("cost", self.category, self.levels):
            limit = self.limit(ctx, node)
            if limit is None:
                continue
            actual = node.actual_monthly[-1]
            excess = excess_of(actual, limit.limit)
            grading = self._grade(excess)
            # A firing alert is held against the month's budget with tolerance (or, without a
            # budget, the limit frozen when it fired), never against a forecast band that has
            # widened since: it resolves when the month's cost itself is back within limits.
            firing = ctx.firing_state(self.alert_id(node))
            frozen = limit.limit
            if firing is not None:
                frozen = firing.values.get("frozen_limit", limit.limit)
                budget = self.budget_limit(node)
                hold = budget.limit if budget is not None else frozen
                grading = Grade(grading.entered, self._grade(excess_of(actual, hold)).held)
            money = Money.for_amounts(actual, limit.limit)
            excess_money = Money.for_amounts(excess["sek"])
            yield Reading(
                node,
                grading,
                _node_values(node)
                | {
                    "actual_month": actual,
                    "limit": limit.limit,
                    "excess": excess["sek"],
                    "frozen_limit": frozen,
                }
                | limit.values,
                f"{noun} {month_sv(node.as_of_month)} {node.year} {money(actual)} "
                f"{limit.describe(money)}",
                # The excess in its own unit: 40 tkr over a limit of 1,2 mnkr is not "0,0 mnkr".
                f" Det är {excess_money(excess['sek'])} över gränsen {money(limit.limit)}.",
                measured=excess["sek"],
                step_reference=node.budget_full_year or 0.0,
                noun="överskridandet",
                render=_money_pair,
                title=(
                    f"{noun} {month_sv(node.as_of_month)} {node.year} {money(actual)}, "
                    f"{_over_under(excess['sek'], excess_money, 'förväntat')}"
                ),
            )


@dataclass(frozen=True)
class _MonthLimit:
    """The most a month may cost before it is above expected, and how to say what it is."""

    limit: float
    values: dict[str, float]
    describe: Callable[[Money], str]


def _forecast_limit(
    expected: tuple[float, float, float], made_at_month: int, cap: float | None = None
) -> _MonthLimit:
    mid, low, high = expected
    limit = high if cap is None else min(high, cap)

    def describe(money: Money) -> str:
        return (
            f"mot förväntat {money(mid)} enligt prognosen per {month_sv(made_at_month)} "
            f"(intervall {money.span(low, high)})"
        )

    values = {"expected": mid, "month_low": low, "month_high": high}
    return _MonthLimit(limit, values, describe)


def _budget_limit(budget: float, tolerance: float) -> _MonthLimit:
    def describe(money: Money) -> str:
        pct = format_number_sv(tolerance * 100, 0)
        return f"mot budget för månaden {money(budget)} (+{pct} % tolerans)"

    return _MonthLimit(budget * (1 + tolerance), {"budget_month": budget}, describe)


class MeasureOverPlanRule(_Rule):
    """A volume measure so far this year against its plan to date (vårddygn, hemtjänsttimmar)."""

    kind: Literal["placement_days_over_plan", "home_care_hours_over_plan"]
    measures: tuple[str, ...] = Field(min_length=1)
    levels: tuple[Level, ...] = Field(default=("enhet", "avdelning"), min_length=1)
    thresholds: tuple[VolumeTier, ...]

    def references(self) -> Iterator[tuple[str, str, str]]:
        for i, measure in enumerate(self.measures):
            yield f"measures[{i}]", "measure", measure

    def default_step(self) -> Step:
        return Step(pct=1.0, min=0.0)  # 1 % of the year's plan, in the measure's unit

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        for measure in self.measures:
            unit = ctx.domain.measures[measure].unit if measure in ctx.domain.measures else ""
            for node in ctx.nodes("measure", measure, self.levels):
                plan = node.budget_ytd
                if plan is None:
                    continue
                actual = node.actual_ytd
                excess = excess_of(actual, plan, key="units")
                # Plan − utfall, the direction of budget − utfall: more hours than planned is
                # negative (one sign convention in every message, mail and report).
                versus = [format_units(-excess["units"], unit, signed=True)]
                if math.isfinite(excess["pct"]):
                    versus.append(format_pct(-excess["pct"], signed=True))
                subject = ctx.subject(measure)
                figure = (
                    f"{subject} {ytd_sv(node.year, node.as_of_month)} "
                    f"{format_units(actual, unit)} mot plan {format_units(plan, unit)} "
                    f"({', '.join(versus)})"
                )
                direction = "över" if excess["units"] > 0 else "under"
                title = (
                    f"{subject} {format_units(actual, unit)} t.o.m. "
                    f"{month_sv(node.as_of_month)} {node.year}, "
                    f"{format_units(abs(excess['units']), unit)} {direction} plan"
                )
                values = {
                    "actual_ytd": actual,
                    "plan_ytd": plan,
                    "plan": node.budget_full_year or 0.0,
                    "forecast": node.full_year,
                    "low": node.low,
                    "high": node.high,
                    "excess": excess["units"],
                }
                yield Reading(
                    node,
                    grade(self.thresholds, excess, self.hysteresis, self.match),
                    values
                    | ({"excess_pct": excess["pct"]} if math.isfinite(excess["pct"]) else {}),
                    figure,
                    measured=excess["units"],
                    step_reference=node.budget_full_year or 0.0,
                    noun="överskridandet mot plan",
                    render=_units_pair(unit),
                    title=title,
                )


class SickLeaveShareRule(_Rule):
    """Sick-leave hours as a share of scheduled hours, in the as-of month or so far this year."""

    kind: Literal["sick_leave_share"]
    sick_measure: str = "sick_leave_hours"
    scheduled_measure: str = "scheduled_hours"
    basis: Literal["month", "ytd"] = "ytd"
    hysteresis: float = Field(default=0.1, ge=0, lt=1)
    thresholds: tuple[ShareTier, ...]

    def references(self) -> Iterator[tuple[str, str, str]]:
        yield "sick_measure", "measure", self.sick_measure
        yield "scheduled_measure", "measure", self.scheduled_measure

    def default_step(self) -> Step:
        return Step(pct=0.0, min=1.0)  # one percentage point

    def _hours(self, node: NodeForecast) -> float:
        return node.actual_monthly[-1] if self.basis == "month" else node.actual_ytd

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        for node in ctx.nodes("measure", self.sick_measure, self.levels):
            scheduled_node = ctx.current.get(node.org_unit, self.scheduled_measure)
            if scheduled_node is None or self._hours(scheduled_node) <= 0:
                continue
            sick, scheduled = self._hours(node), self._hours(scheduled_node)
            share = sick / scheduled * 100
            when = (
                f"{month_sv(node.as_of_month)} {node.year}"
                if self.basis == "month"
                else ytd_sv(node.year, node.as_of_month)
            )
            figure = (
                f"sjukfrånvaro {when} {format_pct(share)} av schemalagd tid "
                f"({format_number_sv(sick, 0)} av {format_number_sv(scheduled, 0)} timmar)"
            )
            limit = format_pct(self.thresholds[0].pct)
            yield Reading(
                node,
                grade(self.thresholds, {"pct": share}, self.hysteresis, self.match),
                {"share_pct": share, "sick_hours": sick, "scheduled_hours": scheduled},
                figure,
                f" Larmgräns {limit}.",
                measured=share,
                noun="sjukfrånvaron",
                render=_points_pair,
                title=f"sjukfrånvaro {format_pct(share)} {when}, larmgräns {limit}",
            )


class ForecastDeteriorationRule(_CostRule):
    """The full-year forecast against the one at the last monthly close (same year)."""

    kind: Literal["forecast_deterioration"]
    category: str = TOTAL
    levels: tuple[Level, ...] = Field(default=("namnd", "avdelning"), min_length=1)

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        for node in ctx.nodes("cost", self.category, self.levels):
            before = ctx.previous_node(node)
            if before is None:
                continue
            excess = excess_of(node.full_year, before.full_year)
            money = Money.for_amounts(node.full_year, before.full_year)
            versus, deviation = _versus(money, excess)
            word = ctx.forecast_word
            figure = (
                f"{word} {self.noun(ctx)} {node.year} {money(node.full_year)} "
                f"mot {money(before.full_year)} i prognosen per "
                f"{month_sv(before.as_of_month)} {versus}"
            )
            values = _node_values(node) | {"previous_forecast": before.full_year}
            sign = "sämre" if excess["sek"] > 0 else "bättre"
            yield Reading(
                node,
                self._grade(excess),
                values | deviation,
                figure,
                measured=excess["sek"],
                step_reference=node.budget_full_year or before.full_year,
                noun="försämringen",
                render=_money_pair,
                title=(
                    f"{word} {self.noun(ctx)} {node.year} {money(node.full_year)}, "
                    f"{money(abs(excess['sek']))} {sign} än prognosen per "
                    f"{month_sv(before.as_of_month)}"
                ),
            )


Rule = Annotated[
    BudgetDeviationRule
    | StaffCostYtdRule
    | OvertimeAfterStopRule
    | SubstitutesMonthRule
    | MeasureOverPlanRule
    | SickLeaveShareRule
    | ForecastDeteriorationRule,
    Field(discriminator="kind"),
]
RULE_KINDS: tuple[str, ...] = tuple(
    kind
    for model in get_args(get_args(Rule)[0])
    for kind in get_args(model.model_fields["kind"].annotation)
)


class RuleDomainError(ValueError):
    """A rule names an id the domain config does not know (key e.g. ``rules[2].category``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


class Lifecycle(_Strict):
    """rules.yaml ``lifecycle``: the step a firing alert's excess must move to be news again."""

    step: Step = DEFAULT_STEP


class RuleSet(_Strict):
    lifecycle: Lifecycle = Lifecycle()
    rules: tuple[Rule, ...] = ()

    def step_of(self, rule: _Rule) -> Step:
        return rule.step or rule.default_step() or self.lifecycle.step

    def absent_categories(self, domain: DomainConfig) -> list[tuple[str, str]]:
        """(rule id, category) of staffing rules whose category this municipality does not
        have: they read nothing and never fire (worth a warning at start, not an error)."""
        return [
            (rule.id, value)
            for rule in self.rules
            for _, what, value in rule.references()
            if what == "optional_cost" and value not in domain.categories
        ]

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: tuple[_Rule, ...]) -> tuple[_Rule, ...]:
        first: dict[str, int] = {}
        for i, rule in enumerate(rules):
            if rule.id in first:
                raise ValueError(
                    f"rule id {rule.id!r} is used by rules[{first[rule.id]}] and rules[{i}]"
                )
            first[rule.id] = i
        return rules

    def active(self) -> list[_Rule]:
        return [rule for rule in self.rules if rule.enabled]

    def check_against(self, domain: DomainConfig) -> None:
        """Raise :class:`RuleDomainError` for the first category, measure or org unit not known."""
        for i, rule in enumerate(self.rules):
            for key, what, value in rule.references():
                problem = _unknown(domain, what, value)
                if problem:
                    raise RuleDomainError(f"rules[{i}].{key}", problem)


def _unknown(domain: DomainConfig, what: str, value: str) -> str | None:
    if what == "cost" and value != TOTAL and value not in domain.categories:
        known = ", ".join([TOTAL, *sorted(domain.categories)])
        return f"unknown category {value!r}; known: {known}"
    if what == "measure" and value not in domain.measures:
        return f"unknown measure {value!r}; known: {', '.join(sorted(domain.measures))}"
    if what == "org_unit" and not domain.org.is_known(value):
        return f"unknown org_unit {value!r} (not in org.yaml)"
    return None


# --- Alert state ---------------------------------------------------------------------------------


class AlertState(NamedTuple):
    status: AlertStatus
    severity: Severity
    sequence: int
    values: Mapping[str, float]
    period: str = ""  # YYYY-MM of the event


class AlertBook:
    """The last state of every alert: alert_id → (status, severity, sequence, values).

    Rebuilt after a restart by replaying the alert topic (:meth:`from_events`); a replayed event
    whose sequence is not newer than the state already recorded changes nothing.
    """

    def __init__(self) -> None:
        self._states: dict[str, AlertState] = {}

    @classmethod
    def from_events(cls, events: Iterable[AlertEvent]) -> AlertBook:
        book = cls()
        for event in events:
            book.record(event)
        return book

    def record(self, event: AlertEvent) -> None:
        known = self._states.get(event.alert_id)
        if known is not None and known.sequence >= event.sequence:
            return
        self._states[event.alert_id] = AlertState(
            event.status, event.severity, event.sequence, dict(event.values), event.period
        )

    def get(self, alert_id: str) -> AlertState | None:
        return self._states.get(alert_id)

    def firing(self) -> dict[str, AlertState]:
        """Alerts that fire now: status firing, worsened or improved."""
        return {a: s for a, s in self._states.items() if s.status != "resolved"}

    def items(self) -> Iterator[tuple[str, AlertState]]:
        return iter(self._states.items())

    def __len__(self) -> int:
        return len(self._states)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AlertBook) and self._states == other._states


# --- Evaluation ----------------------------------------------------------------------------------


def evaluate(
    rules: RuleSet,
    current: OrganisationForecast,
    previous: OrganisationForecast | None,
    book: AlertBook,
    domain: DomainConfig,
    now: datetime,
) -> list[AlertEvent]:
    """Evaluate every enabled rule on ``current``; return the state changes, recorded in ``book``.

    A series a rule cannot read this time (no budget, no previous forecast) keeps its state.
    """
    ctx = RuleContext(current, previous, domain, book)
    events: list[AlertEvent] = []
    for rule in rules.active():
        step = rules.step_of(rule)
        for reading in rule.readings(ctx):
            event = _transition(rule, reading, book, ctx, now, step)
            if event is not None:
                book.record(event)
                events.append(event)
    return events


def _change(reading: Reading, previous: float, since: str, now_period: str) -> str:
    """``underskottet har ökat från 3,9 till 14,5 mnkr sedan februari``."""
    render = reading.render or _money_pair
    before, after = render(previous, reading.measured)
    verb = "ökat" if reading.measured >= previous else "minskat"
    when = f"sedan {month_sv(int(since[5:]))}" if since and since != now_period else ""
    return f"{reading.noun} har {verb} från {before} till {after} {when}".rstrip()


def _transition(
    rule: _Rule,
    reading: Reading,
    book: AlertBook,
    ctx: RuleContext,
    now: datetime,
    step: Step,
) -> AlertEvent | None:
    node = reading.node
    alert_id = rule.alert_id(node)
    state = book.get(alert_id)
    firing = state is not None and state.status != "resolved"
    current = state.severity if firing and state is not None else None
    severity = next_severity(current, reading.grade)
    values = dict(reading.values)
    values.setdefault("excess", reading.measured)
    previous = state.values.get("excess") if firing and state is not None else None
    status: AlertStatus
    resolution: Literal["within_limits"] | None = None
    if current is None:
        if severity is None:
            return None
        status = "firing"
    elif severity is None:
        status, severity, resolution = "resolved", current, "within_limits"
    elif severity_rank(severity) > severity_rank(current):
        status = "firing"  # a higher tier: a firing event with the higher severity
    elif severity_rank(severity) < severity_rank(current):
        status = "improved"  # a step down, still firing
    else:
        size = step.size(reading.step_reference, node.level)
        if previous is None or size <= 0:
            return None
        moved = reading.measured - previous
        if moved >= size:
            status = "worsened"
        elif -moved >= size:
            status = "improved"
        else:
            return None
    name = ctx.name(node.org_unit)
    change = None
    if previous is not None and state is not None:
        values["previous_value"] = previous
        change = _change(reading, previous, state.period, _period(ctx))
    if status == "resolved":
        message = (
            f"{name}: åter inom gränserna ({_lower_first(rule.title)}). "
            f"{_capitalise(reading.figure)}."
        )
        title = f"{name}: åter inom gränserna, {reading.title}"
    else:
        message = f"{name}: {reading.figure}.{reading.detail}"
        if change is not None:
            message += f" {_capitalise(change)}."
        title = f"{name}: {reading.title}"
    sequence = (state.sequence if state is not None else 0) + 1
    return AlertEvent(
        event_id=f"{alert_id}@{sequence}",
        alert_id=alert_id,
        sequence=sequence,
        rule=rule.id,
        severity=severity,
        status=status,
        org_unit=node.org_unit,
        org_unit_name=name,
        level=node.level,
        category=node.category,
        period=_period(ctx),
        values=values,
        message=message,
        emitted_at=now,
        title=title,
        change=change,
        year_closed=ctx.year_closed,
        resolution=resolution,
        method=node.model,
    )


def _period(ctx: RuleContext) -> str:
    return f"{ctx.current.year}-{ctx.current.as_of_month:02d}"


def resolve_earlier_years(
    rules: RuleSet, year: int, book: AlertBook, domain: DomainConfig, now: datetime
) -> list[AlertEvent]:
    """Close every alert still firing for a year before ``year``, recorded in ``book``.

    Once the rules look at a new year, last year's alerts can no longer change (their series are
    not evaluated again): without this they would stay firing forever. The year is closed; its
    outcome is reported in the annual report, not by alerts. Resolution ``year_closed``: nobody
    claims the overrun was fixed.
    """
    titles = {rule.id: rule.title for rule in rules.rules}
    events: list[AlertEvent] = []
    for alert_id, state in sorted(book.firing().items()):
        rule_id, org_unit, category, alert_year = alert_id.split("|")
        if int(alert_year) >= year:
            continue
        node = domain.org.nodes.get(org_unit)
        name = node.name if node is not None else org_unit
        title = _lower_first(titles.get(rule_id, rule_id))
        sequence = state.sequence + 1
        event = AlertEvent(
            event_id=f"{alert_id}@{sequence}",
            alert_id=alert_id,
            sequence=sequence,
            rule=rule_id,
            severity=state.severity,
            status="resolved",
            org_unit=org_unit,
            org_unit_name=name,
            level=node.level if node is not None else "enhet",
            category=category,
            period=f"{alert_year}-12",
            values=dict(state.values),
            message=(
                f"{name}: {title} {alert_year} avslutat: året är stängt "
                f"(uppföljningen gäller nu {year}; utfallet redovisas i årsredovisningen)."
            ),
            emitted_at=now,
            title=f"{name}: {title} {alert_year} avslutat: året är stängt",
            year_closed=True,
            resolution="year_closed",
        )
        book.record(event)
        events.append(event)
    return events


__all__ = [
    "RULE_KINDS",
    "AlertBook",
    "AlertState",
    "Grade",
    "Lifecycle",
    "Reading",
    "Rule",
    "RuleContext",
    "RuleDomainError",
    "RuleSet",
    "Step",
    "evaluate",
    "format_number_sv",
    "grade",
    "next_severity",
    "resolve_earlier_years",
]
