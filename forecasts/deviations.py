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
    """One rule's view of one series now: the grade, the figures and the words for them."""

    node: NodeForecast
    grade: Grade
    values: dict[str, float]
    figure: str  # the current figures, compared with what: "prognos … mot budget … (…)"
    detail: str = ""  # firing only: why it matters (volume/price split, the limit, …)


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

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        for node in ctx.nodes("cost", self.category, self.levels):
            budget = node.budget_full_year
            if budget is None:
                continue
            excess = excess_of(node.full_year, budget)
            grading = self._grade(excess)
            deficit_flag = self.namnd_deficit_critical and node.level == "namnd"
            detail = ""
            if deficit_flag and excess["sek"] > 0:
                if excess["pct"] >= self.namnd_deficit_min_pct:
                    grading = grading.at_least("critical")
                else:
                    grading = grading.held_at("critical")
                detail = " Minusprognos för nämnden: en plan för ekonomi i balans behövs."
            money = Money.for_amounts(node.full_year, budget)
            versus, deviation = _versus(money, excess)
            figure = (
                f"prognos {self.noun(ctx)} {node.year} {money(node.full_year)} "
                f"mot budget {money(budget)} {versus}"
            )
            yield Reading(
                node,
                grading,
                {"forecast": node.full_year, "budget": budget} | deviation | _split_values(node),
                figure,
                _split_detail(node, money) + detail,
            )


class OvertimeYtdRule(_CostRule):
    """Overtime booked so far this year against the budget periodised to date."""

    kind: Literal["overtime_ytd"]
    category: str = "overtime"
    levels: tuple[Level, ...] = Field(default=("enhet", "avdelning"), min_length=1)

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        for node in ctx.nodes("cost", self.category, self.levels):
            budget = node.budget_ytd
            if budget is None:
                continue
            actual = node.actual_ytd
            excess = excess_of(actual, budget)
            money = Money.for_amounts(actual, budget)
            versus, deviation = _versus(money, excess)
            figure = (
                f"{self.noun(ctx)} {ytd_sv(node.year, node.as_of_month)} {money(actual)} "
                f"mot budget för perioden {money(budget)} {versus}"
            )
            values = {"actual_ytd": actual, "budget_ytd": budget} | deviation
            yield Reading(node, self._grade(excess), values, figure)


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
            yield Reading(
                node,
                grade(self.thresholds, excess, self.hysteresis, self.match),
                {"after_stop": amount, "lag_months": float(lag)},
                self._figure(ctx, node, stop, booked, amount),
                self._lag_detail(lag),
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

    def expected(self, ctx: RuleContext, node: NodeForecast) -> tuple[float, float, float] | None:
        """(expected, low, high) from the previous month's forecast, if it forecast this month."""
        before = ctx.previous_node(node)
        if before is None or before.as_of_month != node.as_of_month - 1:
            return None
        return before.next_month()

    def limit(self, ctx: RuleContext, node: NodeForecast) -> _MonthLimit | None:
        """The higher of the forecast's upper bound and the month's budget with tolerance: a
        month within its (seasonal) budget is never "above expected", even when last month's
        forecast missed the summer peak."""
        expected = self.expected(ctx, node)
        budget = None
        if node.budget_monthly is not None:
            budget = _budget_limit(node.budget_monthly[node.as_of_month - 1], self.tolerance)
        if expected is None:
            return budget
        forecast = _forecast_limit(expected, node.as_of_month - 1)
        return budget if budget is not None and budget.limit > forecast.limit else forecast

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        for node in ctx.nodes("cost", self.category, self.levels):
            limit = self.limit(ctx, node)
            if limit is None:
                continue
            actual = node.actual_monthly[-1]
            excess = excess_of(actual, limit.limit)
            money = Money.for_amounts(actual, limit.limit)
            yield Reading(
                node,
                self._grade(excess),
                {"actual_month": actual, "limit": limit.limit, "excess": excess["sek"]}
                | limit.values,
                f"{self.noun(ctx)} {month_sv(node.as_of_month)} {node.year} {money(actual)} "
                f"{limit.describe(money)}",
                # The excess in its own unit: 40 tkr over a limit of 1,2 mnkr is not "0,0 mnkr".
                f" Det är {Money.for_amounts(excess['sek'])(excess['sek'])} över gränsen "
                f"{money(limit.limit)}.",
            )


@dataclass(frozen=True)
class _MonthLimit:
    """The most a month may cost before it is above expected, and how to say what it is."""

    limit: float
    values: dict[str, float]
    describe: Callable[[Money], str]


def _forecast_limit(expected: tuple[float, float, float], made_at_month: int) -> _MonthLimit:
    mid, low, high = expected

    def describe(money: Money) -> str:
        return (
            f"mot förväntat {money(mid)} enligt prognosen per {month_sv(made_at_month)} "
            f"(intervall {money.span(low, high)})"
        )

    return _MonthLimit(high, {"expected": mid, "low": low, "high": high}, describe)


def _budget_limit(budget: float, tolerance: float) -> _MonthLimit:
    def describe(money: Money) -> str:
        pct = format_number_sv(tolerance * 100, 0)
        return f"mot budget för månaden {money(budget)} (+{pct} % tolerans)"

    return _MonthLimit(budget * (1 + tolerance), {"budget_month": budget}, describe)


class AgencyStaffRule(_CostRule):
    """Hyrpersonal against budget. Often unbudgeted: a unit without a budget line has budget 0."""

    kind: Literal["agency_staff_over_budget"]
    category: str = "agency_staff"
    levels: tuple[Level, ...] = Field(default=("enhet", "avdelning"), min_length=1)
    basis: Literal["full_year", "ytd"] = "full_year"

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        for node in ctx.nodes("cost", self.category, self.levels):
            if self.basis == "full_year":
                amount, budget = node.full_year, node.budget_full_year or 0.0
                what = f"prognos {self.noun(ctx)} {node.year}"
                against = "budget"
            else:
                amount, budget = node.actual_ytd, node.budget_ytd or 0.0
                what = f"{self.noun(ctx)} {ytd_sv(node.year, node.as_of_month)}"
                against = "budget för perioden"
            excess = excess_of(amount, budget)
            money = Money.for_amounts(amount, budget)
            versus, deviation = _versus(money, excess)
            compared = f"mot {against} {money(budget)} {versus}" if budget else "utan budget"
            yield Reading(
                node,
                self._grade(excess),
                {"amount": amount, "budget": budget} | deviation,
                f"{what} {money(amount)} {compared}",
            )


class MeasureOverPlanRule(_Rule):
    """A volume measure so far this year against its plan to date (vårddygn, hemtjänsttimmar)."""

    kind: Literal["placement_days_over_plan", "home_care_hours_over_plan"]
    measures: tuple[str, ...] = Field(min_length=1)
    levels: tuple[Level, ...] = Field(default=("enhet", "avdelning"), min_length=1)
    thresholds: tuple[VolumeTier, ...]

    def references(self) -> Iterator[tuple[str, str, str]]:
        for i, measure in enumerate(self.measures):
            yield f"measures[{i}]", "measure", measure

    def readings(self, ctx: RuleContext) -> Iterator[Reading]:
        for measure in self.measures:
            unit = ctx.domain.measures[measure].unit if measure in ctx.domain.measures else ""
            for node in ctx.nodes("measure", measure, self.levels):
                plan = node.budget_ytd
                if plan is None:
                    continue
                actual = node.actual_ytd
                excess = excess_of(actual, plan, key="units")
                versus = [format_units(excess["units"], unit, signed=True)]
                if math.isfinite(excess["pct"]):
                    versus.append(format_pct(excess["pct"], signed=True))
                figure = (
                    f"{ctx.subject(measure)} {ytd_sv(node.year, node.as_of_month)} "
                    f"{format_units(actual, unit)} mot plan {format_units(plan, unit)} "
                    f"({', '.join(versus)})"
                )
                yield Reading(
                    node,
                    grade(self.thresholds, excess, self.hysteresis, self.match),
                    {"actual_ytd": actual, "plan_ytd": plan, "excess": excess["units"]}
                    | ({"excess_pct": excess["pct"]} if math.isfinite(excess["pct"]) else {}),
                    figure,
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
            yield Reading(
                node,
                grade(self.thresholds, {"pct": share}, self.hysteresis, self.match),
                {"share_pct": share, "sick_hours": sick, "scheduled_hours": scheduled},
                figure,
                f" Larmgräns {format_pct(self.thresholds[0].pct)}.",
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
            figure = (
                f"prognos {self.noun(ctx)} {node.year} {money(node.full_year)} "
                f"mot {money(before.full_year)} i prognosen per "
                f"{month_sv(before.as_of_month)} {versus}"
            )
            values = {"forecast": node.full_year, "previous_forecast": before.full_year}
            yield Reading(node, self._grade(excess), values | deviation, figure)


Rule = Annotated[
    BudgetDeviationRule
    | OvertimeYtdRule
    | OvertimeAfterStopRule
    | SubstitutesMonthRule
    | AgencyStaffRule
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


class RuleSet(_Strict):
    rules: tuple[Rule, ...] = ()

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
            event.status, event.severity, event.sequence, dict(event.values)
        )

    def get(self, alert_id: str) -> AlertState | None:
        return self._states.get(alert_id)

    def firing(self) -> dict[str, AlertState]:
        return {a: s for a, s in self._states.items() if s.status == "firing"}

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
    ctx = RuleContext(current, previous, domain)
    events: list[AlertEvent] = []
    for rule in rules.active():
        for reading in rule.readings(ctx):
            event = _transition(rule, reading, book, ctx, now)
            if event is not None:
                book.record(event)
                events.append(event)
    return events


def _transition(
    rule: _Rule, reading: Reading, book: AlertBook, ctx: RuleContext, now: datetime
) -> AlertEvent | None:
    alert_id = rule.alert_id(reading.node)
    state = book.get(alert_id)
    current = state.severity if state is not None and state.status == "firing" else None
    severity = next_severity(current, reading.grade)
    if severity == current:
        return None
    name = ctx.name(reading.node.org_unit)
    if severity is None:
        assert current is not None
        status: AlertStatus = "resolved"
        severity = current
        message = (
            f"{name}: åter inom gränserna ({_lower_first(rule.title)}). "
            f"{_capitalise(reading.figure)}."
        )
    else:
        status = "firing"
        message = f"{name}: {reading.figure}.{reading.detail}"
    sequence = (state.sequence if state is not None else 0) + 1
    node = reading.node
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
        period=f"{ctx.current.year}-{ctx.current.as_of_month:02d}",
        values=reading.values,
        message=message,
        emitted_at=now,
    )


def resolve_earlier_years(
    rules: RuleSet, year: int, book: AlertBook, domain: DomainConfig, now: datetime
) -> list[AlertEvent]:
    """Resolve every alert still firing for a year before ``year``, recorded in ``book``.

    Once the rules look at a new year, last year's alerts can no longer change (their series are
    not evaluated again): without this they would stay firing forever. The year is over; its
    outcome is reported in the annual report, not by alerts.
    """
    titles = {rule.id: rule.title for rule in rules.rules}
    events: list[AlertEvent] = []
    for alert_id, state in sorted(book.firing().items()):
        rule_id, org_unit, category, alert_year = alert_id.split("|")
        if int(alert_year) >= year:
            continue
        node = domain.org.nodes.get(org_unit)
        name = node.name if node is not None else org_unit
        title = titles.get(rule_id, rule_id)
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
                f"{name}: {_lower_first(title)} {alert_year} avslutas, året är slut "
                f"(uppföljningen gäller nu {year})."
            ),
            emitted_at=now,
        )
        book.record(event)
        events.append(event)
    return events


__all__ = [
    "RULE_KINDS",
    "AlertBook",
    "AlertState",
    "Grade",
    "Reading",
    "Rule",
    "RuleContext",
    "RuleDomainError",
    "RuleSet",
    "evaluate",
    "format_number_sv",
    "grade",
    "next_severity",
    "resolve_earlier_years",
]
