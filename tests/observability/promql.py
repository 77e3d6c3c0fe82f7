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
from collections.abc import Iterator
from dataclasses import dataclass

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


# --- A small PromQL parser: which comparisons an expression makes --------------------------------
#
# test_one_source_of_thresholds needs more than the metric names: it must see what is compared
# with what (``a < -0.01 * b``, ``x > 0`` as the divisor of a ratio). This is a precedence-climbing
# parser for the PromQL that promtool accepts in this repository's rules, dashboards and Grafana
# alerts; label matchers, ranges and subqueries are kept as text, never interpreted.

COMPARISON_OPERATORS = frozenset({"==", "!=", "<", ">", "<=", ">="})
_BINARY_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    **dict.fromkeys(COMPARISON_OPERATORS, 3),
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
_AGGREGATIONS = frozenset(
    {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk"}
    | {"quantile", "count_values", "limitk", "limit_ratio"}
)
_TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
    |(?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![a-zA-Z0-9_:]))
    |(?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![a-zA-Z_])
        |(?i:inf|nan)(?![a-zA-Z0-9_:]))
    |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<op>==|!=|<=|>=|[-+*/%^<>(),@])
    """,
    re.X,
)


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Selector:
    name: str | None
    matchers: str = ""


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Node, ...]
    # An aggregation's grouping: ("by" | "without", labels); None for a plain call or an
    # aggregation over everything (``sum(x)``).
    grouping: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    lhs: Node
    rhs: Node


Node = Number | Text | Selector | Call | Unary | Binary


class PromQLParseError(ValueError):
    """The expression is not PromQL this parser understands."""


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.pos = 0

    # Tokens. Brackets ([…], {…}) and strings are read whole where they occur.
    def _skip_space(self) -> None:
        while match := re.compile(r"\s+|\#[^\n]*").match(self.expr, self.pos):
            if match.end() == self.pos:
                break
            self.pos = match.end()

    def peek(self) -> tuple[str, str] | None:
        self._skip_space()
        if self.pos >= len(self.expr):
            return None
        char = self.expr[self.pos]
        if char in "\"'`":
            return ("string", char)
        if char in "[{":
            return ("bracket", char)
        match = _TOKEN.match(self.expr, self.pos)
        if match is None or match.lastgroup is None:
            raise PromQLParseError(f"unexpected {char!r} at {self.pos}: {self.expr!r}")
        return (match.lastgroup, match.group(0))

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise PromQLParseError(f"unexpected end: {self.expr!r}")
        kind, text = token
        if kind == "string":
            end = _skip_string(self.expr, self.pos)
            text, self.pos = self.expr[self.pos + 1 : end - 1], end
        elif kind == "bracket":
            closing = "]" if text == "[" else "}"
            kind = "range" if text == "[" else "matchers"
            self.pos, text = _skip_bracket(self.expr, self.pos, closing)
        else:
            self.pos += len(text)
        return kind, text

    def expect(self, text: str) -> None:
        _, got = self.take()
        if got.lower() != text:
            raise PromQLParseError(f"expected {text!r}, got {got!r} in {self.expr!r}")

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token[0] in ("op", "ident") and token[1].lower() in texts

    # Grammar.
    def parse(self) -> Node:
        node = self.binary(1)
        if self.peek() is not None:
            raise PromQLParseError(f"trailing {self.peek()!r} in {self.expr!r}")
        return node

    def binary(self, min_precedence: int) -> Node:
        lhs = self.unary()
        while (token := self.peek()) is not None and token[0] in ("op", "ident"):
            op = token[1].lower()
            precedence = _BINARY_PRECEDENCE.get(op)
            if precedence is None or precedence < min_precedence:
                break
            self.take()
            self.modifiers()
            # ^ is right-associative, everything else left-associative.
            rhs = self.binary(precedence if op == "^" else precedence + 1)
            lhs = Binary(op, lhs, rhs)
        return lhs

    def modifiers(self) -> None:
        """bool, on/ignoring (…), group_left/group_right (…): they change matching, not values."""
        while self.at("bool", "on", "ignoring", "group_left", "group_right"):
            keyword = self.take()[1].lower()
            if keyword != "bool" and self.at("("):
                self.label_list()

    def label_list(self) -> tuple[str, ...]:
        self.expect("(")
        labels: list[str] = []
        while not self.at(")"):
            kind, text = self.take()
            if kind != "op":  # a label name (commas are operators here)
                labels.append(text)
        self.expect(")")
        return tuple(labels)

    def unary(self) -> Node:
        if self.at("-", "+"):
            op = self.take()[1]
            return Unary(op, self.unary())
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token == ("bracket", "["):
                self.take()  # a range or subquery: the values stay those of ``node``'s series
            elif self.at("offset"):
                self.take()
                if self.at("-"):
                    self.take()
                self.take()  # duration
            elif self.at("@"):
                self.take()
                self.take()  # timestamp, start() or end()
                if self.at("("):
                    self.label_list()
            else:
                return node

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "number":
            return Number(float(text) if not text.lower().startswith("0x") else int(text, 16))
        if kind == "string":
            return Text(text)
        if kind == "matchers":
            return Selector(None, text)
        if text == "(":
            node = self.binary(1)
            self.expect(")")
            return node
        if kind != "ident":
            raise PromQLParseError(f"unexpected {text!r} in {self.expr!r}")
        lowered = text.lower()
        if lowered in _AGGREGATIONS and (self.at("(", "by", "without")):
            return self.aggregation(lowered)
        if self.at("("):
            return Call(lowered, self.arguments())
        matchers = ""
        if self.peek() == ("bracket", "{"):
            matchers = self.take()[1]
        return Selector(text, matchers)

    def arguments(self) -> tuple[Node, ...]:
        self.expect("(")
        args: list[Node] = []
        while not self.at(")"):
            args.append(self.binary(1))
            if self.at(","):
                self.take()
        self.expect(")")
        return tuple(args)

    def aggregation(self, op: str) -> Node:
        grouping = None
        if self.at("by", "without"):
            keyword = self.take()[1].lower()
            grouping = (keyword, self.label_list())
        args = self.arguments()
        if self.at("by", "without"):
            keyword = self.take()[1].lower()
            grouping = (keyword, self.label_list())
        return Call(op, args, grouping)


def parse(expr: str) -> Node:
    """The expression's tree: numbers, strings, selectors, calls, unary and binary operations."""
    return _Parser(expr).parse()


def walk(node: Node) -> Iterator[tuple[Node, Binary | None]]:
    """Every node of the tree with its parent binary operation (None at the top or below a
    call or unary operation)."""
    stack: list[tuple[Node, Binary | None]] = [(node, None)]
    while stack:
        current, parent = stack.pop()
        yield current, parent
        if isinstance(current, Binary):
            stack += [(current.rhs, current), (current.lhs, current)]
        elif isinstance(current, Call):
            stack += [(arg, None) for arg in reversed(current.args)]
        elif isinstance(current, Unary):
            stack.append((current.operand, None))


def selected_names(node: Node) -> set[str]:
    """The metric names the tree selects (``{__name__="x"}`` included)."""
    names: set[str] = set()
    for current, _ in walk(node):
        if isinstance(current, Selector):
            if current.name is not None:
                names.add(current.name)
            for match in _NAME_MATCHER.finditer(current.matchers):
                names.add(match.group(1) if match.group(1) is not None else match.group(2))
    return names


def constant_value(node: Node) -> float | None:
    """The value of a tree of numbers only (``-1e6``, ``(0.05)``, ``2 * 1e6``), else None."""
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Unary):
        inner = constant_value(node.operand)
        return None if inner is None else (-inner if node.op == "-" else inner)
    if isinstance(node, Binary) and node.op in {"+", "-", "*", "/"}:
        lhs, rhs = constant_value(node.lhs), constant_value(node.rhs)
        if lhs is None or rhs is None or (node.op == "/" and rhs == 0):
            return None
        return {"+": lhs + rhs, "-": lhs - rhs, "*": lhs * rhs, "/": lhs / rhs}[node.op]
    return None


def comparisons(node: Node) -> Iterator[tuple[Binary, Binary | None]]:
    """Every comparison (``== != < > <= >=``) in the tree, with its parent operation."""
    for current, parent in walk(node):
        if isinstance(current, Binary) and current.op in COMPARISON_OPERATORS:
            yield current, parent


def is_aggregation(node: Node) -> bool:
    return isinstance(node, Call) and node.function in _AGGREGATIONS


def drops_label(node: Call, label: str) -> bool:
    """Whether the aggregation ``node`` removes ``label`` from its result."""
    if node.grouping is None:
        return True  # sum(x): no label left
    keyword, labels = node.grouping
    return label not in labels if keyword == "by" else label in labels


def selectors_keeping(node: Node, names: set[str], label: str) -> list[str]:
    """Selectors of ``names`` whose series reach the result of ``node`` with ``label`` still on
    them: no aggregation that drops the label lies between the selector and the top."""
    kept: list[str] = []

    def visit(current: Node, dropped: bool) -> None:
        if isinstance(current, Selector):
            selected = {current.name} if current.name is not None else set()
            selected |= {
                m.group(1) if m.group(1) is not None else m.group(2)
                for m in _NAME_MATCHER.finditer(current.matchers)
            }
            if not dropped and selected & names:
                kept.extend(sorted(selected & names))
        elif isinstance(current, Call):
            inner = dropped or (is_aggregation(current) and drops_label(current, label))
            for arg in current.args:
                visit(arg, inner)
        elif isinstance(current, Unary):
            visit(current.operand, dropped)
        elif isinstance(current, Binary):
            visit(current.lhs, dropped)
            visit(current.rhs, dropped)

    visit(node, False)
    return kept
