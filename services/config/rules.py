"""Load ``config/rules.yaml`` into a :class:`forecasts.deviations.RuleSet`.

The rule models live in ``forecasts.deviations`` (pure); this module only reads the file and turns
what goes wrong into a :class:`~core.errors.ConfigError` naming the file, the key (as
``rules[3].thresholds[0].pct``) and the problem.
"""

from __future__ import annotations

from pathlib import Path

import structlog
import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from core.domain import DomainConfig
from core.errors import ConfigError
from core.yamlfile import read_yaml
from forecasts.deviations import RULE_KINDS, RuleDomainError, RuleSet

log = structlog.get_logger(__name__)

RULES_FILE = "rules.yaml"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _DatesAsText(yaml.SafeLoader):
    """Safe YAML that leaves ``2024-13-01`` as text, so a bad date is the model's error (with
    its key) instead of a bare ValueError from the YAML library."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_rules(config_dir: Path, domain: DomainConfig) -> RuleSet:
    path = config_dir / RULES_FILE
    data = read_yaml(path, loader=_DatesAsText, column=True)
    try:
        rules = RuleSet.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(str(path), _key(first), _problem(first)) from None
    try:
        rules.check_against(domain)
    except RuleDomainError as err:
        raise ConfigError(str(path), err.key, err.problem) from None
    for rule_id, category in rules.absent_categories(domain):
        # A municipality without, say, hyrpersonal: the staffing rule reads nothing.
        log.warning("rule_category_absent", rule=rule_id, category=category, file=str(path))
    return rules


def _key(error: ErrorDetails) -> str:
    """pydantic's location as ``rules[3].thresholds[0].pct``.

    The rule kind that pydantic puts after a rule's index (the union's tag) is left out.
    """
    loc = list(error["loc"])
    if len(loc) > 2 and loc[0] == "rules" and loc[2] in RULE_KINDS:
        del loc[2]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("kind")
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}"
    return key.lstrip(".") or "(top level)"


def _problem(error: ErrorDetails) -> str:
    kind, ctx, given = error["type"], error.get("ctx", {}), error.get("input")
    if kind == "union_tag_invalid":
        return f"unknown rule kind {ctx['tag']!r}; known: {', '.join(RULE_KINDS)}"
    if kind in ("missing", "union_tag_not_found"):
        return "missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, got {type(given).__name__}"
    if kind in ("tuple_type", "list_type"):
        return f"must be a list, got {type(given).__name__}"
    if kind == "literal_error":
        return f"{given!r} is not one of {ctx['expected']}"
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    if kind in bounds:
        name, sign = bounds[kind]
        return f"must be {sign} {ctx[name]:g}, got {given!r}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}, got {given!r}"
    message = error["msg"].removeprefix("Value error, ")
    if kind.startswith("date") or kind.endswith("_parsing") or kind.endswith("_type"):
        return f"{message} (got {given!r})"
    return message
