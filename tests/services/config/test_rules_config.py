"""config/rules.yaml: the shipped file loads; a broken one fails with file, key and problem; and
forecasts.deviations stays pure (no services, no Kafka)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.domain import DomainConfig
from core.errors import ConfigError
from core.hierarchy import LEVELS
from core.settings import DEFAULT_CONFIG_DIR, REPO_ROOT
from forecasts.deviations import RULE_KINDS, RuleSet
from services.config.rules import load_rules


def test_shipped_rules_load_with_every_kind(domain: DomainConfig) -> None:
    ruleset = load_rules(DEFAULT_CONFIG_DIR, domain)
    assert {rule.kind for rule in ruleset.rules} == set(RULE_KINDS)
    staffing = [rule for rule in ruleset.rules if rule.kind == "staff_cost_ytd"]
    assert {rule.category for rule in staffing} == {  # type: ignore[attr-defined]
        "overtime",
        "substitutes",
        "sick_pay",
        "agency_staff",
    }
    assert all(rule.enabled and rule.title for rule in ruleset.rules)
    budget = ruleset.rules[0]
    assert budget.kind == "budget_deviation"
    assert set(budget.levels) == {"namnd", "avdelning", "enhet"}
    assert [t.severity for t in budget.thresholds] == ["info", "warning", "critical"]


def test_a_staffing_category_the_municipality_lacks_is_a_warning_not_an_error(
    tmp_path: Path, domain: DomainConfig
) -> None:
    from dataclasses import replace

    (tmp_path / "rules.yaml").write_text(
        (DEFAULT_CONFIG_DIR / "rules.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    without = replace(
        domain, categories={k: v for k, v in domain.categories.items() if k != "agency_staff"}
    )
    ruleset = load_rules(tmp_path, without)
    assert ruleset.absent_categories(without) == [("agency_staff_ytd", "agency_staff")]


def test_rule_levels_are_the_org_levels() -> None:
    schema = RuleSet.model_json_schema()
    level_enum = next(
        d["enum"]
        for name, d in schema["$defs"].items()
        if name == "BudgetDeviationRule"
        for d in [d["properties"]["levels"]["items"]]
    )
    assert tuple(level_enum) == LEVELS


RULE = """\
rules:
  - id: budget_deviation
    kind: budget_deviation
    title: Budgetavvikelse helår
    thresholds:
      - {severity: warning, sek: 1000000}
"""


def broken(tmp_path: Path, domain: DomainConfig, text: str) -> str:
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_rules(tmp_path, domain)
    assert caught.value.file == str(tmp_path / "rules.yaml")
    assert str(caught.value).startswith(f"config error in {tmp_path / 'rules.yaml'}: ")
    return f"{caught.value.key}: {caught.value.problem}"


def rule_with(*lines: str) -> str:
    return RULE + "".join(f"    {line}\n" for line in lines)


STOP = """\
rules:
  - id: overtime_after_stop
    kind: overtime_after_stop
    title: Övertid efter övertidsstopp
    stops:
      - {{org_unit: {unit}, from: {day}}}
"""

CASES = {
    "negative pct": (
        RULE.replace("sek: 1000000}", "sek: 1000000, pct: -1}"),
        "rules[0].thresholds[0].pct: must be >= 0, got -1",
    ),
    "unknown kind": (
        RULE.replace("kind: budget_deviation", "kind: budget_overrun"),
        "rules[0].kind: unknown rule kind 'budget_overrun'; known: " + ", ".join(RULE_KINDS),
    ),
    "missing kind": (RULE.replace("    kind: budget_deviation\n", ""), "rules[0].kind: missing"),
    "unknown key": (rule_with("treshold: 3"), "rules[0].treshold: unknown key"),
    "missing title": (
        RULE.replace("    title: Budgetavvikelse helår\n", ""),
        "rules[0].title: missing",
    ),
    "unknown level": (
        rule_with("levels: [enhet, kommun]"),
        "rules[0].levels[1]: 'kommun' is not one of 'namnd', 'forvaltning', 'avdelning' or 'enhet'",
    ),
    "unknown severity": (
        RULE.replace("severity: warning", "severity: high"),
        "rules[0].thresholds[0].severity: 'high' is not one of 'info', 'warning' or 'critical'",
    ),
    "tier without limits": (
        RULE.replace("{severity: warning, sek: 1000000}", "{severity: warning}"),
        "rules[0].thresholds[0]: a tier needs sek or pct",
    ),
    "falling severities": (
        RULE + "      - {severity: info, sek: 3000000}\n",
        "rules[0].thresholds: severities must rise from tier to tier (info < warning < "
        "critical): tier 1 is 'info' after 'warning'",
    ),
    "no tiers": (
        RULE.replace("      - {severity: warning, sek: 1000000}\n", "").replace(
            "thresholds:", "thresholds: []"
        ),
        "rules[0].thresholds: at least one tier is needed",
    ),
    "hysteresis of 1": (rule_with("hysteresis: 1"), "rules[0].hysteresis: must be < 1, got 1"),
    "units on a cost rule": (
        RULE.replace("sek: 1000000", "units: 10"),
        "rules[0].thresholds[0].units: unknown key",
    ),
    "bad id": (
        RULE.replace("id: budget_deviation", "id: Budget|Deviation"),
        "rules[0].id: must match ^[a-z][a-z0-9_]*$, got 'Budget|Deviation'",
    ),
    "duplicate ids": (
        RULE + RULE.removeprefix("rules:\n"),
        "rules: rule id 'budget_deviation' is used by rules[0] and rules[1]",
    ),
    "unknown category": (
        rule_with("category: vikarier"),
        "rules[0].category: unknown category 'vikarier'; known: total, agency_staff, capital, "
        "other_costs, overtime, premises, purchased_care, revenue_fees, revenue_grants, "
        "revenue_other, salaries, sick_pay, substitutes, transfers",
    ),
    "unknown measure": (
        """\
        rules:
          - id: placement_days_over_plan
            kind: placement_days_over_plan
            title: Vårddygn över plan
            measures: [placement_days_hvb, placement_days_xyz]
            thresholds: [{severity: warning, units: 30}]
        """,
        "rules[0].measures[1]: unknown measure 'placement_days_xyz'; known: ",
    ),
    "unknown org_unit in a stop": (
        STOP.format(unit="ZZ-9", day="2024-09-01"),
        "rules[0].stops[0].org_unit: unknown org_unit 'ZZ-9' (not in org.yaml)",
    ),
    "bad date": (
        STOP.format(unit="AO", day="2024-13-01"),
        "rules[0].stops[0].from: Input should be a valid date or datetime, month value is "
        "outside expected range of 1-12 (got '2024-13-01')",
    ),
    "not a date": (
        STOP.format(unit="AO", day="snart"),
        "rules[0].stops[0].from: Input should be a valid date or datetime, input is too short "
        "(got 'snart')",
    ),
    "a rule that is not a mapping": (
        "rules:\n  - budget_deviation\n",
        "rules[0]: must be a mapping, got str",
    ),
    "empty file": ("", "(top level): must be a mapping, got NoneType"),
    "rules not a list": ("rules: {a: 1}\n", "rules: must be a list, got dict"),
    "share of 0": (
        """\
        rules:
          - id: sick_leave_share
            kind: sick_leave_share
            title: Hög sjukfrånvaro
            thresholds: [{severity: warning, pct: 0}]
        """,
        "rules[0].thresholds[0].pct: must be > 0, got 0",
    ),
    "YAML syntax": (
        RULE + "      - {severity: critical, sek: 3000000\n",
        "line 8, column 1: not valid YAML: expected ',' or '}', but got '<stream end>' "
        "(while parsing a flow mapping that starts on line 7)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_rules_name_the_key_and_problem(
    case: str, tmp_path: Path, domain: DomainConfig
) -> None:
    text, expected = CASES[case]
    got = broken(tmp_path, domain, text)
    if expected.endswith("known: "):
        assert got.startswith(expected)
    else:
        assert got == expected


def test_yaml_error_names_the_line_of_a_bad_indent(tmp_path: Path, domain: DomainConfig) -> None:
    text = RULE.replace("    title: Budgetavvikelse helår", "   title: Budgetavvikelse helår")
    assert broken(tmp_path, domain, text).startswith("line 4, column 4: not valid YAML")


def test_missing_rules_file(tmp_path: Path, domain: DomainConfig) -> None:
    with pytest.raises(ConfigError, match=r"rules\.yaml: \(file\): file not found"):
        load_rules(tmp_path, domain)


# --- purity --------------------------------------------------------------------------------------

DEVIATIONS = REPO_ROOT / "forecasts" / "deviations.py"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_deviations_imports_no_services_no_streams_and_the_output_records_of_the_contract() -> None:
    modules = imported_modules(DEVIATIONS)
    assert "contract.output_records" in modules  # the check below checks something
    assert not {m for m in modules if m.split(".")[0] in ("services", "streams")}


def test_importing_deviations_loads_no_services_and_no_kafka() -> None:
    code = (
        "import sys, forecasts.deviations\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('services', 'faust', 'aiokafka', 'kafka'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
