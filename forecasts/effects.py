"""Domain effects a controller knows, applied on top of the statistical forecast.

* **Preliminary last month** (``forecast_panel(..., preliminary_last_month=True)``): the as-of
  month is not closed, so postings are still missing. The models learn from the months before
  it; what the as-of month lacks against its own forecast (never a negative amount) is added to
  the next month's path, where the late postings will land.
* **Pay revision** (``apply_pay_revision``): before the revision month (April in
  ``config/categories.yaml``), level-type models (run-rate, smoothing on a short history) see
  only the old pay. From the month after the revision on, the path is raised by the increase,
  and that month also gets the retroactive pay for the revision month itself. Models that
  learn a seasonal shape from earlier years already carry last year's step, so ``auto`` with a
  backtest is left alone.
* **Posting lag** (overtime booked the month after it is worked) is carried by the data:
  every model works on booked amounts, the seasonal shapes are learnt from booked months, and
  the category's periodisation profile (the fallback shape and the budget split) is the booked
  one (``overtime_booked``: storhelger and summer show up a month later).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from forecasts.candidates import MONTHS
from forecasts.engine import Z80, PanelForecast

#: Models whose path is a level carried forward (they cannot know about a pay revision).
LEVEL_MODELS = ("runrate", "ses", "theta", "auto:fallback", "auto:runrate", "runrate:runrate")


def pay_revision_factors(as_of: int, revision_month: int, increase: float) -> np.ndarray:
    """Multipliers for months as_of+1 … 12 (retroactive pay included in the paid month)."""
    factors = np.ones(MONTHS - as_of)
    paid = revision_month + 1
    if as_of >= paid or paid > MONTHS:
        return factors
    for month in range(max(as_of + 1, paid), MONTHS + 1):
        factors[month - as_of - 1] = 1.0 + increase
    if paid > as_of:
        # Retro for the revision month (paid at the old rate), booked with the first new pay.
        factors[paid - as_of - 1] += increase
    return factors


def apply_pay_revision(
    fc: PanelForecast, revision_months: Sequence[int | None], increase: float
) -> PanelForecast:
    """Raise level-model paths for series whose category has a pay-revision month."""
    path = fc.path.copy()
    for row, month in enumerate(revision_months):
        if month is None or str(fc.model[row]) not in LEVEL_MODELS:
            continue
        path[row] *= pay_revision_factors(fc.as_of, month, increase)
    full = fc.ytd + path.sum(axis=1)
    return replace(
        fc, path=path, full_year=full, low=full - Z80 * fc.sigma, high=full + Z80 * fc.sigma
    )
