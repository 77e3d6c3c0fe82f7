"""Calibrated 80 % intervals (forecasts.calibration): held-out coverage on seeded panels."""

from __future__ import annotations

import numpy as np
import pytest

from forecasts.calibration import (
    METHOD_BACKTEST,
    METHOD_FALLBACK,
    METHOD_PANEL,
    CalibrationSet,
    calibrate,
)
from forecasts.engine import Z80, forecast_panel
from forecasts.live import _Member, _rolled_coverage, _weakest_method
from forecasts.rollup import Leaf

SHAPE = np.array([1.0, 0.9, 1.0, 1.0, 1.1, 1.4, 1.9, 1.6, 1.0, 0.95, 0.95, 1.2])


def _panel(rng: np.random.Generator, n: int, years: int, shock_sd: float) -> np.ndarray:
    """Seasonal series whose level shifts by a persistent surprise from a random month each
    year (like a unit short of staff), with month-to-month noise."""
    base = rng.uniform(1e5, 5e6, n)
    out = np.empty((n, years * 12))
    level = np.ones(n)
    for y in range(years):
        start = rng.integers(0, 12, n)
        shock = rng.normal(0.0, shock_sd, n)
        for m in range(12):
            level_m = level * (1 + np.where(m >= start, shock, 0.0))
            noise = 1 + rng.normal(0.0, 0.03, n)
            out[:, 12 * y + m] = base * SHAPE[m] * level_m * noise
        level = level * (1 + shock) * 1.03
    return out


def _coverage(values: np.ndarray, as_of: int, groups: list[str] | None = None):
    """Forecast the last year at ``as_of`` and return (coverage of its real total, forecast)."""
    actual = values[:, -12:].sum(axis=1)
    fc = forecast_panel(values, as_of, groups=groups)
    inside = (fc.low <= actual) & (actual <= fc.high)
    return float(inside.mean()), fc


@pytest.mark.parametrize("as_of", [3, 8])
def test_series_with_a_backtest_hold_80_percent_on_a_held_out_year(as_of: int) -> None:
    rng = np.random.default_rng(41)
    values = _panel(rng, 600, 6, 0.06)
    coverage, fc = _coverage(values, as_of)
    assert fc.interval_method is not None and fc.interval_coverage is not None
    assert set(fc.interval_method) == {METHOD_BACKTEST}
    assert 0.74 <= coverage <= 0.86, coverage
    # The calibration set's own hit rate is what a report prints ("81 % i efterhand").
    assert 0.78 <= float(fc.interval_coverage[0]) <= 0.85


def test_wilder_history_gives_wider_calibrated_intervals() -> None:
    calm = forecast_panel(_panel(np.random.default_rng(5), 300, 6, 0.02), 6)
    wild = forecast_panel(_panel(np.random.default_rng(5), 300, 6, 0.10), 6)

    def median_width(fc) -> float:
        return float(np.median((fc.high - fc.low) / np.abs(fc.full_year)))

    assert median_width(wild) > 2 * median_width(calm)


def test_new_series_get_the_panel_width_of_their_group_and_hold_80_percent() -> None:
    """Cost centres with one year of history (no backtest possible) among established ones.

    Small enough a panel (fewer than 2 000 training rows) for no cross-learned correction, which
    the calibration set does not replay (with it, the intervals are conservative)."""
    rng = np.random.default_rng(17)
    old_calm = _panel(rng, 150, 6, 0.02)
    old_wild = _panel(rng, 150, 6, 0.12)
    new_calm = _panel(rng, 150, 6, 0.02)
    new_wild = _panel(rng, 150, 6, 0.12)
    for new in (new_calm, new_wild):
        new[:, : 4 * 12] = np.nan  # started two years before the forecast year
    values = np.vstack([old_calm, old_wild, new_calm, new_wild])
    groups = ["calm"] * 150 + ["wild"] * 150 + ["calm"] * 150 + ["wild"] * 150
    actual = values[:, -12:].sum(axis=1)
    fc = forecast_panel(values, 5, groups=groups)
    assert fc.interval_method is not None
    new = slice(300, 600)
    assert set(fc.interval_method[new]) == {METHOD_PANEL}
    assert set(fc.interval_method[:300]) == {METHOD_BACKTEST}
    inside = (fc.low <= actual) & (actual <= fc.high)
    assert 0.72 <= inside[new].mean() <= 0.88, inside[new].mean()
    width = (fc.high - fc.low) / np.abs(fc.full_year)
    assert np.median(width[450:600]) > 1.2 * np.median(width[300:450])  # by group
    assert 0.72 <= inside[:300].mean() <= 0.88


def test_too_short_a_panel_keeps_the_uncalibrated_fallback() -> None:
    values = _panel(np.random.default_rng(3), 50, 2, 0.05)
    fc = forecast_panel(values, 6)
    assert fc.interval_method is not None and fc.interval_coverage is not None
    assert set(fc.interval_method) == {METHOD_FALLBACK}
    assert np.isnan(fc.interval_coverage).all()
    assert (fc.high > fc.low).all()


def test_december_has_no_interval_and_says_so() -> None:
    fc = forecast_panel(_panel(np.random.default_rng(3), 20, 5, 0.05), 12)
    assert fc.interval_method is not None
    assert set(fc.interval_method) == {"actual"}
    np.testing.assert_array_equal(fc.low, fc.high)


def test_calibrate_scales_by_the_conformal_quantile_of_scores() -> None:
    rng = np.random.default_rng(0)
    raw = np.full(400, 0.01)
    error = rng.normal(0.0, 0.02, 400)  # twice the raw SD: the raw interval holds ≈ 48 %
    cal = CalibrationSet(error, raw, np.ones(400, dtype=bool), np.full(400, "x"))
    out = calibrate(cal, np.array([0.01, 0.03]), np.array([True, True]), np.array(["x", "x"]), Z80)
    assert out.half_width[0] == pytest.approx(2 * Z80 * 0.01, rel=0.15)
    assert out.half_width[1] == pytest.approx(3 * out.half_width[0])  # scaled to the series
    assert list(out.method) == [METHOD_BACKTEST, METHOD_BACKTEST]
    assert out.coverage[0] == pytest.approx(0.8, abs=0.01)


def test_calibrate_pools_a_group_only_when_it_has_enough_rows() -> None:
    n = 100
    error = np.concatenate([np.full(n - 3, 0.01), np.full(3, 0.5)])
    group = np.array(["big"] * (n - 3) + ["tiny"] * 3)
    cal = CalibrationSet(error, np.full(n, 0.01), np.zeros(n, dtype=bool), group)
    out = calibrate(cal, np.full(2, 0.01), np.array([False, False]), np.array(["big", "tiny"]), Z80)
    assert list(out.method) == [METHOD_PANEL, METHOD_PANEL]
    assert out.half_width[0] == pytest.approx(0.01)
    # Three rows are too few for a width of their own: the whole set's quantile.
    assert out.half_width[1] == pytest.approx(0.01)


def test_calibrate_without_enough_rows_is_the_fallback() -> None:
    cal = CalibrationSet(np.full(3, 0.1), np.full(3, 0.01), np.ones(3, dtype=bool), np.full(3, ""))
    out = calibrate(cal, np.array([0.02]), np.array([True]), np.array([""]), Z80)
    assert list(out.method) == [METHOD_FALLBACK]
    assert out.half_width[0] == pytest.approx(Z80 * 0.02)
    assert np.isnan(out.coverage[0])


def _member(method: str, coverage: float | None, sigma: float) -> _Member:
    empty = np.zeros(0)
    return _Member(Leaf(0.0, 1.0, sigma), empty, empty, None, "auto", method, coverage)


def test_a_roll_up_carries_its_weakest_leaf_method_and_a_variance_weighted_coverage() -> None:
    members = [_member("backtest", 0.8, 1.0), _member("panel", 0.9, 3.0)]
    assert _weakest_method(members) == "panel"
    assert _rolled_coverage(members) == pytest.approx((0.8 * 1 + 0.9 * 9) / 10)
    assert _weakest_method([*members, _member("fallback", None, 1.0)]) == "fallback"
    assert _rolled_coverage([*members, _member("fallback", None, 1.0)]) is None


@pytest.mark.parametrize("model", ["lastyear", "theta"])
def test_single_models_are_calibrated_on_their_own_past_forecasts(model: str) -> None:
    values = _panel(np.random.default_rng(23), 400, 6, 0.06)
    actual = values[:, -12:].sum(axis=1)
    fc = forecast_panel(values, 6, model=model)
    assert fc.interval_method is not None
    assert set(fc.interval_method) == {METHOD_BACKTEST}
    inside = (fc.low <= actual) & (actual <= fc.high)
    assert 0.72 <= inside.mean() <= 0.88, inside.mean()


def test_run_rate_on_seasonal_series_gets_its_own_forecasts_width() -> None:
    """The run-rate baseline's persistent seasonal error is learnt, not a wide default: wider
    than auto's, and on the safe side (its raw width at early origins rests on fewer years)."""
    values = _panel(np.random.default_rng(23), 400, 6, 0.06)
    actual = values[:, -12:].sum(axis=1)
    runrate = forecast_panel(values, 6, model="runrate")
    auto = forecast_panel(values, 6)
    inside = (runrate.low <= actual) & (actual <= runrate.high)
    assert 0.8 <= inside.mean() < 1.0
    assert np.median(runrate.high - runrate.low) > np.median(auto.high - auto.low)


def test_the_demo_organisation_forecasts_with_calibrated_backtest_intervals(domain) -> None:
    """Four years of history: every leaf has a backtest, every node says so and how often such
    intervals held; December says the year is booked."""
    import json

    from forecasts.live import forecast_organisation
    from services.demo.scenario import generate_scenario
    from streams.aggregation import leaf_series
    from streams.replay import RawMessage, aggregate

    scenario = generate_scenario(seed=5, domain=domain)
    messages = [RawMessage("", json.dumps(e).encode()) for e in scenario.all_events()]
    leaves, _ = leaf_series(aggregate(messages, {}, domain).items.items(), 2024)
    june = forecast_organisation(leaves, domain, 2024, 6)
    costs = [n for n in june.nodes if n.kind == "cost"]
    assert {n.interval_method for n in costs} == {METHOD_BACKTEST}
    assert all(0.7 <= (n.interval_coverage or 0) <= 0.9 for n in costs)
    december = forecast_organisation(leaves, domain, 2024, 12)
    assert {n.interval_method for n in december.nodes} == {"actual"}
