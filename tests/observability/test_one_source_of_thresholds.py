"""One source of thresholds (issue 13, item 6): the business deviation alerts are defined once, in
config/rules.yaml, and evaluated by the worker; Prometheus and Grafana show them from
``budgetvakt_alerts_firing`` and compare only service metrics with constants.

What counts as a business threshold written twice, anywhere in the Prometheus rules (alerts,
recording rules, alert-text queries), the Grafana alert rules and the dashboards:

- any comparison (``== != < > <= >=``, a Grafana threshold or math condition) that reads a
  business series: a money or volume gauge of the worker (one with a ``category`` or ``measure``
  label) or a recording rule built from one. That covers a deviation against a constant
  (``< -1e6``), against a scaled budget (``< -0.01 * budget``), its sign (``< 0``: the
  minusprognos) and one series against another (``forecast_high > budget``). The only exception
  is a division guard: ``/ (budget != 0)`` or ``/ (plan > 0)``, which makes a percentage, not an
  alert;
- a constant equal to a limit of config/rules.yaml (sek in kr, tkr or mnkr; pct as per cent, as
  a fraction or as 100 + pct; units) compared with anything but a metric known to be a service
  metric: this catches a business quantity the first rule does not know yet;
- a dashboard colour step on a business panel other than the reference (0 = budget − prognos,
  100 = 100 % of budget or plan).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from core.hierarchy import OrgNode, OrgTree
from streams.aggregation import ActiveState
from streams.metrics import ForecastCollector, StateCollector, WorkerMetrics
from tests.observability.fixtures import CONFIG_DIR, Dashboard, load_yaml
from tests.observability.grafana import dashboard_expressions, panels
from tests.observability.promql import (
    Binary,
    Node,
    Selector,
    comparisons,
    constant_value,
    grafana_to_promql,
    parse,
    selected_names,
    template_queries,
    walk,
)

RULES_YAML = CONFIG_DIR / "rules.yaml"

# Metrics that say how the service runs, not what the money does: rules may compare these with
# constants. Recording rules count as service metrics when everything they read is one.
SERVICE_METRICS = frozenset(
    {
        "up",
        "ALERTS",
        "budgetvakt_alerts_firing",  # the worker's decision, compared with 0 only
        "budgetvakt_consumer_lag",
        "budgetvakt_events_total",
        "budgetvakt_dead_letter_total",
        "budgetvakt_batch_failures_total",
        "budgetvakt_forecast_runs_total",
        "budgetvakt_forecast_failures_total",
        "budgetvakt_forecast_duration_seconds_bucket",
        "budgetvakt_snapshot_failures_total",
        "budgetvakt_late_events_total",
        "budgetvakt_unmapped_org_unit",
        "budgetvakt_notifier_failures_total",
        "budgetvakt_notifier_dead_letter_total",
        "budgetvakt_notifier_sent_total",
        "budgetvakt_notifier_delivery_seconds_bucket",
        "budgetvakt_pii_blocked_total",
        # Months (1-12), not money: "the forecast lags the actuals", "the year is open".
        "budgetvakt_actual_last_month",
        "budgetvakt_forecast_as_of_month",
    }
)
# Reference series: a division by them is guarded with "!= 0" or "> 0".
REFERENCE_SERIES = frozenset(
    {
        "budgetvakt:budget_full_year_sek:sum",
        "budgetvakt:budget_pro_rata_ytd_sek",
        "budgetvakt:volume_budget_full_year:sum",
    }
)
# Where the limits of config/rules.yaml are written (rule tiers, the lifecycle step, the nämnd's
# materiality and the month rule's tolerances).
LIMIT_KEYS = frozenset(
    {
        "sek",
        "pct",
        "units",
        "min",
        "tolerance",
        "max_above_budget",
        "namnd_deficit_min_pct",
        "namnd_deficit_early_pct",
    }
)
COLOUR_REFERENCES = frozenset({0.0, 100.0})


# --- What is a business series ------------------------------------------------------------------


def worker_business_gauges() -> set[str]:
    """The worker's money and volume gauges: every family with a category or measure label."""
    org = OrgTree({"X": OrgNode("X", "X", "namnd", None)})
    families = [
        *StateCollector(ActiveState(), org).describe(),
        *ForecastCollector(lambda: None).describe(),
    ]
    # GaugeMetricFamily keeps its label names in _labelnames (prometheus_client has no getter).
    return {f.name for f in families if {"category", "measure"} & set(f._labelnames)}


def _recording_rules(*docs: dict[str, Any]) -> dict[str, set[str]]:
    """Recording rule → the names its expressions read (a name can be recorded several times)."""
    reads: dict[str, set[str]] = {}
    for doc in docs:
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    reads.setdefault(rule["record"], set()).update(
                        selected_names(parse(rule["expr"]))
                    )
    return reads


def _closure(seed: set[str], reads: dict[str, set[str]], every: bool) -> set[str]:
    """``seed`` plus the recording rules that read (any / only) names already in the set."""
    known = set(seed)
    while True:
        grown = {
            record
            for record, names in reads.items()
            if record not in known and names and (names <= known if every else bool(names & known))
        }
        if not grown:
            return known
        known |= grown


@dataclass(frozen=True)
class Classification:
    business: frozenset[str]
    service: frozenset[str]


@pytest.fixture(scope="module")
def classification(rules_doc: dict[str, Any], info_rules_doc: dict[str, Any]) -> Classification:
    reads = _recording_rules(rules_doc, info_rules_doc)
    info = {r for r, names in reads.items() if not names}  # vector(1): constant info series
    return Classification(
        business=frozenset(_closure(worker_business_gauges(), reads, every=False)),
        service=frozenset(_closure(set(SERVICE_METRICS) | info, reads, every=True)),
    )


def test_the_business_series_are_the_money_and_volume_gauges_and_what_is_built_on_them(
    classification: Classification,
) -> None:
    assert {
        "budgetvakt_forecast_deviation_sek",
        "budgetvakt_forecast_full_year_sek",
        "budgetvakt_forecast_high_sek",
        "budgetvakt_actual_ytd_sek",
        "budgetvakt_budget_full_year_sek",
        "budgetvakt_volume_forecast_full_year",
        "budgetvakt:forecast_deviation_sek:sum",
        "budgetvakt:forecast_deviation:percent",
        "budgetvakt:actual_ytd_vs_pro_rata:percent",
        "budgetvakt:volume_forecast_over_plan:percent",
    } <= classification.business
    assert "budgetvakt:consumer_lag:sum" in classification.service
    assert "budgetvakt:forecast_year_open" in classification.service
    assert classification.business & classification.service == set()
    assert SERVICE_METRICS & classification.business == set()


def test_the_worker_exports_its_alerts_per_rule_severity_and_unit() -> None:
    # Budgetlarm (rules.yml) and the Grafana copy group by exactly these labels.
    metrics = WorkerMetrics(ActiveState(), OrgTree({"X": OrgNode("X", "X", "namnd", None)}))
    assert metrics.alerts_firing._labelnames == ("rule", "severity", "org_unit")


# --- The checks ---------------------------------------------------------------------------------


def _is_division_guard(comparison: Binary, parent: Binary | None) -> bool:
    """``x / (budget != 0)`` or ``x / (plan > 0)``: a percentage's guard, not an alert."""
    return (
        parent is not None
        and parent.op == "/"
        and parent.rhs is comparison
        and comparison.op in {"!=", ">"}
        and isinstance(comparison.lhs, Selector)
        and comparison.lhs.name in REFERENCE_SERIES
        and constant_value(comparison.rhs) == 0
    )


def business_comparisons(expr: str, business: frozenset[str]) -> list[str]:
    """The comparisons in ``expr`` that read a business series, as readable text."""
    found = []
    for comparison, parent in comparisons(parse(expr)):
        names = selected_names(comparison)
        if names & business and not _is_division_guard(comparison, parent):
            found.append(f"{sorted(names & business)} {comparison.op} …")
    return found


def _constants_in(node: Node) -> Iterator[float]:
    for current, _ in walk(node):
        value = constant_value(current)
        if value is not None:
            yield value


def rules_yaml_limits() -> set[float]:
    """Every limit written in config/rules.yaml (0 left out: "> 0" is everywhere)."""
    limits: set[float] = set()

    def visit(node: Any, key: str | None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                # The values of "min: {namnd: 500000, …}" are limits too.
                visit(v, key if key == "min" else k)
        elif isinstance(node, list):
            for item in node:
                visit(item, key)
        elif key in LIMIT_KEYS and isinstance(node, int | float) and not isinstance(node, bool):
            limits.add(float(node))

    visit(yaml.safe_load(RULES_YAML.read_text(encoding="utf-8")), None)
    return limits - {0.0}


def _written_as(limit: float) -> set[float]:
    """The ways a limit can be written in PromQL: kr, tkr, mnkr; per cent, fraction, 100 + pct."""
    return {limit, limit / 1e3, limit / 1e6, limit / 100, 100 + limit, 1 + limit / 100}


def limit_constants(
    expr: str, service: frozenset[str], limits: set[float]
) -> list[tuple[float, list[str]]]:
    """Constants of comparisons in ``expr`` that equal a rules.yaml limit and are compared with
    something that is not a known service metric."""
    written = {round(abs(v), 9) for limit in limits for v in _written_as(limit)}
    found = []
    for comparison, _ in comparisons(parse(expr)):
        names = selected_names(comparison)
        if names and names <= service:
            continue
        for value in _constants_in(comparison):
            if round(abs(value), 9) in written:
                found.append((value, sorted(names - service)))
    return found


# --- Where the expressions are ------------------------------------------------------------------


@dataclass(frozen=True)
class Compared:
    where: str
    promql: str  # a PromQL expression, or for a Grafana condition the query it compares
    constants: tuple[float, ...] = ()  # a Grafana condition's constants (its evaluator params)


def prometheus_expressions(rules_doc: dict[str, Any]) -> Iterator[Compared]:
    for group in rules_doc["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            yield Compared(f"rules.yml: {name}", rule["expr"])
            for text in rule.get("annotations", {}).values():
                for query in template_queries(text):
                    yield Compared(f"rules.yml: {name} (annotation)", query)


def _grafana_promql(data: dict[str, dict[str, Any]], ref: str) -> str:
    """The PromQL a Grafana alert expression computes: a query, reduce/resample of one, or math
    over them ($A written as the query it names)."""
    query = data[ref]
    model = query["model"]
    if query["datasourceUid"] != "__expr__":
        return grafana_to_promql(model["expr"])
    if model["type"] == "math":
        variable = re.compile(r"\$\{?(\w+)\}?")
        return variable.sub(lambda m: f"({_grafana_promql(data, m.group(1))})", model["expression"])
    return _grafana_promql(data, model["expression"])


def grafana_expressions(
    grafana_alert_rules: list[dict[str, Any]], dashboards: list[Dashboard]
) -> Iterator[Compared]:
    for rule in grafana_alert_rules:
        where = f"{rule['_file']}: {rule['title']!r}"
        data = {query["refId"]: query for query in rule["data"]}
        for ref, query in data.items():
            model = query["model"]
            if query["datasourceUid"] != "__expr__":
                yield Compared(f"{where} {ref}", grafana_to_promql(model["expr"]))
            elif model["type"] == "math":
                yield Compared(f"{where} {ref} (math)", _grafana_promql(data, ref))
            elif model["type"] in {"threshold", "classic_conditions"}:
                # Grafana's own comparison of a query's value with constants.
                for condition in model["conditions"]:
                    source = condition.get("query", {}).get("params", [model.get("expression")])
                    params = tuple(float(p) for p in condition["evaluator"]["params"])
                    compared = _grafana_promql(data, source[0])
                    yield Compared(f"{where} {ref} ({model['type']})", compared, params)
    for dashboard in dashboards:
        for expression in dashboard_expressions(dashboard.name, dashboard.doc):
            yield Compared(expression.where, expression.promql)


def _as_comparison(compared: Compared) -> str:
    """A Grafana condition as a PromQL comparison (the operator does not matter here: any
    comparison of a business query is a threshold)."""
    if not compared.constants:
        return compared.promql
    return " or ".join(f"({compared.promql}) > {value!r}" for value in compared.constants)


@pytest.fixture(scope="module")
def every_expression(
    rules_doc: dict[str, Any],
    grafana_alert_rules: list[dict[str, Any]],
    dashboards: list[Dashboard],
) -> list[Compared]:
    found = [
        *prometheus_expressions(rules_doc),
        *grafana_expressions(grafana_alert_rules, dashboards),
    ]
    assert len(found) > 100
    return found


def test_no_prometheus_or_grafana_expression_compares_a_business_series(
    every_expression: list[Compared], classification: Classification
) -> None:
    written_twice = {
        c.where: found
        for c in every_expression
        if (found := business_comparisons(_as_comparison(c), classification.business))
    }
    assert written_twice == {}, "business thresholds belong in config/rules.yaml only"


def test_no_rules_yaml_limit_is_compared_outside_the_service_metrics(
    every_expression: list[Compared], classification: Classification
) -> None:
    limits = rules_yaml_limits()
    # The tiers of the shipped rules, read from the file: 1 mnkr and 2 % for a budget deviation.
    assert {1_000_000.0, 2.0, 30.0} <= limits
    written_twice = {
        c.where: found
        for c in every_expression
        if (found := limit_constants(_as_comparison(c), classification.service, limits))
    }
    assert written_twice == {}


def test_business_alerts_read_only_the_workers_alerts(
    rules_doc: dict[str, Any],
    grafana_alert_rules: list[dict[str, Any]],
    classification: Classification,
) -> None:
    info = {"budgetvakt:org_unit_info", "budgetvakt:alert_rule_info"}
    budget = [
        (rule["alert"], selected_names(parse(rule["expr"])))
        for group in rules_doc["groups"]
        for rule in group["rules"]
        if "alert" in rule and rule["labels"]["kategori"] == "budget"
    ]
    budget += [
        (rule["title"], selected_names(parse(grafana_to_promql(query["model"]["expr"]))))
        for rule in grafana_alert_rules
        if rule["labels"]["kategori"] == "budget"
        for query in rule["data"]
        if query["datasourceUid"] != "__expr__"
    ]
    assert {name for name, _ in budget} == {"Budgetlarm"}
    assert len(budget) == 2  # Prometheus and Grafana
    for name, reads in budget:
        assert "budgetvakt_alerts_firing" in reads, name
        assert reads <= {"budgetvakt_alerts_firing"} | info, name
    # Every other alert is about the service or the data, never the money.
    for group in rules_doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule and rule["labels"]["kategori"] != "budget":
                names = selected_names(parse(rule["expr"]))
                assert names & classification.business == set(), rule["alert"]


def _colour_steps(node: Any) -> Iterator[float]:
    if isinstance(node, dict):
        if "steps" in node and "mode" in node:
            yield from (float(s["value"]) for s in node["steps"] if s.get("value") is not None)
        for value in node.values():
            yield from _colour_steps(value)
    elif isinstance(node, list):
        for item in node:
            yield from _colour_steps(item)


def test_dashboards_colour_business_figures_at_the_reference_only(
    dashboards: list[Dashboard], classification: Classification
) -> None:
    business_panels = 0
    for dashboard in dashboards:
        for panel in panels(dashboard.doc):
            exprs = [grafana_to_promql(t["expr"]) for t in panel.get("targets", []) if "expr" in t]
            if not any(selected_names(parse(e)) & classification.business for e in exprs):
                continue
            business_panels += 1
            steps = set(_colour_steps(panel.get("fieldConfig", {})))
            assert steps <= COLOUR_REFERENCES, f"{dashboard.name}: {panel['title']!r} {steps}"
    assert business_panels > 20


# --- The checks catch what they are for ---------------------------------------------------------

# Rules of the kind that used to be written here (before issue 13) and must never come back.
WRITTEN_TWICE = [
    # A minusprognos: the sign of the deviation.
    'budgetvakt:forecast_deviation_sek:sum{level="namnd", category="total"} < 0',
    # A deficit of 2 % and 0,25 mnkr.
    "budgetvakt:forecast_deviation_sek:sum < -0.02 * budgetvakt:budget_full_year_sek:sum"
    " and budgetvakt:forecast_deviation_sek:sum < -250e3",
    # The forecast's upper bound above the budget: no constant at all.
    "budgetvakt:forecast_high_sek:sum > budgetvakt:budget_full_year_sek:sum",
    # Overtime at 120 % of the pro-rata budget; volumes 5 % over plan.
    'budgetvakt:actual_ytd_vs_pro_rata:percent{category="overtime"} >= 120',
    "budgetvakt:volume_forecast_over_plan:percent >= bool 5",
    # In mnkr, with the raw gauge, inside a function.
    "sum(budgetvakt_forecast_deviation_sek) / 1e6 < -1",
    "clamp_min(-budgetvakt:forecast_deviation_sek:sum, 0) > 1e6",
]


@pytest.mark.parametrize("expr", WRITTEN_TWICE)
def test_a_business_threshold_is_caught(expr: str, classification: Classification) -> None:
    assert business_comparisons(expr, classification.business) != []


@pytest.mark.parametrize(
    "expr",
    [
        # A new business gauge the classification does not know yet: caught by its limit.
        "budgetvakt_staff_cost_ytd_ratio > 10",
        "budgetvakt:new_deviation:sum < -1e6",
        "budgetvakt_hours_over_plan >= 30",
    ],
)
def test_a_rules_yaml_limit_on_an_unknown_metric_is_caught(
    expr: str, classification: Classification
) -> None:
    assert limit_constants(expr, classification.service, rules_yaml_limits()) != []


@pytest.mark.parametrize(
    "expr",
    [
        # Percentages (guarded divisions), unit conversions, the worker's decision, service.
        "100 * budgetvakt:forecast_deviation_sek:sum / (budgetvakt:budget_full_year_sek:sum != 0)",
        'budgetvakt:forecast_deviation_sek:sum{org_unit="VON"} / 1e6',
        "max by (rule, severity, org_unit) (budgetvakt_alerts_firing) > 0",
        "budgetvakt:consumer_lag:sum > 50000",
        "sum(increase(budgetvakt_dead_letter_total[15m])) >= 10",
        "budgetvakt:forecast_as_of_month:max < 12",
    ],
)
def test_what_is_not_a_business_threshold_passes(expr: str, classification: Classification) -> None:
    assert business_comparisons(expr, classification.business) == []
    assert limit_constants(expr, classification.service, rules_yaml_limits()) == []


def test_a_grafana_threshold_on_a_business_query_is_caught(
    classification: Classification,
) -> None:
    rule = {
        "_file": "test.yml",
        "title": "Minusprognos",
        "data": [
            {
                "refId": "A",
                "datasourceUid": "prometheus",
                "model": {"expr": 'budgetvakt:forecast_deviation_sek:sum{org_unit="$namnd"}'},
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {"type": "reduce", "expression": "A"},
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [{"evaluator": {"type": "lt", "params": [0]}}],
                },
            },
        ],
    }
    conditions = [c for c in grafana_expressions([rule], []) if c.constants]
    assert [c.where for c in conditions] == ["test.yml: 'Minusprognos' C (threshold)"]
    assert business_comparisons(_as_comparison(conditions[0]), classification.business) != []


def test_a_dashboard_colour_at_a_rules_threshold_is_caught() -> None:
    field_config = {
        "defaults": {
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": "green", "value": None}, {"color": "red", "value": 120}],
            }
        }
    }
    assert set(_colour_steps(field_config)) - COLOUR_REFERENCES == {120.0}


def test_rules_yaml_says_where_its_thresholds_are_checked() -> None:
    assert load_yaml(RULES_YAML)["rules"]
    assert "test_one_source_of_thresholds.py" in RULES_YAML.read_text(encoding="utf-8")
