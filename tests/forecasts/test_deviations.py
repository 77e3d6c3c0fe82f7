"""Deviation rules on hand-built organisation forecasts: firing, resolving, hysteresis, tiers,
the övertidsstopp booking lag, the summer vikarie peak, stable ids, the rebuilt AlertBook and the
Swedish messages."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from contract.output_records import AlertEvent
from core.domain import DomainConfig
from core.settings import DEFAULT_CONFIG_DIR
from forecasts.deviations import (
    AlertBook,
    Money,
    RuleSet,
    evaluate,
    format_number_sv,
    format_pct,
    resolve_earlier_years,
)
from forecasts.engine import Z80
from forecasts.live import TOTAL, NodeForecast, OrganisationForecast

NOW = datetime(2024, 9, 5, 8, 0, tzinfo=UTC)
YEAR = 2024
MINUS = "\u2212"


# --- builders ------------------------------------------------------------------------------------


def node(
    domain: DomainConfig,
    unit: str,
    category: str,
    *,
    actual: Sequence[float],
    budget: Sequence[float] | None = None,
    path: Sequence[float] | None = None,
    full_year: float | None = None,
    sigma: float = 0.0,
    kind: str = "cost",
    year: int = YEAR,
    volume_effect: float | None = None,
    price_effect: float | None = None,
) -> NodeForecast:
    """A node's forecast; the path defaults to the rest of the budget (or zeros)."""
    as_of = len(actual)
    if path is None:
        path = list(budget[as_of:]) if budget is not None else [0.0] * (12 - as_of)
    total = full_year if full_year is not None else math.fsum(actual) + math.fsum(path)
    spread = Z80 * sigma
    return NodeForecast(
        org_unit=unit,
        level=domain.org.level_of(unit),
        kind=kind,  # type: ignore[arg-type]
        category=category,
        year=year,
        as_of_month=as_of,
        actual_monthly=tuple(float(v) for v in actual),
        budget_monthly=tuple(float(v) for v in budget) if budget is not None else None,
        path=tuple(float(v) for v in path),
        full_year=total,
        low=total - spread,
        high=total + spread,
        sigma=sigma,
        model="test",
        volume_effect=volume_effect,
        price_effect=price_effect,
    )


def annual(
    domain: DomainConfig,
    unit: str,
    budget: float,
    forecast: float,
    as_of: int = 8,
    category: str = TOTAL,
    volume_effect: float | None = None,
    price_effect: float | None = None,
) -> NodeForecast:
    """A cost node with an even budget and an even forecast of ``forecast`` for the year."""
    return node(
        domain,
        unit,
        category,
        actual=[forecast / 12] * as_of,
        budget=[budget / 12] * 12,
        path=[forecast / 12] * (12 - as_of),
        full_year=forecast,
        volume_effect=volume_effect,
        price_effect=price_effect,
    )


def org(*nodes: NodeForecast) -> OrganisationForecast:
    first = nodes[0]
    return OrganisationForecast(first.year, first.as_of_month, list(nodes))


def rules(*specs: dict[str, Any]) -> RuleSet:
    return RuleSet.model_validate({"rules": list(specs)})


def run(
    ruleset: RuleSet,
    book: AlertBook,
    domain: DomainConfig,
    *nodes: NodeForecast,
    previous: OrganisationForecast | None = None,
) -> list[AlertEvent]:
    return evaluate(ruleset, org(*nodes), previous, book, domain, NOW)


def transitions(events: list[AlertEvent]) -> list[tuple[str, str]]:
    return [(e.status, e.severity) for e in events]


BUDGET = 96e6  # 8 mnkr a month: exact in floating point
TWO_TIERS = {
    "id": "budget_deviation",
    "kind": "budget_deviation",
    "title": "Budgetavvikelse helår",
    "levels": ["enhet"],
    "hysteresis": 0.2,
    "thresholds": [
        {"severity": "warning", "sek": 1_000_000},
        {"severity": "critical", "sek": 3_000_000},
    ],
}


def deficits_to_transitions(
    domain: DomainConfig, spec: dict[str, Any], deficits: Sequence[float]
) -> list[list[tuple[str, str]]]:
    """Evaluate Hemtjänst Norr's forecast at BUDGET + each deficit in turn; the changes per step."""
    ruleset, book = rules(spec), AlertBook()
    return [
        transitions(run(ruleset, book, domain, annual(domain, "1110", BUDGET, BUDGET + d)))
        for d in deficits
    ]


# --- hysteresis and tiers ------------------------------------------------------------------------


def test_fires_at_threshold_holds_until_release_and_steps_tiers(domain: DomainConfig) -> None:
    steps = [
        (500_000, []),
        (1_000_000, [("firing", "warning")]),  # at the threshold
        (900_000, []),  # between release (800 000) and threshold: keeps firing
        (810_000, []),
        (1_200_000, []),
        (790_000, [("resolved", "warning")]),  # below threshold × (1 − 0,2)
        (900_000, []),  # between the two while quiet: stays quiet
        (3_000_000, [("firing", "critical")]),  # straight to the highest tier met
        (2_500_000, []),  # critical held down to 2,4 mnkr
        (2_300_000, [("improved", "warning")]),  # steps down a tier, still firing
        (0, [("resolved", "warning")]),
    ]
    got = deficits_to_transitions(domain, TWO_TIERS, [d for d, _ in steps])
    assert got == [expected for _, expected in steps]


def test_oscillating_between_the_two_thresholds_does_not_flap(domain: DomainConfig) -> None:
    firing = deficits_to_transitions(domain, TWO_TIERS, [1_100_000] + [850_000, 990_000] * 6)
    assert firing[0] == [("firing", "warning")]
    assert all(step == [] for step in firing[1:])
    quiet = deficits_to_transitions(domain, TWO_TIERS, [850_000, 990_000] * 6)
    assert all(step == [] for step in quiet)


def test_escalation_through_three_tiers_emits_one_firing_event_per_change(
    domain: DomainConfig,
) -> None:
    spec = TWO_TIERS | {
        "thresholds": [
            {"severity": "info", "sek": 500_000},
            {"severity": "warning", "sek": 1_000_000},
            {"severity": "critical", "sek": 3_000_000},
        ]
    }
    ruleset, book = rules(spec), AlertBook()
    events = []
    for deficit in (600_000, 1_500_000, 1_400_000, 3_500_000):
        events += run(ruleset, book, domain, annual(domain, "1110", BUDGET, BUDGET + deficit))
    assert transitions(events) == [
        ("firing", "info"),
        ("firing", "warning"),
        ("firing", "critical"),
    ]
    assert [e.sequence for e in events] == [1, 2, 3]
    assert [e.event_id for e in events] == [
        "budget_deviation|1110|total|2024@1",
        "budget_deviation|1110|total|2024@2",
        "budget_deviation|1110|total|2024@3",
    ]


def test_match_all_needs_every_limit_and_match_any_one(domain: DomainConfig) -> None:
    both = TWO_TIERS | {"thresholds": [{"severity": "warning", "sek": 1_000_000, "pct": 2}]}
    # 1,5 mnkr of 96 mnkr is 1,56 %: the SEK limit is met, the per-cent limit is not.
    assert deficits_to_transitions(domain, both, [1_500_000, 2_000_000]) == [
        [],
        [("firing", "warning")],
    ]
    either = both | {"match": "any"}
    assert deficits_to_transitions(domain, either, [1_500_000]) == [[("firing", "warning")]]


def test_a_surplus_never_fires(domain: DomainConfig) -> None:
    assert deficits_to_transitions(domain, TWO_TIERS, [-5_000_000]) == [[]]


# --- budget_deviation ----------------------------------------------------------------------------


def test_budget_deviation_per_level_and_namnd_minusprognos_is_critical(
    domain: DomainConfig,
) -> None:
    spec = TWO_TIERS | {"levels": ["namnd", "avdelning", "enhet"], "namnd_deficit_min_pct": 0.25}
    nodes = [
        # 2,9 mnkr minusprognos (0,28 %): a warning by the tiers, critical by the flag (0,25 %)
        annual(domain, "VON", 1_051e6, 1_053.9e6),
        annual(domain, "AO", 590e6, 592e6),
        annual(domain, "1110", BUDGET, BUDGET),
    ]
    book = AlertBook()
    events = run(rules(spec), book, domain, *nodes)
    assert {(e.org_unit, e.level, e.severity) for e in events} == {
        ("VON", "namnd", "critical"),
        ("AO", "avdelning", "warning"),
    }
    # Still a deficit, if a small one (0,01 %): the flag holds; back in balance: resolved.
    assert run(rules(spec), book, domain, annual(domain, "VON", 1_051e6, 1_051.1e6)) == []
    back = run(rules(spec), book, domain, annual(domain, "VON", 1_051e6, 1_050.9e6))
    assert transitions(back) == [("resolved", "critical")]
    # A small deficit (0,01 %) does not enter: no flapping around zero.
    small = annual(domain, "VON", 1_051e6, 1_051.1e6)
    assert run(rules(spec), AlertBook(), domain, small) == []
    without_flag = rules(spec | {"namnd_deficit_critical": False})
    graded = run(without_flag, AlertBook(), domain, nodes[0])
    assert transitions(graded) == [("firing", "warning")]  # only the tiers grade it


def test_nodes_without_budget_or_outside_levels_are_skipped(domain: DomainConfig) -> None:
    no_budget = node(domain, "1110", TOTAL, actual=[9e6] * 8, full_year=120e6)
    avdelning = annual(domain, "AO", 590e6, 620e6)
    assert run(rules(TWO_TIERS), AlertBook(), domain, no_budget, avdelning) == []


# --- overtime_ytd --------------------------------------------------------------------------------

OVERTIME_YTD = {
    "id": "overtime_ytd",
    "kind": "staff_cost_ytd",
    "category": "overtime",
    "title": "Övertid över budget hittills i år",
    "subject": "övertidskostnad",
    "thresholds": [
        {"severity": "warning", "sek": 50_000, "pct": 10},
        {"severity": "critical", "sek": 200_000, "pct": 25},
    ],
}


def test_overtime_ytd_fires_on_the_budget_to_date_and_resolves(domain: DomainConfig) -> None:
    budget = [100_000.0] * 12  # 800 000 to August
    ruleset, book = rules(OVERTIME_YTD), AlertBook()

    def ytd(monthly: float) -> list[AlertEvent]:
        actual = node(domain, "1110", "overtime", actual=[monthly] * 8, budget=budget)
        return run(ruleset, book, domain, actual)

    assert ytd(109_000) == []  # 9 %
    fired = ytd(110_000)  # 880 000: +80 000, 10 %
    assert transitions(fired) == [("firing", "warning")]
    assert {k: fired[0].values[k] for k in ("actual_ytd", "budget_ytd", "budget")} == {
        "actual_ytd": 880_000,
        "budget_ytd": 800_000,
        "budget": 1_200_000,
    }
    assert fired[0].values["deviation"] == -80_000
    assert fired[0].values["deviation_pct"] == -10.0
    assert fired[0].values["excess"] == 80_000
    assert fired[0].title == (
        "Hemtjänst Norr: övertidskostnad 880 tkr t.o.m. augusti 2024, 80 tkr över budget"
    )
    assert fired[0].message == (
        "Hemtjänst Norr: övertidskostnad januari–augusti 2024 880 tkr mot budget för perioden "
        f"800 tkr ({MINUS}80 tkr, {MINUS}10,0 %)."
    )
    assert transitions(ytd(130_000)) == [("firing", "critical")]
    assert transitions(ytd(100_000)) == [("resolved", "critical")]


# --- overtime_after_stop -------------------------------------------------------------------------


def stop_rule(*stops: dict[str, str]) -> RuleSet:
    return rules(
        {
            "id": "overtime_after_stop",
            "kind": "overtime_after_stop",
            "title": "Övertid efter övertidsstopp",
            "subject": "övertid",
            "stops": list(stops),
            "thresholds": [
                {"severity": "warning", "sek": 0},
                {"severity": "critical", "sek": 100_000},
            ],
        }
    )


def overtime(domain: DomainConfig, unit: str, booked: Sequence[float]) -> NodeForecast:
    return node(domain, unit, "overtime", actual=booked)


def test_overtime_booked_in_september_for_august_is_fine_october_fires(
    domain: DomainConfig,
) -> None:
    ruleset, book = stop_rule({"org_unit": "AO", "from": "2024-09-01"}), AlertBook()
    to_september = [120_000.0] * 9  # September's booking is August's work
    assert run(ruleset, book, domain, overtime(domain, "1110", to_september)) == []
    october = run(ruleset, book, domain, overtime(domain, "1110", [*to_september, 20_000.0]))
    assert transitions(october) == [("firing", "warning")]
    assert october[0].alert_id == "overtime_after_stop|1110|overtime|2024"
    assert october[0].values == {
        "after_stop": 20_000,
        "lag_months": 1,
        "actual_ytd": 1_100_000,
        "excess": 20_000,
    }
    assert october[0].message == (
        "Hemtjänst Norr: övertid 20 tkr bokförd oktober 2024 för arbete efter övertidsstoppet "
        "från 1 september 2024. Övertid bokförs 1 månad efter arbetet; bokningar som avser "
        "arbete före stoppet räknas inte."
    )
    november = overtime(domain, "1110", [*to_september, 20_000.0, 90_000.0])
    assert transitions(run(ruleset, book, domain, november)) == [("firing", "critical")]


def test_a_stop_covers_descendants_and_the_nearest_stop_wins(domain: DomainConfig) -> None:
    booked = [100_000.0] * 10  # through October: October's booking is September's work
    ruleset = stop_rule(
        {"org_unit": "AO", "from": "2024-09-01"}, {"org_unit": "1120", "from": "2024-10-01"}
    )
    events = run(
        ruleset,
        AlertBook(),
        domain,
        overtime(domain, "1110", booked),  # under AO's stop
        overtime(domain, "1120", booked),  # its own, later stop: September's work is fine
        overtime(domain, "2110", booked),  # LSS: no stop
    )
    assert [e.org_unit for e in events] == ["1110"]


def test_stop_from_last_year_catches_january_and_a_mid_month_stop_skips_its_month(
    domain: DomainConfig,
) -> None:
    last_year = stop_rule({"org_unit": "1110", "from": "2023-12-01"})
    january = run(last_year, AlertBook(), domain, overtime(domain, "1110", [5_000.0]))
    assert transitions(january) == [("firing", "warning")]  # December's work, after the stop
    mid_month = stop_rule({"org_unit": "1110", "from": "2023-12-02"})
    assert run(mid_month, AlertBook(), domain, overtime(domain, "1110", [5_000.0])) == []
    february = run(mid_month, AlertBook(), domain, overtime(domain, "1110", [5_000.0, 1.0]))
    assert february[0].values["after_stop"] == 1.0


def test_no_stops_no_readings_and_corrected_bookings_resolve(domain: DomainConfig) -> None:
    assert run(stop_rule(), AlertBook(), domain, overtime(domain, "1110", [1e5] * 10)) == []
    ruleset, book = stop_rule({"org_unit": "1110", "from": "2024-09-01"}), AlertBook()
    run(ruleset, book, domain, overtime(domain, "1110", [0.0] * 9 + [30_000.0]))
    corrected = run(ruleset, book, domain, overtime(domain, "1110", [0.0] * 9 + [30_000, -30_000]))
    assert transitions(corrected) == [("resolved", "warning")]
    assert corrected[0].message == (
        "Hemtjänst Norr: åter inom gränserna (övertid efter övertidsstopp). Ingen övertid "
        "bokförd för arbete efter övertidsstoppet från 1 september 2024."
    )


# --- substitutes_month_above_expected ------------------------------------------------------------

SUBSTITUTES = {
    "id": "substitutes_month_above_expected",
    "kind": "substitutes_month_above_expected",
    "title": "Vikariekostnad över förväntat för månaden",
    "subject": "vikariekostnad",
    "levels": ["enhet"],
    "tolerance": 0.1,
    "thresholds": [{"severity": "warning", "pct": 0}, {"severity": "critical", "pct": 25}],
}
SUMMER_BUDGET = [1.0e6] * 6 + [1.6e6, 1.5e6] + [1.0e6] * 4


def june_forecast(domain: DomainConfig) -> OrganisationForecast:
    """As of June: July expected at 1,6 mnkr, 80 % interval 1,1–2,1 mnkr."""
    sigma = 500_000 * math.sqrt(6) / Z80  # one month's spread: Z80 · σ / √6 = 0,5 mnkr
    return org(
        node(
            domain,
            "1110",
            "substitutes",
            actual=[1.0e6] * 6,
            budget=SUMMER_BUDGET,
            path=[1.6e6, 1.5e6, 1.0e6, 1.0e6, 1.0e6, 1.0e6],
            sigma=sigma,
        )
    )


def july(domain: DomainConfig, amount: float) -> NodeForecast:
    return node(domain, "1110", "substitutes", actual=[1.0e6] * 6 + [amount], budget=SUMMER_BUDGET)


def test_summer_peak_inside_the_interval_is_normal_beyond_it_fires(domain: DomainConfig) -> None:
    previous = june_forecast(domain)
    ruleset = rules(SUBSTITUTES)
    # 1,9 mnkr in July is 19 % above July's budget, but inside the interval the June forecast gave.
    assert run(ruleset, AlertBook(), domain, july(domain, 1.9e6), previous=previous) == []
    # The interval's upper bound (2,1 mnkr) counts only up to the budget + 25 % (2,0 mnkr).
    assert run(ruleset, AlertBook(), domain, july(domain, 2.0e6), previous=previous) == []
    fired = run(ruleset, AlertBook(), domain, july(domain, 2.2e6), previous=previous)
    assert transitions(fired) == [("firing", "warning")]
    assert fired[0].values["month_high"] == pytest.approx(2.1e6)
    assert fired[0].values["limit"] == pytest.approx(2.0e6)
    assert fired[0].values["excess"] == pytest.approx(0.2e6)
    assert fired[0].message == (
        "Hemtjänst Norr: vikariekostnad juli 2024 2,2 mnkr mot förväntat 1,6 mnkr enligt "
        "prognosen per juni (intervall 1,1–2,1 mnkr). Det är 200 tkr över gränsen 2,0 mnkr."
    )
    assert (
        fired[0].title
        == "Hemtjänst Norr: vikariekostnad juli 2024 2,2 mnkr, 200 tkr över förväntat"
    )
    far = run(ruleset, AlertBook(), domain, july(domain, 2.7e6), previous=previous)
    assert transitions(far) == [("firing", "critical")]  # 35 % above the limit


def _substitutes_month(
    domain: DomainConfig, months: Sequence[float], spread: float | None = None
) -> NodeForecast:
    """Vikarier of Hemtjänst Norr, 1 mnkr budget a month; with ``spread``, a forecast whose next
    month is 1 mnkr ± spread (80 %)."""
    remaining = 12 - len(months)
    sigma = 0.0 if spread is None else spread * math.sqrt(remaining) / Z80
    return node(
        domain,
        "1110",
        "substitutes",
        actual=months,
        budget=[1.0e6] * 12,
        path=[1.0e6] * remaining,
        sigma=sigma,
    )


def test_a_learnt_overrun_is_not_expected_and_a_widened_band_does_not_resolve(
    domain: DomainConfig,
) -> None:
    """The äldreomsorg case: the model learns the overrun and its interval widens; the alert
    still fires (the bound is capped at budget + 25 %) and is held against the month's budget,
    so it resolves only when the month's cost itself is back within budget + 10 %."""
    ruleset, book = rules(SUBSTITUTES), AlertBook()
    june = org(_substitutes_month(domain, [1.0e6] * 6, spread=0.8e6))  # July up to 1,8 mnkr
    fired = run(
        ruleset, book, domain, _substitutes_month(domain, [1.0e6] * 6 + [1.4e6]), previous=june
    )
    assert transitions(fired) == [("firing", "warning")]
    assert fired[0].values["limit"] == pytest.approx(1.25e6)
    # August: the July forecast allows up to 2,5 mnkr; the month is still 1,3 mnkr.
    july_fc = org(_substitutes_month(domain, [1.0e6] * 6 + [1.4e6], spread=1.5e6))
    august = _substitutes_month(domain, [1.0e6] * 6 + [1.4e6, 1.3e6])
    assert run(ruleset, book, domain, august, previous=july_fc) == []
    assert book.firing()
    august_fc = org(_substitutes_month(domain, [1.0e6] * 6 + [1.4e6, 1.3e6], spread=1.5e6))
    back = run(
        ruleset,
        book,
        domain,
        _substitutes_month(domain, [1.0e6] * 6 + [1.4e6, 1.3e6, 1.05e6]),
        previous=august_fc,
    )
    assert [(e.status, e.resolution) for e in back] == [("resolved", "within_limits")]
    assert "åter inom gränserna" in back[0].message


def test_without_a_forecast_for_the_month_the_budget_plus_tolerance_is_the_limit(
    domain: DomainConfig,
) -> None:
    ruleset = rules(SUBSTITUTES)
    assert run(ruleset, AlertBook(), domain, july(domain, 1.75e6)) == []  # 1,6 × 1,1 = 1,76
    fired = run(ruleset, AlertBook(), domain, july(domain, 1.8e6))
    assert transitions(fired) == [("firing", "warning")]
    assert fired[0].message.startswith(
        "Hemtjänst Norr: vikariekostnad juli 2024 1,8 mnkr mot budget för månaden 1,6 mnkr "
        "(+10 % tolerans)."
    )
    # A previous forecast of an earlier month (as of May) did not forecast July: budget again.
    may = org(node(domain, "1110", "substitutes", actual=[1e6] * 5, budget=SUMMER_BUDGET))
    assert run(ruleset, AlertBook(), domain, july(domain, 1.75e6), previous=may) == []


# --- agency_staff_over_budget --------------------------------------------------------------------

AGENCY = {
    "id": "agency_staff_ytd",
    "kind": "staff_cost_ytd",
    "category": "agency_staff",
    "unbudgeted": "zero",
    "title": "Inhyrd personal över budget hittills i år",
    "subject": "kostnad för inhyrd personal",
    "thresholds": [
        {"severity": "warning", "sek": 100_000, "pct": 10},
        {"severity": "critical", "sek": 500_000, "pct": 50},
    ],
}


def test_agency_staff_against_the_budget_to_date_and_unbudgeted(domain: DomainConfig) -> None:
    ruleset = rules(AGENCY)
    within = node(  # 8,3 % over its budget so far
        domain, "1210", "agency_staff", actual=[108_333.0] * 8, budget=[100_000.0] * 12
    )
    over = node(domain, "1220", "agency_staff", actual=[125_000.0] * 8, budget=[100_000.0] * 12)
    unbudgeted = node(domain, "2110", "agency_staff", actual=[75_000.0] * 8)
    events = run(ruleset, AlertBook(), domain, within, over, unbudgeted)
    assert {(e.org_unit, e.severity) for e in events} == {("1220", "warning"), ("2110", "critical")}
    by_unit = {e.org_unit: e for e in events}
    assert by_unit["2110"].message == (
        "LSS boende: kostnad för inhyrd personal januari–augusti 2024 600 tkr utan budget."
    )
    assert by_unit["2110"].values["budget_ytd"] == 0
    assert by_unit["2110"].values["deviation"] == -600_000
    assert by_unit["2110"].title == (
        "LSS boende: kostnad för inhyrd personal 600 tkr t.o.m. augusti 2024, utan budget"
    )
    # Not compared with 0 unless the rule says so: a skipped series never fires.
    assert run(rules(AGENCY | {"unbudgeted": "skip"}), AlertBook(), domain, unbudgeted) == []


def test_a_staffing_rule_on_the_budget_to_date_ignores_a_high_forecast(
    domain: DomainConfig,
) -> None:
    # Over the full year (1,5 vs 1,2 mnkr) but on budget so far: only the forecast's path is high.
    ahead = node(
        domain,
        "1220",
        "agency_staff",
        actual=[100_000.0] * 8,
        budget=[100_000.0] * 12,
        path=[175_000.0] * 4,
    )
    assert run(rules(AGENCY), AlertBook(), domain, ahead) == []


def test_every_staffing_category_is_one_rule_kind_and_an_absent_category_never_fires(
    domain: DomainConfig,
) -> None:
    budget = [500_000.0] * 12
    specs = [
        OVERTIME_YTD | {"id": f"{category}_ytd", "category": category}
        for category in ("overtime", "substitutes", "sick_pay", "agency_staff")
    ]
    nodes = [
        node(domain, "1110", c, actual=[600_000.0] * 4, budget=budget)
        for c in ("overtime", "substitutes", "sick_pay", "agency_staff")
    ]
    events = run(rules(*specs), AlertBook(), domain, *nodes)
    assert sorted(e.rule for e in events) == [
        "agency_staff_ytd",
        "overtime_ytd",
        "sick_pay_ytd",
        "substitutes_ytd",
    ]
    # A municipality whose categories.yaml has no hyrpersonal: the rule loads, reads nothing.
    without = DomainConfig(
        org=domain.org,
        categories={k: v for k, v in domain.categories.items() if k != "agency_staff"},
        measures=domain.measures,
        accounts=domain.accounts,
        municipality=domain.municipality,
    )
    ruleset = rules(specs[3])
    ruleset.check_against(without)
    assert ruleset.absent_categories(without) == [("agency_staff_ytd", "agency_staff")]
    assert run(ruleset, AlertBook(), without, nodes[3]) == []


# --- placement_days_over_plan, home_care_hours_over_plan -----------------------------------------

PLACEMENTS = {
    "id": "placement_days_over_plan",
    "kind": "placement_days_over_plan",
    "title": "Vårddygn över plan",
    "measures": ["placement_days_hvb", "placement_days_family_home"],
    "thresholds": [
        {"severity": "warning", "units": 30, "pct": 5},
        {"severity": "critical", "units": 100, "pct": 15},
    ],
}


def days(domain: DomainConfig, measure: str, per_month: float) -> NodeForecast:
    return node(
        domain, "3110", measure, kind="measure", actual=[per_month] * 6, budget=[540.0] * 12
    )


def test_placement_days_above_plan_pro_rata_per_vardform(domain: DomainConfig) -> None:
    ruleset, book = rules(PLACEMENTS), AlertBook()
    events = run(
        ruleset,
        book,
        domain,
        days(domain, "placement_days_hvb", 585),  # 3 510 of 3 240: +270, +8,3 %
        days(domain, "placement_days_family_home", 550),  # +1,9 %
    )
    assert transitions(events) == [("firing", "warning")]
    event = events[0]
    assert event.alert_id == "placement_days_over_plan|3110|placement_days_hvb|2024"
    assert event.message == (
        "Barn och familj: vårddygn HVB januari–juni 2024 3 510 dygn mot plan 3 240 dygn "
        "(−270 dygn, −8,3 %)."
    )
    back = run(ruleset, book, domain, days(domain, "placement_days_hvb", 540))
    assert transitions(back) == [("resolved", "warning")]


def test_home_care_hours_above_plan(domain: DomainConfig) -> None:
    ruleset = rules(
        {
            "id": "home_care_hours_over_plan",
            "kind": "home_care_hours_over_plan",
            "title": "Hemtjänsttimmar över plan",
            "measures": ["home_care_hours"],
            "thresholds": [{"severity": "warning", "units": 500, "pct": 5}],
        }
    )
    plan = [15_000.0] * 12

    def hours(per_month: float) -> NodeForecast:
        return node(
            domain, "1110", "home_care_hours", kind="measure", actual=[per_month] * 8, budget=plan
        )

    assert run(ruleset, AlertBook(), domain, hours(15_700)) == []  # +4,7 %
    fired = run(ruleset, AlertBook(), domain, hours(16_000))
    assert fired[0].message == (
        "Hemtjänst Norr: hemtjänsttimmar januari–augusti 2024 128 000 timmar mot plan "
        "120 000 timmar (−8 000 timmar, −6,7 %)."
    )


# --- sick_leave_share ----------------------------------------------------------------------------

SICK = {
    "id": "sick_leave_share",
    "kind": "sick_leave_share",
    "title": "Hög sjukfrånvaro",
    "basis": "month",
    "hysteresis": 0.1,
    "thresholds": [{"severity": "warning", "pct": 8}, {"severity": "critical", "pct": 12}],
}


def sick(domain: DomainConfig, share_pct: float) -> list[NodeForecast]:
    scheduled = [20_000.0] * 3
    sick_hours = [1_000.0, 1_000.0, 20_000 * share_pct / 100]
    return [
        node(domain, "1110", "sick_leave_hours", kind="measure", actual=sick_hours),
        node(domain, "1110", "scheduled_hours", kind="measure", actual=scheduled),
    ]


def test_sick_leave_share_in_the_month_with_hysteresis(domain: DomainConfig) -> None:
    ruleset, book = rules(SICK), AlertBook()
    steps = [(7.9, []), (9.0, [("firing", "warning")]), (13.0, [("firing", "critical")])]
    steps += [
        (11.0, [("improved", "critical")]),  # held critical, but 2 points (≥ the 1-point step) down
        (10.7, [("improved", "warning")]),  # a step down a tier
        (10.2, []),  # less than a step
        (7.3, [("improved", "warning")]),  # held at 7,2 %
        (7.1, [("resolved", "warning")]),
    ]
    got = [transitions(run(ruleset, book, domain, *sick(domain, share))) for share, _ in steps]
    assert got == [expected for _, expected in steps]


def test_sick_leave_share_year_to_date_message(domain: DomainConfig) -> None:
    events = run(rules(SICK | {"basis": "ytd"}), AlertBook(), domain, *sick(domain, 25.0))
    # (1 000 + 1 000 + 5 000) / 60 000 = 11,7 %
    assert events[0].message == (
        "Hemtjänst Norr: sjukfrånvaro januari–mars 2024 11,7 % av schemalagd tid "
        "(7 000 av 60 000 timmar). Larmgräns 8,0 %."
    )
    assert events[0].category == "sick_leave_hours"


def test_sick_leave_without_scheduled_hours_is_skipped(domain: DomainConfig) -> None:
    only_sick = sick(domain, 20.0)[:1]
    assert run(rules(SICK), AlertBook(), domain, *only_sick) == []


# --- forecast_deterioration ----------------------------------------------------------------------

DETERIORATION = {
    "id": "forecast_deterioration",
    "kind": "forecast_deterioration",
    "title": "Försämrad helårsprognos",
    "levels": ["namnd", "avdelning"],
    "thresholds": [
        {"severity": "warning", "sek": 2_000_000, "pct": 0.5},
        {"severity": "critical", "sek": 5_000_000, "pct": 1},
    ],
}


def test_forecast_deterioration_since_the_last_close(domain: DomainConfig) -> None:
    july_close = org(annual(domain, "VON", 1_051e6, 1_060e6, as_of=7))
    august = annual(domain, "VON", 1_051e6, 1_066e6, as_of=8)
    events = run(rules(DETERIORATION), AlertBook(), domain, august, previous=july_close)
    assert transitions(events) == [("firing", "warning")]  # +6 mnkr, 0,57 %
    assert events[0].message == (
        "Vård- och omsorgsnämnden: prognos nettokostnad 2024 1 066,0 mnkr mot 1 060,0 mnkr i "
        f"prognosen per juli ({MINUS}6,0 mnkr, {MINUS}0,6 %)."
    )
    better = annual(domain, "VON", 1_051e6, 1_055e6, as_of=8)
    assert run(rules(DETERIORATION), AlertBook(), domain, better, previous=july_close) == []
    last_year = OrganisationForecast(2023, 12, [annual(domain, "VON", 1e9, 1e9, as_of=12)])
    assert run(rules(DETERIORATION), AlertBook(), domain, august, previous=last_year) == []


# --- ids, the book, messages ---------------------------------------------------------------------


def test_ids_are_stable_and_a_repeated_evaluation_changes_nothing(domain: DomainConfig) -> None:
    spec = TWO_TIERS | {"levels": ["namnd"]}
    von = annual(domain, "VON", 1_051e6, 1_092e6)
    book = AlertBook()
    first = run(rules(spec), book, domain, von)
    assert [(e.alert_id, e.event_id, e.period) for e in first] == [
        ("budget_deviation|VON|total|2024", "budget_deviation|VON|total|2024@1", "2024-08")
    ]
    assert run(rules(spec), book, domain, von) == []
    other_book = run(rules(spec), AlertBook(), domain, von)
    assert [e.model_dump() for e in other_book] == [e.model_dump() for e in first]


def scenario_steps(domain: DomainConfig) -> list[list[NodeForecast]]:
    """A few months of three series moving in and out of their tiers."""
    deficits = [(0.5, 2.0, 0.0), (1.2, 3.5, 0.2), (0.9, 2.6, 1.1), (0.7, 1.0, 4.0)]
    return [
        [
            annual(domain, "1110", BUDGET, BUDGET + a * 1e6),
            annual(domain, "1120", BUDGET, BUDGET + b * 1e6),
            annual(domain, "1210", BUDGET, BUDGET + c * 1e6),
        ]
        for a, b, c in deficits
    ]


def test_book_rebuilt_from_events_makes_the_same_next_decisions(domain: DomainConfig) -> None:
    ruleset = rules(TWO_TIERS)
    steps = scenario_steps(domain)
    live, history = AlertBook(), []
    for nodes in steps[:3]:
        history += run(ruleset, live, domain, *nodes)
    assert len(history) >= 4
    restored = AlertBook.from_events(history + history[:2])  # a replay sends some twice
    assert restored == live
    assert restored.get("budget_deviation|1120|total|2024") == live.get(
        "budget_deviation|1120|total|2024"
    )
    next_live = run(ruleset, live, domain, *steps[3])
    next_restored = run(ruleset, restored, domain, *steps[3])
    assert next_live and [e.model_dump() for e in next_restored] == [
        e.model_dump() for e in next_live
    ]


def test_book_ignores_an_older_event_recorded_after_a_newer_one(domain: DomainConfig) -> None:
    book = AlertBook()
    history = run(rules(TWO_TIERS), book, domain, annual(domain, "1110", BUDGET, BUDGET + 2e6))
    history += run(rules(TWO_TIERS), book, domain, annual(domain, "1110", BUDGET, BUDGET))
    rebuilt = AlertBook.from_events([history[1], history[0]])
    state = rebuilt.get("budget_deviation|1110|total|2024")
    assert state is not None and (state.status, state.sequence) == ("resolved", 2)
    assert rebuilt.firing() == {}


def test_message_with_volume_and_price_split(domain: DomainConfig) -> None:
    spec = TWO_TIERS | {"category": "substitutes", "subject": "vikariekostnad"}
    subs = annual(
        domain,
        "1110",
        9.1e6,
        12.4e6,
        category="substitutes",
        volume_effect=-0.4e6,
        price_effect=-2.9e6,
    )
    events = run(rules(spec), AlertBook(), domain, subs)
    assert events[0].message == (
        f"Hemtjänst Norr: prognos vikariekostnad 2024 12,4 mnkr mot budget 9,1 mnkr "
        f"({MINUS}3,3 mnkr, {MINUS}36,3 %). Volymeffekt {MINUS}0,4 mnkr, "
        f"pris/produktivitet {MINUS}2,9 mnkr."
    )
    assert events[0].values["volume_effect"] == -0.4e6
    assert events[0].values["deviation"] == pytest.approx(-3.3e6)
    assert events[0].category == "substitutes"
    assert events[0].rule == "budget_deviation"
    assert events[0].org_unit_name == "Hemtjänst Norr"


def test_namnd_minusprognos_and_resolved_messages(domain: DomainConfig) -> None:
    spec = TWO_TIERS | {"levels": ["namnd"]}
    book = AlertBook()
    fired = run(rules(spec), book, domain, annual(domain, "VON", 1_051e6, 1_092e6))
    assert fired[0].severity == "critical"
    assert fired[0].message == (
        "Vård- och omsorgsnämnden: prognos nettokostnad 2024 1 092,0 mnkr mot budget "
        f"1 051,0 mnkr ({MINUS}41,0 mnkr, {MINUS}3,9 %). Minusprognos för nämnden: en plan för "
        "ekonomi i balans behövs."
    )
    resolved = run(rules(spec), book, domain, annual(domain, "VON", 1_051e6, 1_048.5e6))
    assert resolved[0].status == "resolved"
    assert resolved[0].message == (
        "Vård- och omsorgsnämnden: åter inom gränserna (budgetavvikelse helår). Prognos "
        "nettokostnad 2024 1 048,5 mnkr mot budget 1 051,0 mnkr (+2,5 mnkr, +0,2 %)."
    )
    assert resolved[0].values["deviation"] == pytest.approx(2.5e6)
    assert resolved[0].emitted_at == NOW


@pytest.mark.parametrize(
    ("value", "decimals", "signed", "text"),
    [
        (-1086.43, 1, False, f"{MINUS}1 086,4"),
        (1086.43, 1, True, "+1 086,4"),
        (-0.04, 1, True, "0,0"),
        (1_234_567, 0, False, "1 234 567"),
        (12.25, 1, False, "12,2"),
    ],
)
def test_swedish_number_format(value: float, decimals: int, signed: bool, text: str) -> None:
    assert format_number_sv(value, decimals, signed) == text
    assert "-" not in format_number_sv(value, decimals, signed)


def test_amounts_switch_to_tkr_when_everything_is_below_one_mnkr() -> None:
    assert Money.for_amounts(880_000, 800_000)(-80_000, signed=True) == f"{MINUS}80 tkr"
    assert Money.for_amounts(1_000_000, 5)(1_049_999) == "1,0 mnkr"
    assert format_pct(-36.26, signed=True) == f"{MINUS}36,3 %"


def test_shipped_rules_on_the_demo_like_overrun(domain: DomainConfig) -> None:
    from services.config.rules import load_rules

    shipped = load_rules(DEFAULT_CONFIG_DIR, domain)
    nodes = [
        annual(domain, "VON", 1_051e6, 1_092e6),
        annual(domain, "AO", 590e6, 625e6),
        annual(domain, "1110", 115.2e6, 118.0e6),
        annual(domain, "3110", 93e6, 93.2e6),
    ]
    events = evaluate(shipped, org(*nodes), None, AlertBook(), domain, NOW)
    assert {(e.rule, e.org_unit, e.severity) for e in events} == {
        ("budget_deviation", "VON", "critical"),
        ("budget_deviation", "AO", "critical"),  # −35 mnkr, −5,9 %
        ("budget_deviation", "1110", "warning"),  # −2,8 mnkr, −2,4 %
    }


def test_a_month_within_its_seasonal_budget_is_not_above_expected_even_if_the_forecast_was_low(
    domain: DomainConfig,
) -> None:
    """Last month's forecast missed the summer peak (a narrow interval at 1,0 mnkr), but July
    stays within its own budget (1,6 mnkr + 10 %): the limit is the higher of the two."""
    narrow = org(
        node(
            domain,
            "1110",
            "substitutes",
            actual=[1.0e6] * 6,
            budget=SUMMER_BUDGET,
            path=[1.0e6] * 6,
            sigma=10_000 * math.sqrt(6) / Z80,
        )
    )
    ruleset = rules(SUBSTITUTES)
    assert run(ruleset, AlertBook(), domain, july(domain, 1.7e6), previous=narrow) == []
    fired = run(ruleset, AlertBook(), domain, july(domain, 1.9e6), previous=narrow)
    assert transitions(fired) == [("firing", "warning")]
    assert "mot budget för månaden 1,6 mnkr" in fired[0].message


def test_last_years_firing_alerts_are_resolved_when_the_rules_move_to_a_new_year(
    domain: DomainConfig,
) -> None:
    ruleset = rules(TWO_TIERS)
    book = AlertBook()
    [fired] = run(ruleset, book, domain, annual(domain, "1110", BUDGET, BUDGET + 2e6))
    assert resolve_earlier_years(ruleset, fired_year(fired), book, domain, NOW) == []
    [closed] = resolve_earlier_years(ruleset, fired_year(fired) + 1, book, domain, NOW)
    assert (closed.status, closed.severity, closed.sequence) == ("resolved", "warning", 2)
    assert closed.alert_id == fired.alert_id and closed.period == f"{fired_year(fired)}-12"
    assert closed.message == (
        f"Hemtjänst Norr: budgetavvikelse helår {fired_year(fired)} avslutat: året är stängt "
        f"(uppföljningen gäller nu {fired_year(fired) + 1}; utfallet redovisas i "
        "årsredovisningen)."
    )
    assert (closed.resolution, closed.year_closed) == ("year_closed", True)
    assert "åtgärdad" not in closed.message.lower()
    assert not book.firing()
    assert resolve_earlier_years(ruleset, fired_year(fired) + 1, book, domain, NOW) == []


def fired_year(event: AlertEvent) -> int:
    return int(event.alert_id.rsplit("|", 1)[1])


# --- lifecycle: worsened, improved, materiality, the closed year ---------------------------------

NAMND = TWO_TIERS | {"levels": ["namnd"]}
VON_BUDGET = 1_051.5e6


def von(domain: DomainConfig, forecast_mnkr: float, as_of: int) -> NodeForecast:
    return annual(domain, "VON", VON_BUDGET, forecast_mnkr * 1e6, as_of=as_of)


def test_a_firing_alert_that_grows_by_a_step_says_so_and_what_changed(domain: DomainConfig) -> None:
    ruleset, book = rules(NAMND), AlertBook()
    [fired] = run(ruleset, book, domain, von(domain, 1_055.4, 2))
    assert (fired.status, fired.severity, fired.change) == ("firing", "critical", None)
    assert fired.title == (
        "Vård- och omsorgsnämnden: prognos nettokostnad 2024 1 055,4 mnkr per februari, "
        "3,9 mnkr över budget"
    )
    # The step for the nämnd: 1 % of 1 051,5 mnkr = 10,5 mnkr. +9,9 mnkr is not yet news.
    assert run(ruleset, book, domain, von(domain, 1_065.3, 3)) == []
    [worse] = run(ruleset, book, domain, von(domain, 1_066.0, 3))
    assert (worse.status, worse.severity, worse.sequence) == ("worsened", "critical", 2)
    assert worse.change == "underskottet har ökat från 3,9 till 14,5 mnkr sedan februari"
    assert worse.message.endswith("Underskottet har ökat från 3,9 till 14,5 mnkr sedan februari.")
    assert worse.values["previous_value"] == pytest.approx(3.9e6)
    assert worse.values["excess"] == pytest.approx(14.5e6)
    assert book.firing()["budget_deviation|VON|total|2024"].status == "worsened"
    # The next step is measured from the last event: 14,5 → 25,0 is a step, → 24,9 is not.
    assert run(ruleset, book, domain, von(domain, 1_076.4, 4)) == []
    assert [e.status for e in run(ruleset, book, domain, von(domain, 1_094.6, 8))] == ["worsened"]
    # Better by a step but still critical: improved (the notifier puts it in digests only).
    [better] = run(ruleset, book, domain, von(domain, 1_080.0, 9))
    assert (better.status, better.severity) == ("improved", "critical")
    assert better.change == "underskottet har minskat från 43,1 till 28,5 mnkr sedan augusti"


def test_the_step_is_scaled_per_level_and_configurable(domain: DomainConfig) -> None:
    # Hemtjänst Norr, 96 mnkr: 1 % = 960 tkr (above the enhet's 100 tkr floor).
    small_step = rules(TWO_TIERS | {"step": {"pct": 0, "min": {"enhet": 300_000}}})
    book = AlertBook()
    run(small_step, book, domain, annual(domain, "1110", BUDGET, BUDGET + 1.0e6))
    [worse] = run(small_step, book, domain, annual(domain, "1110", BUDGET, BUDGET + 1.3e6))
    assert worse.status == "worsened"
    assert worse.change == "underskottet har ökat från 1,0 till 1,3 mnkr"  # same month
    default = rules(TWO_TIERS)
    book = AlertBook()
    run(default, book, domain, annual(domain, "1110", BUDGET, BUDGET + 1.0e6))
    assert run(default, book, domain, annual(domain, "1110", BUDGET, BUDGET + 1.9e6)) == []
    off = rules(TWO_TIERS | {"step": {"pct": 0, "min": 0}})
    book = AlertBook()
    run(off, book, domain, annual(domain, "1110", BUDGET, BUDGET + 1.0e6))
    assert run(off, book, domain, annual(domain, "1110", BUDGET, BUDGET + 2.9e6)) == []


def test_one_month_of_actuals_needs_a_material_deficit_for_the_namnd_flag(
    domain: DomainConfig,
) -> None:
    shipped_like = NAMND | {"thresholds": [{"severity": "warning", "sek": 1e7, "pct": 2}]}
    # January 2023 in the demo: −0,4 % after one month. Not a plan för ekonomi i balans yet.
    assert run(rules(shipped_like), AlertBook(), domain, von(domain, 1_055.4, 1)) == []
    # 1 % or more in January, or −0,4 % with two closed months: critical.
    january = run(rules(shipped_like), AlertBook(), domain, von(domain, 1_062.1, 1))
    assert transitions(january) == [("firing", "critical")]
    february = run(rules(shipped_like), AlertBook(), domain, von(domain, 1_055.4, 2))
    assert transitions(february) == [("firing", "critical")]
    earlier = rules(shipped_like | {"namnd_deficit_min_months": 1})
    assert transitions(run(earlier, AlertBook(), domain, von(domain, 1_055.4, 1))) == [
        ("firing", "critical")
    ]


def test_after_the_december_close_the_texts_say_utfall(domain: DomainConfig) -> None:
    ruleset, book = rules(NAMND), AlertBook()
    [december] = run(ruleset, book, domain, von(domain, 1_091.4, 12))
    assert december.year_closed is True
    assert december.method == "test"
    assert december.message.startswith(
        "Vård- och omsorgsnämnden: utfall nettokostnad 2024 1 091,4 mnkr mot budget 1 051,5 mnkr"
    )
    assert "prognos" not in december.message
    assert december.title == (
        "Vård- och omsorgsnämnden: utfall nettokostnad 2024 1 091,4 mnkr, 39,9 mnkr över budget"
    )
    [august] = run(ruleset, AlertBook(), domain, von(domain, 1_091.4, 8))
    assert august.year_closed is False


def test_resolved_says_within_limits_never_atgardad(domain: DomainConfig) -> None:
    ruleset, book = rules(TWO_TIERS), AlertBook()
    run(ruleset, book, domain, annual(domain, "1110", BUDGET, BUDGET + 2e6))
    [back] = run(ruleset, book, domain, annual(domain, "1110", BUDGET, BUDGET))
    assert (back.status, back.resolution) == ("resolved", "within_limits")
    assert back.title.startswith("Hemtjänst Norr: åter inom gränserna, ")
    assert "åtgärd" not in (back.message + back.title).lower()
    assert back.values["previous_value"] == pytest.approx(2e6)


def test_events_carry_the_documented_values(domain: DomainConfig) -> None:
    subs = node(
        domain,
        "AO",
        "substitutes",
        actual=[7.0e6] * 8,
        budget=[46.5e6 / 8] * 8 + [0.0] * 4,
        path=[6.0e6] * 4,
        sigma=1e6,
    )
    spec = OVERTIME_YTD | {
        "id": "substitutes_ytd",
        "category": "substitutes",
        "subject": "vikarier",
    }
    [event] = run(rules(spec), AlertBook(), domain, subs)
    assert (
        event.title == "Äldreomsorg: vikarier 56,0 mnkr t.o.m. augusti 2024, 9,5 mnkr över budget"
    )
    for key in ("budget", "actual_ytd", "budget_ytd", "forecast", "low", "high", "deviation"):
        assert key in event.values, key
    assert event.values["forecast"] == pytest.approx(80e6)
    assert event.method == "test"
