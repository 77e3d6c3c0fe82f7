"""config/prometheus: promtool check config / check rules / test rules, and the conventions the
rules follow (labels, Swedish texts, sums over workers, info series in sync with config/)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.config.domain import load_org
from tests.observability.fixtures import (
    CONFIG_DIR,
    INFO_RULES_FILE,
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    PROMTOOL_TESTS_DIR,
    REPO_ROOT,
    RULES_FILE,
    load_yaml,
    run_tool,
)
from tests.observability.info_rules import render_info_rules
from tests.observability.promql import metric_names

# Gauges every worker exports for its own partitions only: read them summed over workers.
SHARE_GAUGES = frozenset(
    {
        "budgetvakt_actual_ytd_sek",
        "budgetvakt_budget_full_year_sek",
        "budgetvakt_forecast_full_year_sek",
        "budgetvakt_forecast_low_sek",
        "budgetvakt_forecast_high_sek",
        "budgetvakt_forecast_deviation_sek",
        "budgetvakt_volume_ytd",
        "budgetvakt_volume_budget_full_year",
        "budgetvakt_volume_forecast_full_year",
    }
)


def _alerts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def _records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in doc["groups"] for r in g["rules"] if "record" in r]


def _duration_s(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", text))


@pytest.mark.integration
def test_prometheus_config_passes_promtool(promtool: str) -> None:
    result = run_tool([promtool, "check", "config", PROMETHEUS_CONFIG])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules.yml" in result.stdout and "info_rules.yml" in result.stdout


def test_prometheus_scrapes_worker_and_notifier_and_alerts_alertmanager() -> None:
    doc = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    worker = jobs["budgetvakt-worker"]
    assert worker["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": 6066, "refresh_interval": "30s"}
    ]
    assert jobs["budgetvakt-notifier"]["static_configs"] == [{"targets": ["notifier:6067"]}]
    assert {job.get("metrics_path", "/metrics") for job in jobs.values()} == {"/metrics"}
    assert doc["rule_files"] == ["rules.yml", "info_rules.yml"]
    assert doc["alerting"]["alertmanagers"] == [
        {"static_configs": [{"targets": ["alertmanager:9093"]}]}
    ]


@pytest.mark.integration
def test_rule_files_pass_promtool(promtool: str) -> None:
    result = run_tool([promtool, "check", "rules", RULES_FILE, INFO_RULES_FILE])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


@pytest.mark.integration
def test_promtool_unit_tests_pass(promtool: str) -> None:
    test_files = sorted(PROMTOOL_TESTS_DIR.glob("*.yml"))
    assert len(test_files) >= 3
    result = run_tool([promtool, "test", "rules", *test_files], cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(test_files), result.stdout


@pytest.mark.integration
def test_promtool_unit_tests_fail_on_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    # One of the real test cases with its expected severity changed must fail: the tests can fail.
    shutil.copy(RULES_FILE, tmp_path / "rules.yml")
    shutil.copy(INFO_RULES_FILE, tmp_path / "info_rules.yml")
    (tmp_path / "tests").mkdir()
    doc = load_yaml(PROMTOOL_TESTS_DIR / "budget_alerts_test.yml")
    name = "the worker's alerts with its severity and the unit's names"
    doc["tests"] = [t for t in doc["tests"] if t["name"] == name]
    case = doc["tests"][0]["alert_rule_test"][0]
    assert case["alertname"] == "Budgetlarm"
    assert case["exp_alerts"][0]["exp_labels"]["severity"] == "critical"
    case["exp_alerts"][0]["exp_labels"]["severity"] = "warning"
    broken = tmp_path / "tests" / "broken_test.yml"
    broken.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    result = run_tool([promtool, "test", "rules", broken])
    assert result.returncode != 0
    assert 'severity="critical"' in result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for path in PROMTOOL_TESTS_DIR.glob("*.yml"):
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else silent).add(case["alertname"])
    alertnames = {rule["alert"] for rule in _alerts(load_yaml(RULES_FILE))}
    assert alertnames - fired == set(), "alerts never tested firing"
    assert alertnames - silent == set(), "alerts never tested staying silent"


def test_every_recording_rule_is_unit_tested_or_feeds_an_alert(rules_doc: dict[str, Any]) -> None:
    tested_exprs = " ".join(
        case["expr"]
        for path in PROMTOOL_TESTS_DIR.glob("*.yml")
        for test in load_yaml(path)["tests"]
        for case in test.get("promql_expr_test", [])
    )
    records = {r["record"]: metric_names(r["expr"]) for r in _records(rules_doc)}
    feeding = set().union(*(metric_names(r["expr"]) for r in _alerts(rules_doc)))
    while grown := set().union(*(records.get(name, set()) for name in feeding)) - feeding:
        feeding |= grown
    for name in records:
        assert re.search(rf"{re.escape(name)}\b", tested_exprs) or name in feeding, (
            f"recording rule {name} is neither tested nor read by an alert"
        )


def test_alerts_carry_routing_labels_and_swedish_texts(rules_doc: dict[str, Any]) -> None:
    for rule in _alerts(rules_doc):
        name = rule["alert"]
        labels = rule.get("labels", {})
        assert labels.get("kategori") in {"budget", "datakvalitet", "drift"}, name
        if labels["kategori"] == "budget":
            # The worker's alerts keep the worker's severity and are named by its rule id.
            assert "severity" not in labels, name
            assert re.search(r"by \(rule, severity, org_unit\)", rule["expr"]), name
            assert labels.get("larm") == "{{ $labels.rule }}", name
        else:
            assert labels.get("severity") in {"warning", "critical"}, name
            assert re.fullmatch(r"[a-z_]+", labels.get("larm", "")), name
        annotations = rule.get("annotations", {})
        assert set(annotations) >= {"summary", "description"}, name
        text = annotations["summary"] + annotations["description"]
        # Swedish: at least one of the words every text here uses; no English "forecast".
        assert re.search(r"\b(för|och|är|har|av|på|inte|finns)\b", text), name
        assert "forecast " not in text.lower(), name


def test_worker_share_gauges_are_only_read_summed_over_workers(rules_doc: dict[str, Any]) -> None:
    for rule in _alerts(rules_doc):
        assert metric_names(rule["expr"]) & SHARE_GAUGES == set(), rule["alert"]
    for record in _records(rules_doc):
        expr = " ".join(record["expr"].split())
        for name in metric_names(expr) & SHARE_GAUGES:
            occurrences = [m.start() for m in re.finditer(rf"\b{name}\b", expr)]
            for start in occurrences:
                before = expr[:start]
                assert re.search(
                    r"sum by \((org_unit, (category|measure), year, level)\) \($", before
                ), f"{record['record']} reads {name} without sum by (org_unit, …, year, level)"


def test_info_rules_match_the_config_files() -> None:
    expected = render_info_rules(CONFIG_DIR)
    assert INFO_RULES_FILE.read_text(encoding="utf-8") == expected, (
        "config/prometheus/info_rules.yml is out of date: "
        "run .venv/bin/python -m tests.observability.info_rules"
    )


def test_info_rules_give_every_org_node_its_ancestors(info_rules_doc: dict[str, Any]) -> None:
    _, org = load_org(CONFIG_DIR / "org.yaml")
    info = {
        r["labels"]["org_unit"]: r["labels"]
        for r in _records(info_rules_doc)
        if r["record"] == "budgetvakt:org_unit_info"
    }
    assert set(info) == set(org.nodes)
    for node_id, labels in info.items():
        path = org.path(node_id)
        assert labels["level"] == org.level_of(node_id)
        assert labels["org_unit_name"] == org.nodes[node_id].name
        for level in ("namnd", "forvaltning", "avdelning"):
            above = [n for n in path if org.level_of(n) == level]
            assert labels.get(level) == (above[0] if above else None), (node_id, level)
    assert info["1110"] | {} == {
        "org_unit": "1110",
        "org_unit_name": "Hemtjänst Norr",
        "level": "enhet",
        "namnd": "VON",
        "forvaltning": "VOF",
        "avdelning": "AO",
    }


def test_recording_rules_read_only_defined_recording_rules(
    rules_doc: dict[str, Any], info_rules_doc: dict[str, Any]
) -> None:
    defined = {r["record"] for doc in (rules_doc, info_rules_doc) for r in _records(doc)}
    for rule in rules_doc["groups"][0]["rules"] + _alerts(rules_doc):
        for name in metric_names(rule["expr"]):
            if ":" in name:
                assert name in defined, f"{rule.get('record') or rule.get('alert')} reads {name}"


def test_promtool_config_files_are_plain_yaml() -> None:
    # The test files use YAML anchors for repeated annotations; they must stay loadable as-is.
    for path in [*PROMTOOL_TESTS_DIR.glob("*.yml"), RULES_FILE, INFO_RULES_FILE]:
        assert isinstance(yaml.safe_load(path.read_text(encoding="utf-8")), dict), path
    assert PROMETHEUS_DIR.is_dir()
