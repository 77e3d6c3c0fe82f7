"""Calibrated 80 % intervals: widths learnt from what the panel's own earlier years did.

The engine's raw width (``forecasts.engine``: a series' backtest errors shrunk to a model width)
is an estimate from two to six numbers, and a series without a backtest of its own (under three
years of history, a new cost centre) has none at all. Both are calibrated here against a
*calibration set*: every series at the same as-of month of up to ``MAX_ORIGINS`` earlier years
(the horizon, months remaining, is the same as now), forecast exactly as the engine would have
then (from the data before that month only), with the year's real outcome.

* **backtest** (the series has its own backtest now): split-conformal scaling. The score of a
  calibration row is ``|error| / raw width``; the interval now is the raw width times the
  80 % quantile of the scores of the rows that had a backtest of their own then. One factor per
  call, so per as-of month (horizon). Fewer than ``MIN_ROWS`` such rows: the panel width below.
* **panel** (no backtest of its own): the 80 % quantile of the absolute errors, relative to the
  year total, of comparable series (the same group, i.e. category; rows that lacked a backtest
  then when there are enough of them, since those forecasts were made the same way), scaled to
  the series' forecast. Too few rows in the group: the whole calibration set.
* **fallback**: no calibration set (fewer than two earlier complete years in the whole panel):
  the raw width, uncalibrated.

``coverage`` is the share of the calibration set's outcomes that the calibrated interval of the
same method would have contained (what "intervallet har träffat i 81 % av fallen i efterhand"
reports); ``None`` for ``fallback``. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from forecasts.candidates import Array

#: The interval's nominal coverage.
LEVEL = 0.8
#: Fewest calibration rows for a conformal factor; fewer: the raw width stands.
MIN_ROWS = 10
#: Fewest rows of one group (category) for its own panel width; fewer: the whole set's.
MIN_GROUP_ROWS = 8

METHOD_BACKTEST = "backtest"
METHOD_PANEL = "panel"
METHOD_FALLBACK = "fallback"


@dataclass(frozen=True)
class CalibrationSet:
    """Forecasts at earlier origins of the same as-of month, with their outcomes (one row each).

    ``error``: (predicted − actual remainder) / |actual year total|; ``raw_sd``: the engine's
    uncalibrated SD then, relative to the forecast year total; ``had_backtest``: the series had
    a backtest of its own at that origin; ``group``: the comparable-series label.
    """

    error: Array
    raw_sd: Array
    had_backtest: NDArray[np.bool_]
    group: NDArray[np.str_]

    @property
    def size(self) -> int:
        return int(self.error.shape[0])


@dataclass(frozen=True)
class Calibrated:
    """Per series: the calibrated relative half-width of the 80 % interval and its method."""

    half_width: Array  # relative to |full year|
    method: NDArray[np.str_]
    coverage: Array  # NaN where unknown


def _quantile(values: Array) -> float:
    """The conformal quantile: the ⌈(n+1)·level⌉-th smallest, so that a new exchangeable row
    is inside with probability ≥ level."""
    n = values.shape[0]
    rank = min(n, int(np.ceil((n + 1) * LEVEL)))
    return float(np.sort(values)[rank - 1])


def calibrate(
    cal: CalibrationSet,
    raw_sd: Array,
    has_backtest: NDArray[np.bool_],
    group: NDArray[np.str_],
    z: float,
) -> Calibrated:
    """Calibrated half-widths (relative) for series with ``raw_sd`` (relative SD), ``z`` the
    normal quantile of the uncalibrated interval (its half-width is ``z · raw_sd``)."""
    n = raw_sd.shape[0]
    half = z * raw_sd.copy()
    method = np.full(n, METHOD_FALLBACK, dtype=object)
    coverage = np.full(n, np.nan)
    ok = np.isfinite(cal.error) & np.isfinite(cal.raw_sd)
    error = np.abs(cal.error[ok])
    raw_then = cal.raw_sd[ok]
    had = cal.had_backtest[ok]
    groups = cal.group[ok]
    if error.shape[0] < MIN_ROWS:
        return Calibrated(half, method.astype(str), coverage)

    # Only rows whose width came from a backtest then can scale a backtest width now. Too few
    # of them (three years of history: the first origin has none) and every series gets the
    # panel width: scaling by rows of another kind of width would count the error twice.
    scored = had & (raw_then > 0)
    conformal = scored.sum() >= MIN_ROWS
    if conformal:
        scores = error[scored] / raw_then[scored]
        factor = _quantile(scores)
        half = np.where(has_backtest, factor * raw_sd, half)
        method[has_backtest] = METHOD_BACKTEST
        coverage[has_backtest] = float(np.mean(scores <= factor))
    by_panel = ~has_backtest if conformal else np.ones(n, dtype=bool)

    for label in np.unique(group[by_panel]) if by_panel.any() else []:
        pool = _panel_pool(error, had, groups, label)
        width = _quantile(pool)
        rows = by_panel & (group == label)
        half[rows] = width
        method[rows] = METHOD_PANEL
        coverage[rows] = float(np.mean(pool <= width))
    return Calibrated(half, method.astype(str), coverage)


def _panel_pool(
    error: Array, had: NDArray[np.bool_], groups: NDArray[np.str_], label: str
) -> Array:
    """Absolute relative errors of the series comparable to one without a backtest: its group's
    rows made without a backtest, else all its group's rows, else the whole set."""
    same = groups == label
    for rows in (same & ~had, same, ~had):
        if rows.sum() >= MIN_GROUP_ROWS:
            return error[rows]
    return error
