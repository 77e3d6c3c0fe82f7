"""Generate ``config/prometheus/info_rules.yml`` from ``config/org.yaml``, categories.yaml and
rules.yaml.

The worker's gauges carry ``org_unit`` and ``level`` but not the unit's name or its ancestors,
so Prometheus cannot route an enhet's alert to its avdelning's controller or list the enheter of
an avdelning in a Grafana variable. These constant recording rules add that knowledge:

- ``budgetvakt:org_unit_info{org_unit, org_unit_name, level, namnd, forvaltning, avdelning} 1``
  (ancestor labels only where they exist; the node itself counts as its own ancestor),
- ``budgetvakt:category_info{category, category_name} 1`` (cost categories and ``total``),
- ``budgetvakt:measure_info{measure, measure_name, unit} 1``,
- ``budgetvakt:alert_rule_info{rule, rule_title} 1``: the Swedish title of every deviation rule
  of rules.yaml (the names only; its thresholds stay in rules.yaml alone).

Regenerate after editing the config files (the observability tests fail until you do)::

    .venv/bin/python -m tests.observability.info_rules
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from core.hierarchy import OrgTree
from forecasts.live import TOTAL
from services.config.domain import load_domain_config
from services.config.rules import load_rules

REPO_ROOT = Path(__file__).resolve().parents[2]
INFO_RULES_PATH = REPO_ROOT / "config" / "prometheus" / "info_rules.yml"
TOTAL_NAME = "Nettokostnad totalt"

HEADER = """\
# GENERATED from config/org.yaml, config/categories.yaml and config/rules.yaml by
#   .venv/bin/python -m tests.observability.info_rules
# Do not edit by hand: tests/observability checks that this file matches the config.
# Constant info series (value 1) that rules.yml and the Grafana dashboards join on to get unit
# names, the nämnd/förvaltning/avdelning above each unit, Swedish category/measure names and the
# titles of the deviation rules.
"""


def _org_rules(org: OrgTree) -> list[dict[str, Any]]:
    rules = []
    for node_id in sorted(org.nodes):
        node = org.nodes[node_id]
        labels = {"org_unit": node.id, "org_unit_name": node.name, "level": node.level}
        for ancestor_id in reversed(org.path(node.id)):
            ancestor = org.nodes[ancestor_id]
            if ancestor.level in ("namnd", "forvaltning", "avdelning"):
                labels[ancestor.level] = ancestor.id
        rules.append({"record": "budgetvakt:org_unit_info", "expr": "vector(1)", "labels": labels})
    return rules


def render_info_rules(config_dir: Path) -> str:
    """The YAML text of the info rules for the config files in ``config_dir``."""
    domain = load_domain_config(config_dir)
    categories = [
        {
            "record": "budgetvakt:category_info",
            "expr": "vector(1)",
            "labels": {"category": cid, "category_name": category.name_sv},
        }
        for cid, category in sorted(domain.categories.items())
    ]
    categories.append(
        {
            "record": "budgetvakt:category_info",
            "expr": "vector(1)",
            "labels": {"category": TOTAL, "category_name": TOTAL_NAME},
        }
    )
    measures = [
        {
            "record": "budgetvakt:measure_info",
            "expr": "vector(1)",
            "labels": {"measure": mid, "measure_name": measure.name_sv, "unit": measure.unit},
        }
        for mid, measure in sorted(domain.measures.items())
    ]
    alert_rules = [
        {
            "record": "budgetvakt:alert_rule_info",
            "expr": "vector(1)",
            "labels": {"rule": rule.id, "rule_title": rule.title},
        }
        for rule in load_rules(config_dir, domain).rules
    ]
    doc = {
        "groups": [
            {"name": "budgetvakt-organisation", "interval": "1m", "rules": _org_rules(domain.org)},
            {"name": "budgetvakt-kategorier", "interval": "1m", "rules": categories + measures},
            {"name": "budgetvakt-larmregler", "interval": "1m", "rules": alert_rules},
        ]
    }
    body = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100)
    return HEADER + body


def main() -> None:
    INFO_RULES_PATH.write_text(render_info_rules(REPO_ROOT / "config"), encoding="utf-8")
    sys.stdout.write(f"wrote {INFO_RULES_PATH.relative_to(REPO_ROOT)}\n")


if __name__ == "__main__":
    main()
