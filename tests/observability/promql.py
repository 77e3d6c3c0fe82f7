"""PromQL helpers for the observability tests: which metric names an expression reads, and
Grafana expressions turned into plain PromQL that promtool can check.

The extractor is a small tokenizer, not a parser: it drops strings, comments, label matchers
(``{...}``), range and subquery brackets (``[...]``), numbers and durations, label lists after
``by``/``without``/``on``/``ignoring``/``group_left``/``group_right``, keywords and every name
that is called like a function. What is left are the metric (or recording rule) names. Syntax is
promtool's job; this only has to be right for expressions promtool accepts.
"""

from __future__ import annotations

import re

KEYWORDS = frozenset(
    {"and", "or", "unless", "atan2", "bool", "offset", "inf", "nan"}
    | {"by", "without", "on", "ignoring", "group_left", "group_right"}
)
LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")

# Grafana's interval variables, replaced by durations; every other $variable is a label value.
GRAFANA_INTERVALS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
}
GRAFANA_BUILTINS = frozenset(GRAFANA_INTERVALS) | {
    "__dashboard",
    "__org",
    "__user",
    "__from",
    "__to",
}
_GRAFANA_VARIABLE = re.compile(
    r"\$\{(?P<braced>\w+)(?::[^}]*)?\}|\[\[(?P<bracketed>\w+)(?::[^\]]*)?\]\]|\$(?P<plain>\w+)"
)
PLACEHOLDER = "grafana_placeholder"


class PromQLTokenError(ValueError):
    """The expression has an unterminated string or bracket."""


def _skip_string(expr: str, i: int) -> int:
    quote = expr[i]
    j = i + 1
    while j < len(expr):
        if expr[j] == "\\" and quote != "`":
            j += 2
            continue
        if expr[j] == quote:
            return j + 1
        j += 1
    raise PromQLTokenError(f"unterminated string at {i}: {expr!r}")


def _skip_bracket(expr: str, i: int, close: str) -> tuple[int, str]:
    """Index after the bracket opened at ``i`` and its content (strings kept)."""
    j = i + 1
    while j < len(expr):
        char = expr[j]
        if char in "\"'`":
            j = _skip_string(expr, j)
            continue
        if char == close:
            return j + 1, expr[i + 1 : j]
        j += 1
    raise PromQLTokenError(f"unterminated {expr[i]!r} at {i}: {expr!r}")


def _skip_space(expr: str, i: int) -> int:
    while i < len(expr) and expr[i].isspace():
        i += 1
    return i


def metric_names(expr: str) -> set[str]:
    """The metric and recording rule names ``expr`` selects."""
    names: set[str] = set()
    i = 0
    while i < len(expr):
        char = expr[i]
        if char.isspace():
            i += 1
        elif char == "#":
            newline = expr.find("\n", i)
            i = len(expr) if newline < 0 else newline + 1
        elif char in "\"'`":
            i = _skip_string(expr, i)
        elif char == "{":
            i, content = _skip_bracket(expr, i, "}")
            for match in _NAME_MATCHER.finditer(content):
                names.add(match.group(1) if match.group(1) is not None else match.group(2))
        elif char == "[":
            i, _ = _skip_bracket(expr, i, "]")
        elif duration := _DURATION.match(expr, i):
            i = duration.end()  # offset 30m, @ modifiers' neighbours
        elif number := _NUMBER.match(expr, i):
            i = number.end()
        elif ident := _IDENT.match(expr, i):
            word = ident.group(0)
            i = ident.end()
            after = _skip_space(expr, i)
            if word.lower() in KEYWORDS:
                if word.lower() in LABEL_LIST_KEYWORDS and after < len(expr) and expr[after] == "(":
                    i, _ = _skip_bracket(expr, after, ")")
            elif after < len(expr) and expr[after] == "(":
                pass  # a function or aggregation: its arguments are scanned on
            elif (following := _IDENT.match(expr, after)) and following.group(0).lower() in (
                "by",
                "without",
            ):
                pass  # an aggregation with its grouping first: sum by (x) (...)
            else:
                names.add(word)
        else:
            i += 1  # operators, commas, parentheses, @
    return names


def grafana_variables(text: str) -> set[str]:
    """Names of the Grafana variables used in ``text`` ($x, ${x}, ${x:fmt}, [[x]])."""
    return {
        next(group for group in match.groups() if group is not None)
        for match in _GRAFANA_VARIABLE.finditer(text)
    }


def grafana_to_promql(expr: str) -> str:
    """A Grafana panel or alert expression as plain PromQL: interval variables become
    durations, other variables a placeholder label value."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        return GRAFANA_INTERVALS.get(name, PLACEHOLDER)

    return _GRAFANA_VARIABLE.sub(replace, expr)


_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<body>.*)\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<body>.*)\)\s*$", re.S)
_LABEL_NAME = re.compile(r"^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*$")


def grafana_variable_promql(query: str) -> str | None:
    """The PromQL inside a Grafana Prometheus variable query, or None if it holds none.

    ``label_values(expr, label)`` → expr; ``label_values(label)`` → None;
    ``query_result(expr)`` → expr; ``label_names()`` and ``metrics(re)`` → None.
    """
    if match := _QUERY_RESULT.match(query):
        return match.group("body")
    if match := _LABEL_VALUES.match(query):
        body = match.group("body")
        head, comma, label = body.rpartition(",")
        if not comma:
            return None
        if not _LABEL_NAME.match(label):
            raise ValueError(f"label_values needs a label name last: {query!r}")
        return head
    if re.match(r"^\s*(label_names|metrics)\(", query):
        return None
    return query


_TEMPLATE_QUERY = re.compile(r'printf\s+"((?:[^"\\]|\\.)*)"')


def template_queries(template: str) -> list[str]:
    """PromQL queries built with ``printf "…" … | query`` in an alert annotation template,
    with the ``%q``/``%s`` verbs filled in."""
    out = []
    for match in _TEMPLATE_QUERY.finditer(template):
        text = match.group(1).replace('\\"', '"')
        if "query" not in template[match.end() : match.end() + 200].split("}}")[0]:
            continue
        out.append(re.sub(r"%[qsdv]", '"x"', text))
    return out
