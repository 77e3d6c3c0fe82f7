"""The PromQL metric-name extractor and the Grafana-to-PromQL helpers the other tests rely on."""

from __future__ import annotations

import pytest

from tests.observability.promql import (
    PLACEHOLDER,
    Binary,
    Number,
    PromQLParseError,
    PromQLTokenError,
    Selector,
    comparisons,
    constant_value,
    grafana_to_promql,
    grafana_variable_promql,
    grafana_variables,
    metric_names,
    parse,
    selected_names,
    template_queries,
)

METRIC_NAME_CASES = [
    ("up", {"up"}),
    ('up{job="budgetvakt-worker"} == 0', {"up"}),
    # Label names and values are not metrics, even when they look like one.
    ('a{org_unit="budgetvakt_x", category=~"overtime|total"}', {"a"}),
    ("budgetvakt:forecast_deviation_sek:sum < -1e6", {"budgetvakt:forecast_deviation_sek:sum"}),
    # Functions and aggregations, grouping before or after the arguments.
    ("sum by (topic, partition) (rate(x_total[5m]))", {"x_total"}),
    ("SUM BY (topic) (x)", {"x"}),
    ("sum without (instance) (x) / count(y) by (le)", {"x", "y"}),
    ("histogram_quantile(0.95, sum by (le) (rate(h_bucket[$__rate_interval])))", {"h_bucket"}),
    # Vector matching keywords and their label lists.
    ("a * on (org_unit) group_left (org_unit_name, namnd) b", {"a", "b"}),
    ("a / ignoring (measure) group_right () b", {"a", "b"}),
    ("a and on () b or c unless d", {"a", "b", "c", "d"}),
    ("a > bool 3", {"a"}),
    ("a atan2 b", {"a", "b"}),
    # Offsets, subqueries, @ modifiers, numbers of every kind.
    ("a unless a offset 30m", {"a"}),
    ("a offset -1h30m", {"a"}),
    ("max_over_time(rate(a[5m])[1h:1m])", {"a"}),
    ("a @ start() + b @ 1609746000", {"a", "b"}),
    ("a + 0x1F + 1.5e-3 + .5 + Inf - NaN", {"a"}),
    # Strings, including escaped quotes and backticks.
    (r'label_replace(a, "dst", "$1 \" b", "src", `(.*)`)', {"a"}),
    ('count_values("value", a)', {"a"}),
    # A name given as a __name__ matcher.
    ('{__name__="budgetvakt_events_total", topic="t"}', {"budgetvakt_events_total"}),
    ("vector(1)", set()),
    ("# just a comment\nscalar(a)", {"a"}),
]


@pytest.mark.parametrize(("expr", "expected"), METRIC_NAME_CASES)
def test_metric_names_finds_exactly_the_selected_metrics(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


@pytest.mark.parametrize(("expr", "expected"), METRIC_NAME_CASES)
def test_the_parser_selects_the_same_metrics(expr: str, expected: set[str]) -> None:
    assert selected_names(parse(expr)) == expected


def test_the_parser_follows_promql_precedence() -> None:
    # and binds looser than comparisons, comparisons looser than arithmetic.
    tree = parse("a < -0.01 * b and on (year) c > 5")
    assert isinstance(tree, Binary) and tree.op == "and"
    left, right = tree.lhs, tree.rhs
    assert isinstance(left, Binary) and left.op == "<" and left.lhs == Selector("a")
    assert isinstance(left.rhs, Binary) and left.rhs.op == "*"
    assert constant_value(left.rhs.lhs) == -0.01
    assert isinstance(right, Binary) and right.op == ">" and right.rhs == Number(5.0)
    # ^ is right-associative; "bool" and group modifiers change nothing in the tree's shape.
    power = parse("a ^ 2 ^ 3")
    assert isinstance(power, Binary) and power.lhs == Selector("a")
    assert parse("a > bool on (x) group_left (y) b") == Binary(">", Selector("a"), Selector("b"))


def test_comparisons_come_with_their_parent_operation() -> None:
    found = [
        (c.op, parent.op if parent else None)
        for c, parent in comparisons(parse("100 * x / (y != 0) or z >= 1e6"))
    ]
    assert sorted(found) == [("!=", "/"), (">=", "or")]
    assert constant_value(parse("-(2 * 1e6) / 4")) == -500_000
    assert constant_value(parse("2 * x")) is None


@pytest.mark.parametrize("expr", ["a +", "sum(a", "a b", "(a))"])
def test_the_parser_rejects_what_is_not_promql(expr: str) -> None:
    with pytest.raises((PromQLParseError, PromQLTokenError)):
        parse(expr)


def test_metric_names_rejects_unterminated_strings_and_brackets() -> None:
    with pytest.raises(PromQLTokenError):
        metric_names('a{job="x}')
    with pytest.raises(PromQLTokenError):
        metric_names("rate(a[5m)")


def test_grafana_variables_are_replaced_by_valid_promql() -> None:
    expr = (
        'sum by (org_unit) (rate(a{org_unit=~"$enhet", year="${ar}", c="${kategori:regex}", '
        'd="[[namnd]]"}[$__rate_interval])) / $__range_s'
    )
    assert grafana_variables(expr) == {
        "enhet",
        "ar",
        "kategori",
        "namnd",
        "__rate_interval",
        "__range_s",
    }
    converted = grafana_to_promql(expr)
    assert "$" not in converted and "[[" not in converted
    assert "[5m]" in converted
    assert converted.count(PLACEHOLDER) == 4
    assert metric_names(converted) == {"a"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "label_values(budgetvakt:forecast_as_of_month:max, year)",
            "budgetvakt:forecast_as_of_month:max",
        ),
        ('label_values(a{b="c, d"}, e)', 'a{b="c, d"}'),
        ("label_values(year)", None),
        ('query_result(i{level="enhet"})', 'i{level="enhet"}'),
        ("label_names()", None),
        ("metrics(budgetvakt_.*)", None),
        ("sum(a)", "sum(a)"),
    ],
)
def test_grafana_variable_queries_give_their_promql(query: str, expected: str | None) -> None:
    assert grafana_variable_promql(query) == expected


def test_label_values_needs_a_label_name_last() -> None:
    with pytest.raises(ValueError, match="label name"):
        grafana_variable_promql("label_values(a, b{c})")


def test_template_queries_are_found_with_their_verbs_filled() -> None:
    template = (
        '{{ $value | printf "%.1f" }} '
        '{{ with printf "x:ratio{org_unit=%q,year=%q} / 1e6" $labels.org_unit $labels.year'
        " | query }}"
        "{{ . | first | value }}{{ end }}"
    )
    assert template_queries(template) == ['x:ratio{org_unit="x",year="x"} / 1e6']
