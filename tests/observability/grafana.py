"""Walk Grafana dashboards and alert rules for their PromQL, and check PromQL with promtool."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.observability.fixtures import run_tool
from tests.observability.promql import grafana_to_promql, grafana_variable_promql


@dataclass(frozen=True)
class Expression:
    where: str  # human-readable origin, for failure messages
    grafana: str  # as written (with Grafana variables)

    @property
    def promql(self) -> str:
        return grafana_to_promql(self.grafana)


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return str(query.get("query", "")) if isinstance(query, dict) else str(query)


def dashboard_expressions(name: str, dashboard: dict[str, Any]) -> list[Expression]:
    out = []
    for panel in panels(dashboard):
        for t in panel.get("targets", []):
            if "expr" in t:
                out.append(Expression(f"{name}: {panel['title']!r} {t['refId']}", t["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        promql = grafana_variable_promql(_variable_query(variable))
        if promql is not None:
            out.append(Expression(f"{name}: variable ${variable['name']}", promql))
    return out


def alert_rule_expressions(rule: dict[str, Any]) -> list[Expression]:
    return [
        Expression(f"{rule['_file']}: {rule['title']!r} {query['refId']}", query["model"]["expr"])
        for query in rule["data"]
        if query.get("datasourceUid") != "__expr__" and "expr" in query.get("model", {})
    ]


def promtool_check_expressions(
    promtool: str, expressions: Sequence[Expression], work_dir: Path
) -> subprocess.CompletedProcess[str]:
    """``promtool check rules`` on a rules file with one recording rule per expression, each in
    a group named after where it came from (promtool's error names the group)."""
    doc = {
        "groups": [
            {
                "name": f"{i}: {expression.where}",
                "rules": [{"record": f"grafana:expression_{i}", "expr": expression.promql}],
            }
            for i, expression in enumerate(expressions)
        ]
    }
    path = work_dir / "grafana-expressions.rules.yml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return run_tool([promtool, "check", "rules", path])
