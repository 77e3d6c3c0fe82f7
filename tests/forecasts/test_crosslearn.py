"""The cross-learned correction of ``auto`` (``forecasts.crosslearn``)."""

from __future__ import annotations

import numpy as np
import pytest

from forecasts import crosslearn
from forecasts.engine import forecast_panel
from tests.forecasts.fixtures import SEASONAL_SHAPE


def test_correction_learns_a_relationship_shared_by_the_panel() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 5))
    target = np.where(x[:, 0] > 0, 0.2, -0.1) + rng.normal(0, 0.02, 3000)
    new = rng.normal(size=(400, 5))
    factor = crosslearn.correction(x, target, np.ones(3000), new)
    assert factor is not None
    assert np.median(factor[new[:, 0] > 0.3]) == pytest.approx(0.2, abs=0.03)
    assert np.median(factor[new[:, 0] < -0.3]) == pytest.approx(-0.1, abs=0.03)


def test_correction_is_clipped_and_deterministic() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2000, 3))
    target = np.full(2000, 3.0)  # far beyond MAX_CORRECTION
    first = crosslearn.correction(x, target, np.ones(2000), x[:50])
    second = crosslearn.correction(x, target, np.ones(2000), x[:50])
    assert first is not None and second is not None
    assert np.array_equal(first, second)
    assert np.all(first <= crosslearn.MAX_CORRECTION)


def test_too_few_rows_or_zero_weights_give_no_correction() -> None:
    x = np.zeros((crosslearn.MIN_TRAINING_ROWS - 1, 3))
    y = np.zeros(x.shape[0])
    assert crosslearn.correction(x, y, np.ones(x.shape[0]), x[:3]) is None
    x = np.zeros((crosslearn.MIN_TRAINING_ROWS + 10, 3))
    y = np.zeros(x.shape[0])
    assert crosslearn.correction(x, y, np.zeros(x.shape[0]), x[:3]) is None


def test_training_target_is_the_missing_factor_weighted_by_the_remainders_share() -> None:
    target, weight = crosslearn.training_target(
        actual_rem=np.array([110.0, 50.0, 10.0, 1.0]),
        combined_rem=np.array([100.0, 100.0, 0.0, -1.0]),
        ytd=np.array([200.0, 300.0, 100.0, -3.0]),
    )
    assert target[0] == pytest.approx(0.1)
    assert target[1] == pytest.approx(-crosslearn.MAX_CORRECTION)  # clipped from −0.5
    assert np.isnan(target[2]) and weight[2] == 0.0  # no combination to correct
    assert target[3] == pytest.approx(-crosslearn.MAX_CORRECTION)
    assert weight[0] == pytest.approx(100 / 300)
    assert weight[3] == pytest.approx(1 / 4)


def _mean_reverting_panel(n: int, years: int, seed: int) -> np.ndarray:
    """Seasonal series whose yearly shock shows fully in Jan–Aug but only a fifth of it persists
    into Sep–Dec: a pattern one series' few years cannot reveal, the panel can."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(50, 500, n)[:, None, None]
    shock = rng.normal(0, 0.15, (n, years, 1))
    persist = np.where(np.arange(12) < 8, 1.0, 0.2)[None, None, :]
    noise = rng.normal(0, 0.01, (n, years, 12))
    values = level * SEASONAL_SHAPE[None, None, :] * (1 + shock * persist + noise)
    return values.reshape(n, years * 12)


def test_auto_learns_what_the_panel_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    panel = _mean_reverting_panel(n=600, years=6, seed=8)
    actual = panel[:, -12:].sum(axis=1)

    def ape(fc_full: np.ndarray) -> float:
        return float(np.median(np.abs(fc_full - actual) / actual))

    learnt = forecast_panel(panel, 8).full_year
    monkeypatch.setattr(crosslearn, "MIN_TRAINING_ROWS", 10**9)
    plain = forecast_panel(panel, 8).full_year
    assert ape(learnt) < 0.7 * ape(plain)


def test_one_series_alone_gets_the_plain_combination_and_a_panel_changes_it() -> None:
    panel = _mean_reverting_panel(n=600, years=6, seed=9)
    alone = forecast_panel(panel[:1], 8)
    in_panel = forecast_panel(panel, 8)
    again = forecast_panel(panel, 8)
    assert alone.full_year[0] != pytest.approx(in_panel.full_year[0], rel=1e-6)
    assert np.array_equal(in_panel.full_year, again.full_year)
    assert list(alone.model) == ["auto"] and set(in_panel.model) == {"auto"}
