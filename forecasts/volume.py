"""Volume × unit cost: forecast a volume-driven cost as volume times unit cost, and split the
deviation against budget into a volume effect and a price/productivity effect.

As Enköping reports it (domain.md §3, 004 §7.3)::

    volume_effect = (budget_volume − forecast_volume) × budget_unit_price
    price_effect  = total_deviation − volume_effect

with ``total_deviation = budget_cost − forecast_cost`` (positive = överskott), so both effects
are positive when they help the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecasts.candidates import MONTHS, Array
from forecasts.engine import PanelForecast, forecast_panel


@dataclass(frozen=True)
class VolumePriceSplit:
    forecast_cost: float
    forecast_volume: float
    budget_cost: float
    budget_volume: float
    budget_unit_price: float
    forecast_unit_cost: float
    total_deviation: float
    volume_effect: float
    price_effect: float


def split_deviation(
    forecast_cost: float, forecast_volume: float, budget_cost: float, budget_volume: float
) -> VolumePriceSplit:
    """Split ``budget_cost − forecast_cost`` into volume and price/productivity effects."""
    if budget_volume == 0:
        raise ValueError("the budgeted volume is zero: no budgeted unit price to split by")
    unit_price = budget_cost / budget_volume
    total = budget_cost - forecast_cost
    volume_effect = (budget_volume - forecast_volume) * unit_price
    return VolumePriceSplit(
        forecast_cost=forecast_cost,
        forecast_volume=forecast_volume,
        budget_cost=budget_cost,
        budget_volume=budget_volume,
        budget_unit_price=unit_price,
        forecast_unit_cost=forecast_cost / forecast_volume if forecast_volume else float("nan"),
        total_deviation=total,
        volume_effect=volume_effect,
        price_effect=total - volume_effect,
    )


def forecast_volume_cost(
    cost: Array, volume: Array, as_of: int, model: str = "auto"
) -> tuple[PanelForecast, PanelForecast, Array]:
    """Forecast volume and unit cost separately; cost path = volume path × unit-cost path.

    ``cost`` and ``volume`` are panels of the same shape. Returns ``(cost forecast, volume
    forecast, unit-cost path)``; the cost forecast keeps the YTD actual cost and takes its
    interval from the direct cost forecast.
    """
    vol_fc = forecast_panel(volume, as_of, model=model)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(volume != 0, cost / volume, np.nan)
    unit_fc = forecast_panel(unit, as_of, model=model)
    direct = forecast_panel(cost, as_of, model=model)
    path = vol_fc.path * unit_fc.path
    bad = ~np.isfinite(path).all(axis=1)
    path[bad] = direct.path[bad]
    full = direct.ytd + path.sum(axis=1)
    half = direct.high - direct.full_year
    cost_fc = PanelForecast(
        as_of=as_of,
        ytd=direct.ytd,
        path=path,
        full_year=full,
        low=full - half,
        high=full + half,
        sigma=direct.sigma,
        model=np.where(bad, direct.model, "volume×price"),
        backtest_errors=direct.backtest_errors,
    )
    return cost_fc, vol_fc, unit_fc.path.reshape(-1, MONTHS - as_of)
