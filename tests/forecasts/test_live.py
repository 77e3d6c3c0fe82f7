"""The organisation forecast (forecasts.live) and the debounced runs (streams.forecasting)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import numpy as np
import pytest

from core.domain import DomainConfig
from forecasts.live import TOTAL, LeafSeries, forecast_organisation
from streams.forecasting import LiveForecaster

YEAR = 2024


def _history(rng: np.random.Generator, level: float, years: int, through: int) -> dict[str, float]:
    out = {}
    for year in range(YEAR - years + 1, YEAR + 1):
        for month in range(1, 13):
            if year == YEAR and month > through:
                break
            out[f"{year}-{month:02d}"] = level * (1 + rng.normal(0, 0.03))
    return out


def _leaves(domain: DomainConfig, through: int = 6) -> list[LeafSeries]:
    rng = np.random.default_rng(5)
    leaves = []
    for unit in ("1110", "1120", "2110", "3110"):
        for category in ("salaries", "substitutes", "revenue_fees"):
            sign = -1 if category.startswith("revenue") else 1
            level = sign * rng.uniform(0.5e6, 3e6)
            budget = [level * 1.02] * 12
            leaves.append(
                LeafSeries(unit, "cost", category, _history(rng, level, 3, through), budget)
            )
        leaves.append(
            LeafSeries(
                unit, "measure", "substitute_hours", _history(rng, 1000, 3, through), [990.0] * 12
            )
        )
    return leaves


def test_every_node_is_the_sum_of_its_children_and_total_excludes_measures(
    domain: DomainConfig,
) -> None:
    result = forecast_organisation(_leaves(domain), domain, YEAR, 6)
    org = domain.org
    for node in result.nodes:
        children = [c.id for c in org.children(node.org_unit)]
        parts = [result.get(c, node.category) for c in children]
        parts = [p for p in parts if p is not None and p.kind == node.kind]
        if parts:
            assert node.full_year == pytest.approx(sum(p.full_year for p in parts), rel=1e-12)
            assert node.actual_ytd == pytest.approx(sum(p.actual_ytd for p in parts), rel=1e-12)
        assert node.low <= node.full_year <= node.high
        assert node.actual_ytd + sum(node.path) == pytest.approx(node.full_year, rel=1e-9)
    total = result.get("VON", TOTAL)
    assert total is not None
    categories = [result.get("VON", c) for c in ("salaries", "substitutes", "revenue_fees")]
    assert total.full_year == pytest.approx(sum(c.full_year for c in categories if c), rel=1e-12)
    assert total.budget_full_year == pytest.approx(
        sum(c.budget_full_year or 0 for c in categories if c), rel=1e-12
    )
    assert total.deviation == pytest.approx(total.budget_full_year - total.full_year)
    assert result.get("VON", "substitute_hours").kind == "measure"  # type: ignore[union-attr]
    assert total.model == "sum"


def test_next_month_interval_spreads_the_full_year_sigma_over_the_remaining_months(
    domain: DomainConfig,
) -> None:
    node = forecast_organisation(_leaves(domain), domain, YEAR, 6).get("1110", "salaries")
    assert node is not None
    expected, low, high = node.next_month()  # type: ignore[misc]
    assert expected == node.path[0]
    assert high - expected == pytest.approx(1.2815515655446004 * node.sigma / math.sqrt(6))
    assert low < expected < high
    december = forecast_organisation(_leaves(domain, 12), domain, YEAR, 12).get("1110", "salaries")
    assert december is not None and december.next_month() is None


def test_volume_linked_category_gets_a_volume_and_price_split(domain: DomainConfig) -> None:
    from dataclasses import replace

    def with_link(measure: str | None) -> DomainConfig:
        category = replace(domain.categories["substitutes"], volume_measure=measure)
        return DomainConfig(
            domain.org, {**domain.categories, "substitutes": category}, domain.measures
        )

    linked, unlinked = with_link("substitute_hours"), with_link(None)
    node = forecast_organisation(_leaves(linked), linked, YEAR, 6).get("AO", "substitutes")
    assert node is not None and node.volume_effect is not None and node.price_effect is not None
    assert node.volume_effect + node.price_effect == pytest.approx(node.deviation, rel=1e-9)
    plain = forecast_organisation(_leaves(unlinked), unlinked, YEAR, 6).get("AO", "substitutes")
    assert plain is not None and plain.volume_effect is None


class _Metrics:
    def __init__(self) -> None:
        self.forecast_status: Any = None
        self.runs = 0

    def observe_forecast(self, seconds: float) -> None:
        self.runs += 1

    def set_alerts_firing(self, *books: Any) -> None:
        self.firing = sum(len(book.firing()) for book in books)

    def set_owned_namnder(self, owners: Any) -> None:
        self.owned = list(owners)

    def set_forecast_series_failed(self, counts: Any) -> None:
        self.series_failed = dict(counts)


def test_forecaster_runs_once_per_state_version_and_publishes_only_changes(
    domain: DomainConfig,
) -> None:
    from contract.validation import parse_event
    from streams.aggregation import apply_events, state_key

    sent: list[tuple[str, str, bytes]] = []
    metrics = _Metrics()
    forecaster = LiveForecaster(
        domain, "auto", None, lambda t, k, v: sent.append((t, k, v)), "fc", "al", metrics
    )
    events = [
        {
            "event_id": f"c{m}",
            "type": "cost",
            "org_unit": "1110",
            "period": f"{YEAR}-{m:02d}",
            "category": "salaries",
            "amount_sek": 1_000_000 + m,
        }
        for m in range(1, 4)
    ]
    import json

    items: dict[str, Any] = {}
    for raw in events:
        event = parse_event(json.dumps(raw).encode(), domain)
        key = state_key(0, event)
        items[key] = apply_events(items.get(key), [event], domain).value
    try:
        assert asyncio.run(forecaster.run_once(1, list(items.items())))
        first = len(sent)
        assert first > 0 and all(topic == "fc" for topic, _, _ in sent)
        assert not asyncio.run(forecaster.run_once(1, list(items.items())))
        # A new state version with the same items: no owner changed, nothing is run again.
        assert not asyncio.run(forecaster.run_once(2, list(items.items())))
        assert forecaster.status.state_version == 2
        assert len(sent) == first and metrics.runs == 1
        assert metrics.owned == ["VON"]
        assert metrics.forecast_status.latest[YEAR].as_of_month == 3
    finally:
        forecaster.close()


def _state_items(domain: DomainConfig, raw_events: list[dict[str, Any]]) -> list[Any]:
    import json

    from contract.validation import parse_event
    from streams.aggregation import apply_events, state_key

    items: dict[str, Any] = {}
    for raw in raw_events:
        event = parse_event(json.dumps(raw).encode(), domain)
        key = state_key(0, event)
        items[key] = apply_events(items.get(key), [event], domain).value
    return list(items.items())


def _overrun_events(through: str, closed: str) -> list[dict[str, Any]]:
    """Two years of flat salaries on 1110 with budget, a 2 mnkr spike in June 2024."""
    events: list[dict[str, Any]] = [
        {
            "event_id": f"b{year}",
            "type": "budget",
            "org_unit": "1110",
            "year": year,
            "category": "salaries",
            "annual": 12_000_000,
        }
        for year in (2023, 2024)
    ]
    for year in (2023, 2024):
        for month in range(1, 13):
            period = f"{year}-{month:02d}"
            if period > through:
                break
            amount = 1_000_000 + (2_000_000 if period == "2024-06" else 0)
            events.append(
                {
                    "event_id": f"c{period}",
                    "type": "cost",
                    "org_unit": "1110",
                    "period": period,
                    "category": "salaries",
                    "amount_sek": amount,
                }
            )
    events.append(
        {"event_id": "close", "type": "period_close", "org_unit": "VON", "period": closed}
    )
    return events


def test_rules_run_on_the_latest_close_and_an_unpublished_alert_is_sent_again(
    domain: DomainConfig,
) -> None:
    from pathlib import Path

    from services.config.rules import load_rules

    rules = load_rules(Path(__file__).resolve().parents[2] / "config", domain)
    sent: list[tuple[str, str, bytes]] = []
    failures = {"left": 1}

    def publish(topic: str, key: str, value: bytes) -> None:
        if topic == "al" and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("broker hiccup")
        sent.append((topic, key, value))

    forecaster = LiveForecaster(domain, "auto", rules, publish, "fc", "al", _Metrics())
    forecaster.restore_alerts([])
    # June is closed and July's postings are already arriving: the rules look at June.
    items = _state_items(domain, _overrun_events(through="2024-07", closed="2024-06"))
    try:
        with pytest.raises(ConnectionError):
            asyncio.run(forecaster.run_once(1, items))
        assert not [s for s in sent if s[0] == "al"]
        assert asyncio.run(forecaster.run_once(1, items))  # the same state, run again
    finally:
        forecaster.close()
    alerts = [s for s in sent if s[0] == "al"]
    assert alerts, "the alert that failed to publish is decided and sent again"
    assert forecaster.status.evaluated == ["2024-06"]
    assert all(b'"period":"2024-06"' in value for _, _, value in alerts)
    assert len({value for _, _, value in alerts}) == len(alerts)


@pytest.mark.parametrize(("alerts_from", "alerted"), [("2024-07", False), ("2024-06", True)])
def test_no_rule_runs_on_a_close_before_alerts_from(
    domain: DomainConfig, alerts_from: str, alerted: bool
) -> None:
    """A first load of history years (BUDGETVAKT_ALERTS_FROM after them) mails nobody."""
    from pathlib import Path

    from services.config.rules import load_rules

    rules = load_rules(Path(__file__).resolve().parents[2] / "config", domain)
    sent: list[tuple[str, str, bytes]] = []
    forecaster = LiveForecaster(
        domain,
        "auto",
        rules,
        lambda topic, key, value: sent.append((topic, key, value)),
        "fc",
        "al",
        _Metrics(),
        alerts_from=alerts_from,
    )
    forecaster.restore_alerts([])
    items = _state_items(domain, _overrun_events(through="2024-07", closed="2024-06"))
    try:
        assert asyncio.run(forecaster.run_once(1, items))
    finally:
        forecaster.close()
    assert bool([s for s in sent if s[0] == "al"]) is alerted
    assert forecaster.status.evaluated == (["2024-06"] if alerted else [])
    assert [s for s in sent if s[0] == "fc"], "forecasts are published either way"


def test_one_series_that_cannot_be_forecast_leaves_the_others_forecast(
    domain: DomainConfig,
) -> None:
    leaves = _leaves(domain)
    huge = {period: 1.7e308 for period in leaves[0].actuals}
    bad = [
        LeafSeries("1120", "cost", "overtime", huge, None),
        LeafSeries("2110", "cost", "overtime", {f"{YEAR}-01": float("nan")}, None),
    ]
    clean = forecast_organisation(leaves, domain, YEAR, 6)
    result = forecast_organisation([*leaves, *bad], domain, YEAR, 6)
    assert {(f.org_unit, f.name) for f in result.failed} == {
        ("1120", "overtime"),
        ("2110", "overtime"),
    }
    assert all(f.reason.startswith("values not finite") for f in result.failed)
    # The rest is the forecast it would have been without the bad series.
    assert [(n.org_unit, n.category) for n in result.nodes] == [
        (n.org_unit, n.category) for n in clean.nodes
    ]
    total, clean_total = result.get("VON", TOTAL), clean.get("VON", TOTAL)
    assert total is not None and clean_total is not None
    assert total.full_year == pytest.approx(clean_total.full_year)
    for node in result.nodes:
        assert math.isfinite(node.full_year) and math.isfinite(node.actual_ytd)


def test_a_panel_that_raises_is_split_until_the_failing_series_is_found(
    domain: DomainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import forecasts.live as live

    real = live._forecast_leaves
    panels: list[int] = []

    def failing_for_one(leaves: Any, *args: Any) -> Any:
        panels.append(len(leaves))
        if any(leaf.org_unit == "2110" and leaf.name == "substitutes" for leaf in leaves):
            raise ZeroDivisionError("a model that breaks on one series")
        return real(leaves, *args)

    monkeypatch.setattr(live, "_forecast_leaves", failing_for_one)
    result = forecast_organisation(_leaves(domain), domain, YEAR, 6)
    assert [(f.org_unit, f.name, f.reason) for f in result.failed] == [
        ("2110", "substitutes", "forecast failed: ZeroDivisionError")
    ]
    assert result.get("2110", "substitutes") is None
    assert result.get("2110", "salaries") is not None and result.get("VON", TOTAL) is not None
    assert len(panels) > 2  # the whole panel, then halves


def test_the_forecaster_reports_a_failed_series_and_publishes_the_rest(
    domain: DomainConfig,
) -> None:
    # The probe's case: sums made infinite before the amount bounds; every run used to fail
    # ("cannot convert float infinity to integer"), for the whole organisation.
    sent: list[tuple[str, str, bytes]] = []
    metrics = _Metrics()
    forecaster = LiveForecaster(
        domain, "auto", None, lambda t, k, v: sent.append((t, k, v)), "fc", "al", metrics
    )
    items = _state_items(domain, _overrun_events(through="2024-06", closed="2024-06"))
    items.append(("p1|1120|2024-03", {"cost": {"overtime": float("inf")}}))
    try:
        assert asyncio.run(forecaster.run_once(1, items))
    finally:
        forecaster.close()
    assert metrics.series_failed == {"cost": 1, "measure": 0}
    units = {key for _, key, _ in sent}
    assert "1110" in units and "VON" in units
    assert metrics.forecast_status.latest[YEAR].failed[0].org_unit == "1120"
