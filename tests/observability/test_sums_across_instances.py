"""Every PromQL expression that reads a per-worker gauge sums (or maxes) it across instances.

``docker compose up --scale worker=3`` runs three workers; Prometheus scrapes each (DNS service
discovery on the service name), so every ``budgetvakt_*`` gauge arrives once per instance, each
worker with its own share (the nämnder it owns) or its own view (lag, alerts during a
rebalance). A panel or rule that shows such a gauge without aggregating ``instance`` away would
show one line per worker, or alert per worker. Dashboards, Grafana alert rules and the
Prometheus rules are all checked, on the parsed expression: between every selector of a gauge
and the top of the expression lies an aggregation whose result has no ``instance`` label
(``sum(x)``, ``sum by (org_unit, …)`` without instance, ``sum without (instance, pod)``).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.observability.fixtures import Dashboard
from tests.observability.grafana import alert_rule_expressions, dashboard_expressions
from tests.observability.promql import parse, selectors_keeping


def _gauges(exposition: str) -> set[str]:
    return {
        line.split()[2]
        for line in exposition.splitlines()
        if line.startswith("# TYPE ") and line.split()[3] == "gauge"
    }


@pytest.fixture(scope="module")
def budgetvakt_gauges() -> set[str]:
    """The gauges the worker exports (its /metrics TYPE lines); the notifier has none."""
    from core.hierarchy import OrgNode, OrgTree
    from services.notifier.metrics import NotifierMetrics
    from streams.aggregation import ActiveState
    from streams.metrics import WorkerMetrics

    org = OrgTree({"X": OrgNode("X", "X", "namnd", None)})
    worker = WorkerMetrics(ActiveState(), org).exposition().decode("utf-8")
    notifier = NotifierMetrics().exposition().decode("utf-8")
    return {g for g in _gauges(worker) | _gauges(notifier) if g.startswith("budgetvakt_")}


def _expressions(
    rules_doc: dict[str, Any],
    dashboards: list[Dashboard],
    grafana_alert_rules: list[dict[str, Any]],
) -> list[tuple[str, str]]:
    out = [
        (f"rules.yml: {rule.get('record') or rule.get('alert')}", rule["expr"])
        for group in rules_doc["groups"]
        for rule in group["rules"]
    ]
    for dashboard in dashboards:
        out += [(e.where, e.promql) for e in dashboard_expressions(dashboard.name, dashboard.doc)]
    for rule in grafana_alert_rules:
        out += [(e.where, e.promql) for e in alert_rule_expressions(rule)]
    return out


def test_the_gauges_are_found(budgetvakt_gauges: set[str]) -> None:
    assert {
        "budgetvakt_actual_ytd_sek",
        "budgetvakt_forecast_deviation_sek",
        "budgetvakt_alerts_firing",
        "budgetvakt_consumer_lag",
        "budgetvakt_unmapped_org_units",
    } <= budgetvakt_gauges
    assert "budgetvakt_events_total" not in budgetvakt_gauges  # a counter


def test_every_expression_over_a_gauge_aggregates_instance_away(
    budgetvakt_gauges: set[str],
    rules_doc: dict[str, Any],
    dashboards: list[Dashboard],
    grafana_alert_rules: list[dict[str, Any]],
) -> None:
    expressions = _expressions(rules_doc, dashboards, grafana_alert_rules)
    reading_gauges = [
        (where, expr) for where, expr in expressions if any(g in expr for g in budgetvakt_gauges)
    ]
    assert len(reading_gauges) >= 15, reading_gauges
    per_instance = {
        where: kept
        for where, expr in reading_gauges
        if (kept := selectors_keeping(parse(expr), budgetvakt_gauges, "instance"))
    }
    assert per_instance == {}


@pytest.mark.parametrize(
    ("expr", "kept"),
    [
        ("budgetvakt_alerts_firing > 0", ["budgetvakt_alerts_firing"]),
        ("sum by (instance) (budgetvakt_actual_ytd_sek)", ["budgetvakt_actual_ytd_sek"]),
        ("sum without (org_unit) (budgetvakt_actual_ytd_sek)", ["budgetvakt_actual_ytd_sek"]),
        ("sum(budgetvakt_actual_ytd_sek) by (instance)", ["budgetvakt_actual_ytd_sek"]),
        ('{__name__="budgetvakt_consumer_lag"}', ["budgetvakt_consumer_lag"]),
        # One arm aggregated, the other not: the other keeps instance.
        (
            "sum(budgetvakt_actual_ytd_sek) / budgetvakt_budget_full_year_sek",
            ["budgetvakt_budget_full_year_sek"],
        ),
        ("sum(budgetvakt_actual_ytd_sek)", []),
        ("sum without (instance, pod) (budgetvakt_actual_ytd_sek)", []),
        ("max by (org_unit) (budgetvakt_alerts_firing) > 0", []),
        ("sum by (topic) (max by (topic, partition) (budgetvakt_consumer_lag))", []),
        ("sum(rate(budgetvakt_events_total[5m]))", []),
        ("rate(budgetvakt_events_total[5m])", []),  # a counter: not checked here
        ("sum(budgetvakt_actual_ytd_sek) by (org_unit)", []),  # the grouping written after
    ],
)
def test_the_check_finds_gauges_left_per_instance(expr: str, kept: list[str]) -> None:
    gauges = {
        "budgetvakt_alerts_firing",
        "budgetvakt_actual_ytd_sek",
        "budgetvakt_budget_full_year_sek",
        "budgetvakt_consumer_lag",
    }
    assert selectors_keeping(parse(expr), gauges, "instance") == kept
