"""Each model on constructed series with known answers, and the fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from forecasts.effects import pay_revision_factors
from forecasts.engine import forecast_panel
from forecasts.series import forecast_series
from tests.forecasts.fixtures import SEASONAL_SHAPE, monthly_history

VECTOR_MODELS = ("auto", "runrate", "lastyear", "seasonal", "ses", "theta")


def _history(values: np.ndarray, as_of: int, first_year: int = 2021) -> dict[str, float]:
    full_years = len(values) // 12 - 1
    return monthly_history(values[: 12 * full_years + as_of], first_year)


@pytest.mark.parametrize("model", [*VECTOR_MODELS, "ets"])
def test_flat_series_forecasts_twelve_times_the_level(model: str) -> None:
    fc = forecast_series(monthly_history([500.0] * 44), 2024, 8, model=model)
    assert fc.full_year == pytest.approx(6000.0, rel=1e-6)
    assert fc.low <= 6000.0 <= fc.high


@pytest.mark.parametrize("model", ["auto", "lastyear", "seasonal", "ses", "theta", "ets"])
def test_pure_seasonal_series_is_forecast_exactly_by_seasonal_models(model: str) -> None:
    values = np.tile(SEASONAL_SHAPE * 1000.0, 4)
    fc = forecast_series(_history(values, 6), 2024, 6, model=model)
    assert fc.full_year == pytest.approx(SEASONAL_SHAPE.sum() * 1000.0, rel=1e-3)
    assert fc.path == pytest.approx(tuple(SEASONAL_SHAPE[6:] * 1000.0), rel=1e-3)


def test_run_rate_misses_a_seasonal_december_that_the_shape_models_know() -> None:
    values = np.tile(SEASONAL_SHAPE * 1000.0, 4)
    runrate = forecast_series(_history(values, 8), 2024, 8, model="runrate")
    assert runrate.full_year == pytest.approx(SEASONAL_SHAPE[:8].sum() * 1000.0 * 12 / 8)
    assert runrate.full_year != pytest.approx(SEASONAL_SHAPE.sum() * 1000.0, rel=1e-2)


def test_trend_is_followed_by_theta_and_auto_better_than_run_rate() -> None:
    values = 1000.0 + 10.0 * np.arange(48)
    truth = values[36:].sum()
    hist = _history(values, 8)
    runrate = forecast_series(hist, 2024, 8, model="runrate")
    theta = forecast_series(hist, 2024, 8, model="theta")
    auto = forecast_series(hist, 2024, 8)
    assert abs(theta.full_year - truth) < abs(runrate.full_year - truth)
    assert abs(auto.full_year - truth) < abs(runrate.full_year - truth)
    assert abs(auto.full_year - truth) / truth < 0.01


def test_step_change_this_year_is_carried_forward_by_auto() -> None:
    values = np.full(48, 1000.0)
    values[36 + 3 :] = 1300.0  # a new placement from April
    truth = values[36:].sum()
    auto = forecast_series(_history(values, 8), 2024, 8)
    lastyear = forecast_series(_history(values, 8), 2024, 8, model="lastyear")
    assert auto.full_year > 12 * 1000.0 + 4 * 200.0
    assert abs(auto.full_year - truth) <= abs(lastyear.full_year - truth) + 1e-6


def test_zero_series_forecasts_zero_with_an_empty_interval() -> None:
    fc = forecast_series(monthly_history([0.0] * 44), 2024, 8)
    assert (fc.full_year, fc.low, fc.high) == (0.0, 0.0, 0.0)


def test_negative_series_revenue_stays_negative() -> None:
    values = -np.tile(SEASONAL_SHAPE * 200.0, 4)
    fc = forecast_series(_history(values, 5), 2024, 5)
    assert fc.full_year == pytest.approx(-SEASONAL_SHAPE.sum() * 200.0, rel=1e-3)
    assert fc.low <= fc.full_year <= fc.high < 0


def test_one_month_of_data_falls_back_to_run_rate() -> None:
    fc = forecast_series({"2025-01": 5.0}, 2025, 1)
    assert fc.full_year == pytest.approx(60.0)
    assert fc.model.startswith("auto")
    assert fc.low < 60.0 < fc.high


def test_no_history_at_all_gives_zero() -> None:
    fc = forecast_series({}, 2025, 3)
    assert fc.full_year == 0.0


def test_short_history_uses_the_category_profile() -> None:
    from core.domain import Category

    profile = tuple(float(w) for w in SEASONAL_SHAPE / SEASONAL_SHAPE.sum())
    cat = Category("substitutes", "Vikarier", "cost", profile)
    hist = monthly_history(SEASONAL_SHAPE[:6] * 100.0, 2025)
    fc = forecast_series(hist, 2025, 6, model="seasonal", category=cat)
    assert fc.full_year == pytest.approx(SEASONAL_SHAPE.sum() * 100.0, rel=1e-6)


def test_early_in_the_year_auto_leans_on_the_budget() -> None:
    values = np.full(37, 1000.0)
    values[36] = 1500.0  # a noisy January
    budget = [1000.0] * 12
    with_budget = forecast_series(monthly_history(values), 2024, 1, budget_monthly=budget)
    without = forecast_series(monthly_history(values), 2024, 1)
    assert abs(with_budget.full_year - 12_500.0) < abs(without.full_year - 12_500.0) + 1e-6
    assert with_budget.full_year < 1500.0 * 12


def test_budget_model_scales_the_remaining_budget_by_the_ytd_ratio() -> None:
    values = np.full(40, 110.0)
    fc = forecast_series(
        monthly_history(values), 2024, 4, budget_monthly=[100.0] * 12, model="budget"
    )
    assert fc.full_year == pytest.approx(440.0 + 8 * 110.0)


def test_budget_model_without_budget_falls_back_to_run_rate() -> None:
    fc = forecast_series(monthly_history([100.0] * 40), 2024, 4, model="budget")
    assert fc.model == "budget:runrate"
    assert fc.full_year == pytest.approx(1200.0)


def test_preliminary_month_shortfall_is_expected_to_arrive_later() -> None:
    values = np.full(44, 1000.0)
    values[-1] = 400.0  # August not closed yet
    closed = forecast_series(monthly_history(values), 2024, 8)
    prelim = forecast_series(monthly_history(values), 2024, 8, preliminary_last_month=True)
    assert prelim.full_year == pytest.approx(12_000.0, rel=1e-3)
    assert prelim.full_year > closed.full_year
    assert prelim.ytd == closed.ytd


def test_pay_revision_factors_include_the_retroactive_month() -> None:
    f = pay_revision_factors(as_of=2, revision_month=4, increase=0.03)
    # months 3..12: March and April at old pay, May new pay + April's retro, then new pay
    assert f.tolist() == pytest.approx([1, 1, 1.06] + [1.03] * 7)
    assert pay_revision_factors(6, 4, 0.03).tolist() == [1.0] * 6


def test_pay_revision_raises_the_run_rate_forecast() -> None:
    from core.domain import Category

    cat = Category("salaries", "Löner", "cost", (1 / 12,) * 12, pay_revision_month=4)
    hist = monthly_history([100.0] * 2, 2025)
    plain = forecast_series(hist, 2025, 2, model="runrate", category=cat)
    raised = forecast_series(hist, 2025, 2, model="runrate", category=cat, pay_increase=0.03)
    assert raised.full_year - plain.full_year == pytest.approx(100 * (0.06 + 7 * 0.03))


def test_auto_reports_a_fallback_without_a_backtest() -> None:
    fc = forecast_series(monthly_history([100.0] * 20), 2022, 8)
    assert fc.model == "auto:fallback"


def test_unknown_model_and_month_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        forecast_panel(np.ones((1, 24)), 3, model="magic")
    with pytest.raises(ValueError, match="as_of"):
        forecast_panel(np.ones((1, 24)), 13)


def test_prophet_forecasts_a_seasonal_series_closely() -> None:
    values = np.tile(SEASONAL_SHAPE * 1000.0, 3)
    fc = forecast_series(_history(values, 8, 2022), 2024, 8, model="prophet")
    assert fc.model == "prophet"
    assert fc.full_year == pytest.approx(SEASONAL_SHAPE.sum() * 1000.0, rel=0.03)


def test_auto_beats_the_baselines_on_synthetic_municipal_series(
    municipal_panel: tuple[list[tuple[str, str]], np.ndarray],
) -> None:
    from forecasts.backtest import backtest_panel

    _keys, panel = municipal_panel
    rows, _ = backtest_panel(panel, cutoffs=(8,), models=("auto",))
    by_model = {r.model: r.median_ape_pct for r in rows}
    assert by_model["auto"] < min(by_model["runrate"], by_model["lastyear"])
