"""Volume × unit cost forecasts and the Enköping-style deviation split."""

from __future__ import annotations

import numpy as np
import pytest

from forecasts.volume import forecast_volume_cost, split_deviation


def test_split_follows_enkoping_volume_effect_formula() -> None:
    # 346 000 h budgeted at 640 kr/h; forecast 360 000 h at 700 kr/h.
    split = split_deviation(360_000 * 700.0, 360_000.0, 346_000 * 640.0, 346_000.0)
    assert split.budget_unit_price == pytest.approx(640.0)
    assert split.volume_effect == pytest.approx(-14_000 * 640.0)
    assert split.price_effect == pytest.approx(-(700 - 640) * 360_000.0)
    assert split.volume_effect + split.price_effect == pytest.approx(split.total_deviation)


def test_split_rejects_a_zero_budget_volume() -> None:
    with pytest.raises(ValueError, match="zero"):
        split_deviation(1.0, 1.0, 1.0, 0.0)


def test_cost_is_forecast_as_volume_times_unit_cost() -> None:
    volume = np.tile(np.array([100.0] * 6 + [120.0] * 6), 3)[None, :]
    unit = np.concatenate([np.full(24, 50.0), np.full(12, 55.0)])[None, :]
    cost = volume * unit
    fc, vol_fc, unit_path = forecast_volume_cost(cost, volume, as_of=8)
    np.testing.assert_allclose(vol_fc.path, [[120.0] * 4], rtol=1e-2)
    np.testing.assert_allclose(unit_path, [[55.0] * 4], rtol=1e-2)
    assert fc.full_year[0] == pytest.approx(cost[0, -12:].sum(), rel=1e-3)
    assert fc.model[0] == "volume×price"
