"""Fixtures of the observability tests: the real promtool, amtool and Alertmanager binaries, and
the config files under config/prometheus, config/alertmanager and config/grafana.

A missing tool fails the test (never skips it): run scripts/test-deps.sh to install it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "config"
PROMETHEUS_DIR = CONFIG_DIR / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_FILE = PROMETHEUS_DIR / "rules.yml"
INFO_RULES_FILE = PROMETHEUS_DIR / "info_rules.yml"
PROMTOOL_TESTS_DIR = PROMETHEUS_DIR / "tests"
ALERTMANAGER_DIR = CONFIG_DIR / "alertmanager"
ALERTMANAGER_CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
GRAFANA_PROVISIONING = CONFIG_DIR / "grafana" / "provisioning"
DASHBOARDS_DIR = GRAFANA_PROVISIONING / "dashboards"
GRAFANA_ALERTING_DIR = GRAFANA_PROVISIONING / "alerting"
GRAFANA_DATASOURCES = GRAFANA_PROVISIONING / "datasources" / "prometheus.yml"

TOOL_TIMEOUT_S = 120


def _tool(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.fail(
        f"{' or '.join(names)} is not installed; run scripts/test-deps.sh "
        "(Debian packages prometheus and prometheus-alertmanager)",
        pytrace=False,
    )


def run_tool(
    args: Sequence[str | Path], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command and return its result (no check: tests assert on the exit code)."""
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        cwd=cwd,
        check=False,
    )


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _tool("amtool")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    return _tool("prometheus-alertmanager", "alertmanager")


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="session")
def rules_doc() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(RULES_FILE)
    return doc


@pytest.fixture(scope="session")
def info_rules_doc() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(INFO_RULES_FILE)
    return doc


@pytest.fixture(scope="session")
def alertmanager_doc() -> dict[str, Any]:
    doc: dict[str, Any] = load_yaml(ALERTMANAGER_CONFIG)
    return doc


@dataclass(frozen=True)
class Dashboard:
    path: Path
    doc: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name


@pytest.fixture(scope="session")
def dashboards() -> list[Dashboard]:
    paths = sorted(DASHBOARDS_DIR.glob("*.json"))
    assert paths, f"no dashboards in {DASHBOARDS_DIR}"
    return [Dashboard(p, json.loads(p.read_text(encoding="utf-8"))) for p in paths]


@pytest.fixture(scope="session")
def grafana_alert_rules() -> list[dict[str, Any]]:
    """Every rule of the Grafana alerting provisioning files, with its group and folder."""
    rules = []
    for path in sorted(GRAFANA_ALERTING_DIR.glob("*.yml")):
        doc = load_yaml(path)
        for group in doc.get("groups", []):
            for rule in group["rules"]:
                rules.append({**rule, "_group": group, "_file": path.name})
    assert rules, f"no Grafana alert rules in {GRAFANA_ALERTING_DIR}"
    return rules


@pytest.fixture(scope="session")
def grafana_datasources() -> list[dict[str, Any]]:
    datasources: list[dict[str, Any]] = load_yaml(GRAFANA_DATASOURCES)["datasources"]
    return datasources
