"""The scenario generator: determinism, contract shape, designed totals, the overrun's timing."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contract.pii import contains_personal_id
from contract.validation import parse_event
from core.domain import DomainConfig
from core.swedish import format_number_sv
from services.demo.scenario import (
    BUDGET_MNKR,
    Scenario,
    avdelning_of,
    generate_scenario,
    read_jsonl,
    split_integer,
    write_scenario,
)

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _by_avdelning(values: dict[str, int], domain: DomainConfig) -> dict[str, int]:
    out: dict[str, int] = {}
    for unit, amount in values.items():
        avd = avdelning_of(domain, unit)
        out[avd] = out.get(avd, 0) + amount
    return out


def _budget_by_unit(scn: Scenario, year: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for (unit, _), annual in scn.cost_budget(year).items():
        out[unit] = out.get(unit, 0) + annual
    return out


def _periodised_budget_ytd(scn: Scenario, domain: DomainConfig, year: int, month: int) -> int:
    return round(
        sum(
            sum(domain.periodise(cat, annual)[:month])
            for (unit, cat), annual in scn.cost_budget(year).items()
            if avdelning_of(domain, unit) == "AO"
        )
    )


def test_same_seed_same_events_other_seed_other_amounts(domain: DomainConfig) -> None:
    first = generate_scenario(seed=7, domain=domain)
    again = generate_scenario(seed=7, domain=domain)
    other = generate_scenario(seed=8, domain=domain)
    assert first.all_events() == again.all_events()
    assert [e["event_id"] for e in first.all_events()] == [
        e["event_id"] for e in other.all_events()
    ]
    assert [c["amount_sek"] for c in first.costs] != [c["amount_sek"] for c in other.costs]


def test_event_ids_are_unique_and_deterministic(scenario: Scenario) -> None:
    ids = [e["event_id"] for e in scenario.all_events()]
    assert len(ids) == len(set(ids))
    assert "scn-cost-1110-substitutes-2024-03" in ids
    assert "scn-budget-2024-1110-substitutes-KF" in ids


def test_events_follow_contract_v1_and_the_config(scenario: Scenario, domain: DomainConfig) -> None:
    enheter = {n.id for n in domain.org.nodes.values() if n.level == "enhet"}
    for cost in scenario.costs:
        assert cost["type"] == "cost" and PERIOD.match(cost["period"])
        assert cost["org_unit"] in enheter
        category = domain.categories[cost["category"]]
        assert isinstance(cost["amount_sek"], int)
        # Revenues are booked negative, costs positive.
        assert (cost["amount_sek"] <= 0) == (category.kind == "revenue"), cost
    for volume in scenario.volumes:
        assert volume["type"] == "volume" and PERIOD.match(volume["period"])
        assert volume["unit"] == domain.measures[volume["measure"]].unit
        assert volume["value"] >= 0
    for budget in scenario.budgets:
        assert budget["type"] == "budget" and budget["version"] == "KF"
        assert ("category" in budget) != ("measure" in budget)
        if "monthly" in budget:
            assert len(budget["monthly"]) == 12 and sum(budget["monthly"]) == budget["annual"]
    # Four years of history before the forecast year, as a first load from an ERP.
    assert scenario.years == [2020, 2021, 2022, 2023, 2024]
    assert [c["period"] for c in scenario.period_closes] == [
        f"{y}-{m:02d}" for y in scenario.years for m in range(1, 13)
    ]


def test_events_validate_against_the_stream_contract(
    scenario: Scenario, domain: DomainConfig
) -> None:
    for event in scenario.all_events():
        parsed = parse_event(json.dumps(event).encode(), domain)
        assert parsed.event_id == event["event_id"]
        assert parsed.type == event["type"]


def test_no_personnummer_anywhere(scenario: Scenario) -> None:
    for event in scenario.all_events():
        assert not contains_personal_id(json.dumps(event)), event["event_id"]
    # The guard itself finds a valid personnummer in the same kind of text.
    assert contains_personal_id(json.dumps({"event_id": "scn-cost-19121212-1212"}))


def test_yearly_totals_are_budget_plus_the_designed_deviation(
    scenario: Scenario, domain: DomainConfig
) -> None:
    for year in scenario.years:
        budget = _by_avdelning(_budget_by_unit(scenario, year), domain)
        actual = _by_avdelning(scenario.actual_by_unit(year), domain)
        designed: dict[str, int] = {}
        for (y, unit, _), dev in scenario.designed_deviation.items():
            if y == year:
                avd = avdelning_of(domain, unit)
                designed[avd] = designed.get(avd, 0) + dev
        assert set(budget) == {"AO", "LSS", "IFO"}
        for avd in budget:
            assert actual[avd] == budget[avd] + designed[avd]
    # The last year's nämnd budget is the documented ≈ 1 051 mnkr; the year before is 4 % lower.
    last = sum(_budget_by_unit(scenario, 2024).values())
    assert last == pytest.approx(sum(sum(c.values()) for c in BUDGET_MNKR.values()) * 1e6, abs=1e4)
    assert sum(_budget_by_unit(scenario, 2023).values()) == pytest.approx(last / 1.04, rel=1e-4)
    assert sum(_budget_by_unit(scenario, 2020).values()) == pytest.approx(last / 1.04**4, rel=1e-4)


def test_first_year_is_close_to_budget_and_last_year_overruns_like_enkoping(
    scenario: Scenario, domain: DomainConfig
) -> None:
    for year in scenario.years:
        budget = _by_avdelning(_budget_by_unit(scenario, year), domain)
        actual = _by_avdelning(scenario.actual_by_unit(year), domain)
        deviation = {a: (budget[a] - actual[a]) / budget[a] for a in budget}
        total = (sum(budget.values()) - sum(actual.values())) / sum(budget.values())
        if year < 2024:
            assert all(abs(d) < 0.015 for d in deviation.values()), deviation
            assert abs(total) < 0.01
        else:
            assert -0.045 < total < -0.035, total  # Enköping 2024: −4,2 %
            assert deviation["AO"] < -0.05
            assert deviation["LSS"] < 0 < deviation["IFO"]


def test_overrun_is_substitutes_and_overtime_in_aldreomsorg(
    scenario: Scenario, domain: DomainConfig
) -> None:
    ao_dev: dict[str, int] = {}
    for (year, unit, category), dev in scenario.designed_deviation.items():
        if year == 2024 and avdelning_of(domain, unit) == "AO":
            ao_dev[category] = ao_dev.get(category, 0) + dev
    assert ao_dev["substitutes"] > 28e6
    assert ao_dev["overtime"] > 5e6
    assert sum(ao_dev.values()) == pytest.approx(39.5e6, abs=2.5e6)


def test_overrun_is_visible_by_april_and_grows(scenario: Scenario, domain: DomainConfig) -> None:
    ytd_deviation = []
    for month in range(1, 13):
        actual = sum(
            v
            for u, v in scenario.actual_by_unit(2024, month).items()
            if avdelning_of(domain, u) == "AO"
        )
        budget = _periodised_budget_ytd(scenario, domain, 2024, month)
        ytd_deviation.append((budget - actual) / budget)
    assert ytd_deviation[3] < -0.025  # April: clearly over the periodised budget
    assert ytd_deviation[2] < -0.015  # already at the March forecast ("prognosen per mars")
    assert ytd_deviation[7] < ytd_deviation[3] < ytd_deviation[0]


def test_history_years_carry_surprises_of_their_own(scenario: Scenario) -> None:
    """Not budget plus noise: some staffing series end a history year far from their budget,
    and the overrun year's designed deviations replace the history's kind of surprise."""
    budget = {y: scenario.cost_budget(y) for y in scenario.years}
    far = [
        (y, unit, cat)
        for (y, unit, cat), dev in scenario.designed_deviation.items()
        if y < 2024
        and cat in ("substitutes", "overtime", "sick_pay")
        and abs(dev) > 0.04 * abs(budget[y][(unit, cat)])
    ]
    assert len(far) >= 10
    assert len({y for y, _, _ in far}) == 4
    calm = [
        dev / budget[y][(unit, cat)]
        for (y, unit, cat), dev in scenario.designed_deviation.items()
        if y < 2024 and cat in ("salaries", "premises")
    ]
    assert max(abs(d) for d in calm) < 0.02


def test_years_counts_the_forecast_year_and_ends_in_2024(domain: DomainConfig) -> None:
    short = generate_scenario(seed=1, years=2, domain=domain)
    assert short.years == [2023, 2024] and short.overrun_year == 2024
    assert generate_scenario(seed=1, start_year=2010, years=1, domain=domain).years == [2010]


def test_without_overrun_the_last_year_keeps_its_budget(domain: DomainConfig) -> None:
    calm = generate_scenario(seed=2024, overrun=False, domain=domain)
    budget = sum(_budget_by_unit(calm, 2024).values())
    actual = sum(calm.actual_by_unit(2024).values())
    assert abs(budget - actual) / budget < 0.01
    assert calm.overruns == [] and calm.overrun_year is None


def _volume(scn: Scenario, unit: str, measure: str, year: int) -> list[float]:
    return [
        v["value"]
        for v in scn.volumes
        if v["org_unit"] == unit and v["measure"] == measure and v["period"].startswith(str(year))
    ]


def _plan(scn: Scenario, unit: str, measure: str, year: int) -> list[float]:
    return next(
        b["monthly"]
        for b in scn.budgets
        if b["year"] == year and b["org_unit"] == unit and b.get("measure") == measure
    )


def test_home_care_hours_run_above_plan_from_april(scenario: Scenario) -> None:
    for unit in ("1110", "1120"):
        actual = _volume(scenario, unit, "home_care_hours", 2024)
        plan = _plan(scenario, unit, "home_care_hours", 2024)
        assert sum(actual[8:]) > 1.06 * sum(plan[8:])
        assert abs(sum(actual[:3]) / sum(plan[:3]) - 1) < 0.04
        year1 = _volume(scenario, unit, "home_care_hours", 2023)
        assert abs(sum(year1) / sum(_plan(scenario, unit, "home_care_hours", 2023)) - 1) < 0.02


def test_seasonality_summer_substitutes_and_overtime_booked_after(scenario: Scenario) -> None:
    def amount(unit: str, category: str, period: str) -> int:
        return next(
            c["amount_sek"]
            for c in scenario.costs
            if c["org_unit"] == unit and c["category"] == category and c["period"] == period
        )

    for unit in ("1110", "1210"):
        assert amount(unit, "substitutes", "2023-07") > 2 * amount(unit, "substitutes", "2023-03")
        # Christmas overtime is paid in January, not in December.
        assert amount(unit, "overtime", "2023-01") > 1.5 * amount(unit, "overtime", "2023-12")
    # IFO grants arrive with the year-end settlement.
    assert amount("3110", "revenue_grants", "2023-12") < 3 * amount(
        "3110", "revenue_grants", "2023-06"
    )


def test_split_integer_sums_exactly() -> None:
    parts = split_integer(1_000_001, [1, 1, 1])
    assert sum(parts) == 1_000_001 and max(parts) - min(parts) == 1
    negative = split_integer(-38_300_000, [0.8] * 11 + [3.2])
    assert sum(negative) == -38_300_000 and negative[-1] == min(negative)


def test_swedish_number_format() -> None:
    assert format_number_sv(-43.56) == "\u221243,6"
    assert format_number_sv(1086.43) == "1 086,4"
    assert format_number_sv(-0.04) == "0,0"


def test_files_round_trip_and_csv_layouts(scenario: Scenario, tmp_path: Path) -> None:
    paths = write_scenario(scenario, tmp_path / "jsonl")
    assert [p.name for p in paths] == [
        "budgets.jsonl",
        "costs.jsonl",
        "volumes.jsonl",
        "period_close.jsonl",
    ]
    assert read_jsonl(paths) == scenario.all_events()
    write_scenario(scenario, tmp_path / "csv", "csv")
    with (tmp_path / "csv" / "costs.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["event_id", "org_unit", "period", "category", "amount_sek"]
    assert sum(int(r["amount_sek"]) for r in rows) == sum(c["amount_sek"] for c in scenario.costs)
    with (tmp_path / "csv" / "volumes.csv").open(encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == [
            "event_id",
            "org_unit",
            "period",
            "measure",
            "value",
            "unit",
        ]
    with (tmp_path / "csv" / "budgets.csv").open(encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header[:4] == ["event_id", "org_unit", "year", "category"]
    assert header[-12:] == [f"m{m:02d}" for m in range(1, 13)]
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_cli_writes_files_and_prints_the_story(tmp_path: Path) -> None:
    from services.cli import app

    result = CliRunner().invoke(app, ["scenario", "--out", str(tmp_path), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "Överskridande 2024" in result.output
    assert "VON" in result.output
    events = read_jsonl(sorted(tmp_path.glob("*.jsonl")))
    assert len(events) == len(generate_scenario(seed=3).all_events())


def test_cli_years_counts_the_forecast_year(tmp_path: Path) -> None:
    from services.cli import app

    result = CliRunner().invoke(app, ["scenario", "--out", str(tmp_path), "--years", "2"])
    assert result.exit_code == 0, result.output
    assert "2023–2024" in result.output
    closes = read_jsonl([tmp_path / "period_close.jsonl"])
    assert len(closes) == 24 and closes[0]["period"] == "2023-01"


def test_cli_rejects_an_unknown_format(tmp_path: Path) -> None:
    from services.cli import app

    result = CliRunner().invoke(app, ["scenario", "--out", str(tmp_path), "--format", "xml"])
    assert result.exit_code != 0
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_publish_accepts_every_written_row(
    scenario: Scenario, domain: DomainConfig, tmp_path: Path, file_format: str
) -> None:
    from services.batch.publish import read_events

    paths = write_scenario(scenario, tmp_path, file_format)
    loaded = [read_events(path, domain) for path in paths]
    assert [r for f in loaded for r in f.rejections] == []
    sent_ids = [event["event_id"] for f in loaded for _, event in f.events]
    assert sent_ids == [e["event_id"] for e in scenario.all_events()]
    costs = next(f for f in loaded if f.path.name.startswith("costs"))
    assert sum(e["amount_sek"] for _, e in costs.events) == sum(
        c["amount_sek"] for c in scenario.costs
    )
