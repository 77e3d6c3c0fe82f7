"""config/grafana/provisioning: datasources, dashboards and Grafana-managed alert rules.

No Grafana server can run here (brief §5), so the files are validated: structure, references
between them, and every PromQL expression (panels, template variables, alert queries) through
``promtool check rules``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.observability.fixtures import (
    DASHBOARDS_DIR,
    GRAFANA_ALERTING_DIR,
    RULES_FILE,
    Dashboard,
    load_yaml,
)
from tests.observability.grafana import (
    Expression,
    alert_rule_expressions,
    dashboard_expressions,
    panels,
    promtool_check_expressions,
)
from tests.observability.promql import GRAFANA_BUILTINS, grafana_variables, metric_names

EXPECTED_DASHBOARDS = {
    "budgetvakt-kommun",
    "budgetvakt-namnd",
    "budgetvakt-verksamhet",
    "budgetvakt-personal",
    "budgetvakt-volymer",
    "budgetvakt-drift",
}


def _all_expressions(
    dashboards: list[Dashboard], grafana_alert_rules: list[dict[str, Any]]
) -> list[Expression]:
    out = [e for d in dashboards for e in dashboard_expressions(d.name, d.doc)]
    out += [e for rule in grafana_alert_rules for e in alert_rule_expressions(rule)]
    return out


@pytest.mark.integration
def test_every_grafana_expression_passes_promtool(
    promtool: str,
    dashboards: list[Dashboard],
    grafana_alert_rules: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    expressions = _all_expressions(dashboards, grafana_alert_rules)
    assert len(expressions) > 100
    result = promtool_check_expressions(promtool, expressions, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in result.stdout


@pytest.mark.integration
def test_the_promtool_check_catches_a_broken_expression(promtool: str, tmp_path: Path) -> None:
    broken = [
        Expression("ok", 'sum(rate(a{x="$enhet"}[$__rate_interval]))'),
        Expression("dashboard.json: 'Trasig panel' A", "sum(rate(a[5m])"),
    ]
    result = promtool_check_expressions(promtool, broken, tmp_path)
    assert result.returncode != 0
    assert "Trasig panel" in result.stdout + result.stderr


def test_datasources_are_prometheus_and_alertmanager(
    grafana_datasources: list[dict[str, Any]],
) -> None:
    by_uid = {ds["uid"]: ds for ds in grafana_datasources}
    assert by_uid["prometheus"]["type"] == "prometheus"
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["prometheus"]["isDefault"] is True
    assert by_uid["alertmanager"]["type"] == "alertmanager"
    assert by_uid["alertmanager"]["url"] == "http://alertmanager:9093"
    assert sum(ds.get("isDefault", False) for ds in grafana_datasources) == 1


def test_dashboard_provider_loads_this_directory() -> None:
    doc = load_yaml(DASHBOARDS_DIR / "budgetvakt.yml")
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "Budgetvakt"
    # The path is where docker-compose mounts config/grafana/provisioning.
    assert provider["options"]["path"] == "/etc/grafana/provisioning/dashboards"


def test_dashboards_are_the_expected_set_with_swedish_titles(dashboards: list[Dashboard]) -> None:
    uids = [d.doc["uid"] for d in dashboards]
    assert sorted(uids) == sorted(EXPECTED_DASHBOARDS)
    for dashboard in dashboards:
        assert dashboard.doc["title"].startswith("Budgetvakt – "), dashboard.name
        assert dashboard.doc["timezone"] == "Europe/Stockholm"
        assert dashboard.doc["editable"] is False
    titles = {d.doc["uid"]: d.doc["title"] for d in dashboards}
    assert titles["budgetvakt-namnd"] == "Budgetvakt – Nämndöversikt"
    assert titles["budgetvakt-kommun"] == "Budgetvakt – Kommunöversikt"
    assert titles["budgetvakt-personal"] == "Budgetvakt – Personalkostnader"


def test_panels_have_unique_ids_query_prometheus_and_fit_the_grid(
    dashboards: list[Dashboard],
) -> None:
    for dashboard in dashboards:
        ids = [p["id"] for p in panels(dashboard.doc)]
        assert len(ids) == len(set(ids)), dashboard.name
        occupied: set[tuple[int, int]] = set()
        for panel in panels(dashboard.doc):
            where = f"{dashboard.name}: {panel['title']!r}"
            assert panel["title"].strip(), where
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, where
            cells = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & occupied, f"{where} overlaps another panel"
            occupied |= cells
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, where
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert ref_ids and len(ref_ids) == len(set(ref_ids)), where
            for t in panel["targets"]:
                assert t.get("datasource", panel["datasource"])["uid"] == "prometheus", where


def test_every_variable_used_is_defined(dashboards: list[Dashboard]) -> None:
    for dashboard in dashboards:
        defined = {v["name"] for v in dashboard.doc.get("templating", {}).get("list", [])}
        texts = [p["title"] for p in panels(dashboard.doc)]
        texts += [e.grafana for e in dashboard_expressions(dashboard.name, dashboard.doc)]
        used = set().union(*(grafana_variables(t) for t in texts))
        assert used - defined - GRAFANA_BUILTINS == set(), dashboard.name
        # Variables are only used inside label values, so the placeholder keeps PromQL valid.
        for expr in dashboard_expressions(dashboard.name, dashboard.doc):
            outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr.grafana)
            assert grafana_variables(outside_strings) <= GRAFANA_BUILTINS, expr.where


def test_drill_down_variables_depend_on_the_level_above(dashboards: list[Dashboard]) -> None:
    board = next(d.doc for d in dashboards if d.doc["uid"] == "budgetvakt-verksamhet")
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["ar", "namnd", "avdelning", "enhet", "kategori"]
    assert 'namnd="$namnd"' in variables["avdelning"]["definition"]
    assert 'avdelning=~"$avdelning"' in variables["enhet"]["definition"]
    assert variables["enhet"]["multi"] and variables["enhet"]["includeAll"]
    # Value = id, text = Swedish name, from the info series' labels.
    regex = re.compile(variables["namnd"]["regex"].strip("/").replace("?<", "?P<"))
    sample = (
        'budgetvakt:org_unit_info{level="namnd", namnd="VON", org_unit="VON", '
        'org_unit_name="Vård- och omsorgsnämnden"} 1 1700000000000'
    )
    match = regex.search(sample)
    assert match is not None
    assert match.group("value", "text") == ("VON", "Vård- och omsorgsnämnden")


def test_dashboards_cover_the_required_views(dashboards: list[Dashboard]) -> None:
    exprs = {
        d.doc["uid"]: " ".join(e.grafana for e in dashboard_expressions(d.name, d.doc))
        for d in dashboards
    }
    namnd = exprs["budgetvakt-namnd"]
    for name in (
        "budgetvakt:budget_full_year_sek:sum",
        "budgetvakt:forecast_full_year_sek:sum",
        "budgetvakt:forecast_low_sek:sum",
        "budgetvakt:forecast_high_sek:sum",
        "budgetvakt:forecast_deviation_sek:sum",
    ):
        assert name in namnd
    assert 'level="avdelning"' in namnd
    assert 'level="enhet"' in exprs["budgetvakt-verksamhet"]
    for category in ("overtime", "substitutes", "sick_pay", "agency_staff"):
        assert category in exprs["budgetvakt-personal"]
    assert "budgetvakt:volume_forecast_over_plan:percent" in exprs["budgetvakt-volymer"]
    assert "budgetvakt:volume_budget_full_year:sum" in exprs["budgetvakt-volymer"]
    for name in ("up", "budgetvakt:consumer_lag:sum", "budgetvakt_notifier_sent_total"):
        assert name in exprs["budgetvakt-drift"]


def test_dashboards_read_worker_money_only_through_the_summed_recording_rules(
    dashboards: list[Dashboard],
) -> None:
    for dashboard in dashboards:
        for expr in dashboard_expressions(dashboard.name, dashboard.doc):
            raw = {n for n in metric_names(expr.promql) if re.search(r"_sek$|_volume_", n)}
            assert raw == set(), f"{expr.where} reads per-worker shares {raw}"


def test_grafana_alert_rules_are_well_formed(
    grafana_alert_rules: list[dict[str, Any]],
    grafana_datasources: list[dict[str, Any]],
    dashboards: list[Dashboard],
) -> None:
    datasource_uids = {ds["uid"] for ds in grafana_datasources} | {"__expr__"}
    dashboards_by_uid = {d.doc["uid"]: d.doc for d in dashboards}
    uids = [rule["uid"] for rule in grafana_alert_rules]
    assert len(uids) == len(set(uids))
    for rule in grafana_alert_rules:
        where = f"{rule['_file']}: {rule['title']!r}"
        group = rule["_group"]
        assert group["folder"] == "Budgetvakt" and group["orgId"] == 1, where
        assert re.fullmatch(r"\d+[smh]", group["interval"]), where
        assert re.fullmatch(r"\d+[smh]", rule["for"]), where
        ref_ids = [q["refId"] for q in rule["data"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        assert rule["condition"] in ref_ids, where
        for query in rule["data"]:
            assert query["datasourceUid"] in datasource_uids, where
            assert query["model"]["refId"] == query["refId"], where
            if query["datasourceUid"] == "__expr__":
                assert query["model"]["type"] in {
                    "reduce",
                    "threshold",
                    "math",
                    "classic_conditions",
                }
                assert query["model"]["expression"] in ref_ids, where
        assert rule["noDataState"] in {"OK", "NoData", "Alerting", "KeepLast"}, where
        assert rule["execErrState"] in {"OK", "Error", "Alerting", "KeepLast"}, where
        if rule["labels"]["kategori"] == "budget":
            # The worker's alerts: severity and larm come from the series' labels.
            assert "severity" not in rule["labels"], where
            assert rule["labels"]["larm"] == "{{ $labels.rule }}", where
        else:
            assert rule["labels"]["kategori"] == "drift", where
            assert rule["labels"]["severity"] in {"warning", "critical"}, where
        assert {"summary", "description"} <= set(rule["annotations"]), where
        board = dashboards_by_uid[rule["dashboardUid"]]
        assert rule["panelId"] in {p["id"] for p in panels(board)}, where


def test_grafana_alert_rules_mirror_prometheus_rules_by_larm(
    grafana_alert_rules: list[dict[str, Any]],
) -> None:
    # Alertmanager drops the Grafana copy while the Prometheus alert with the same "larm" fires.
    prometheus = {
        rule["labels"]["larm"]: rule
        for group in load_yaml(RULES_FILE)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    larm = {rule["labels"]["larm"] for rule in grafana_alert_rules}
    assert larm == {"{{ $labels.rule }}", "worker_nere"}
    for rule in grafana_alert_rules:
        twin = prometheus[rule["labels"]["larm"]]
        assert rule["labels"].get("severity") == twin["labels"].get("severity"), rule["title"]
        assert rule["labels"]["kategori"] == twin["labels"]["kategori"], rule["title"]
    # The budget copy reads the same series as Budgetlarm, grouped the same way.
    (budget,) = [r for r in grafana_alert_rules if r["labels"]["kategori"] == "budget"]
    (query,) = alert_rule_expressions(budget)
    twin = prometheus["{{ $labels.rule }}"]
    assert metric_names(query.promql) == metric_names(twin["expr"])
    assert " ".join(query.promql.split()).startswith(
        "max by (rule, severity, org_unit) (budgetvakt_alerts_firing)"
    )


def test_grafana_alerts_are_forwarded_to_alertmanager() -> None:
    contact_points = load_yaml(GRAFANA_ALERTING_DIR / "contactpoints.yml")["contactPoints"]
    (receiver,) = [r for cp in contact_points for r in cp["receivers"]]
    assert receiver["type"] == "prometheus-alertmanager"
    assert receiver["settings"]["url"] == "http://alertmanager:9093"
    (policy,) = load_yaml(GRAFANA_ALERTING_DIR / "policies.yml")["policies"]
    assert policy["receiver"] in {cp["name"] for cp in contact_points}
