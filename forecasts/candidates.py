"""Vectorised candidate models for the rest of a calendar year, computed for many series at once.

Every function works on a *panel*: ``values`` of shape ``(n_series, n_years * 12)``, calendar
aligned (column ``12 * y + j`` is month ``j + 1`` of year index ``y``), ``NaN`` before a series
starts. For a target year index ``y`` and an as-of month ``m`` only the columns before
``12 * y + m`` are read: the same code therefore serves the forecast and the rolling-origin
backtest (origins ``y - 1``, ``y - 2``, … at the same month ``m``).

Each candidate returns the path of the remaining months ``m + 1 … 12``, shape
``(n_series, 12 - m)``, with ``NaN`` rows where the model does not apply to a series
(e.g. no earlier year for the seasonal shape, no budget for the budget model).

Series are sign-normalised first (revenues are booked negative), so the seasonal shapes and the
multiplicative seasonal index see positive numbers wherever the series allows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

MONTHS = 12
#: Candidate names, in the order used for arrays of candidates.
CANDIDATES: tuple[str, ...] = (
    "runrate",
    "lastyear",
    "seasonal",
    "ses",
    "theta",
    "damped",
    "ses_d",
    "theta_d",
    "damped_d",
    "holt_winters",
    "budget",
)
#: How many earlier years the seasonal shape averages over (all of them, in practice: more years
#: measured better on real series than the last three).
SHAPE_YEARS = 30
#: Floor of the multiplicative seasonal index, so that near-empty months do not blow up.
MIN_INDEX = 0.05
SES_ALPHAS = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.8])
DAMPED_GRID = np.array(
    [(a, b, phi) for a in (0.1, 0.3, 0.6) for b in (0.02, 0.1) for phi in (0.85, 0.95)]
)


@dataclass
class CandidateSet:
    """All candidates for one (target year, as-of month): paths and in-sample noise."""

    paths: Array  # (n_candidates, n_series, 12 - m)
    ytd: Array  # (n_series,) signed, as booked
    month_sigma: Array  # (n_series,) one-step deseasonalised noise, relative to the level
    level: Array  # (n_series,) last smoothed deseasonalised monthly level (sign-normalised)
    alpha: Array  # (n_series,) smoothing weight chosen for SES
    index_rem: Array  # (n_series, 12 - m) seasonal index of the remaining months


def _nan_to_zero(a: Array) -> Array:
    return np.where(np.isnan(a), 0.0, a)


def series_sign(values: Array, end_col: int) -> Array:
    """+1 for series that are mostly positive up to ``end_col``, −1 for mostly negative ones."""
    total = np.nansum(values[:, :end_col], axis=1)
    return np.where(total < 0, -1.0, 1.0)


def seasonal_profile(
    x: Array, year: int, fallback: Array, n_years: int = SHAPE_YEARS
) -> tuple[Array, Array]:
    """Average monthly shares of the last ``n_years`` complete, positive years before ``year``.

    Returns ``(profile (n, 12) summing to 1, number of years used (n,))``; series without a
    usable year get ``fallback`` (the category's periodisation profile, or flat).
    """
    n = x.shape[0]
    acc = np.zeros((n, MONTHS))
    used = np.zeros(n)
    for k in range(max(0, year - n_years), year):
        block = x[:, MONTHS * k : MONTHS * (k + 1)]
        total = block.sum(axis=1)
        ok = ~np.isnan(block).any(axis=1) & (total > 0) & (block.min(axis=1) >= -0.05 * total)
        shares = np.where(ok[:, None], block / np.where(ok, total, 1.0)[:, None], 0.0)
        acc += shares
        used += ok
    profile = np.where(used[:, None] > 0, acc / np.maximum(used, 1)[:, None], fallback)
    return profile, used


def _moving_sum(a: Array, width: int) -> Array:
    """Sum over a trailing window of ``width`` columns; NaN unless the whole window is valid."""
    valid = ~np.isnan(a)
    c = np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(_nan_to_zero(a), axis=1)], axis=1)
    k = np.concatenate([np.zeros((a.shape[0], 1)), np.cumsum(valid, axis=1)], axis=1)
    out = np.full(a.shape, np.nan)
    if a.shape[1] >= width:
        s = c[:, width:] - c[:, :-width]
        full = (k[:, width:] - k[:, :-width]) == width
        out[:, width - 1 :] = np.where(full, s, np.nan)
    return out


def decomposition_index(x: Array, fallback: Array) -> tuple[Array, Array]:
    """Multiplicative seasonal index by ratio to a centred 2×12 moving average (classical
    decomposition), averaged over every available year; columns of ``x`` start in January.

    Returns ``(index (n, 12) with mean 1, seasonality strength in [0, 1] (n,))``. The strength is
    1 when the lag-12 autocorrelation is significant at 90 % (the Theta method's test) and fades
    to 0 as it becomes insignificant; callers shrink the index towards 1 by it.
    """
    n, t_len = x.shape
    s12 = _moving_sum(x, 12)
    # Centred 2×12 MA at column t averages the 12-sums ending at t+6 and t+5.
    ma = np.full(x.shape, np.nan)
    if t_len > 12:
        ma[:, 6 : t_len - 6] = (s12[:, 12:] + s12[:, 11:-1]) / 24.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(ma > 0, x / ma, np.nan)
    pad = (-t_len) % MONTHS
    ratio = np.concatenate([ratio, np.full((n, pad), np.nan)], axis=1)
    by_month = ratio.reshape(n, -1, MONTHS)
    cnt = (~np.isnan(by_month)).sum(axis=1)
    with np.errstate(invalid="ignore"):
        idx = np.nansum(by_month, axis=1) / np.maximum(cnt, 1)
    ok = (cnt > 0).all(axis=1)
    idx = np.where(ok[:, None], idx, MONTHS * fallback)
    idx = idx / np.maximum(idx.mean(axis=1, keepdims=True), 1e-9)

    # Lag-12 autocorrelation test (Bartlett limit), NaN-aware.
    valid = ~np.isnan(x)
    cnt_x = valid.sum(axis=1)
    mean = _nan_to_zero(x).sum(axis=1) / np.maximum(cnt_x, 1)
    dev = np.where(valid, x - mean[:, None], 0.0)
    denom = (dev * dev).sum(axis=1)
    acf = np.zeros((n, MONTHS))
    for lag in range(1, MONTHS + 1):
        acf[:, lag - 1] = (dev[:, lag:] * dev[:, :-lag]).sum(axis=1) / np.maximum(denom, 1e-12)
    limit = 1.645 * np.sqrt((1 + 2 * (acf[:, :-1] ** 2).sum(axis=1)) / np.maximum(cnt_x, 1))
    strength = np.clip(np.abs(acf[:, -1]) / np.maximum(limit, 1e-12), 0.0, 1.0)
    strength = np.where(ok & (cnt_x >= 2 * MONTHS), strength, 0.0)
    return idx, strength


def _ses_grid(d: Array, alphas: Array) -> tuple[Array, Array, Array, Array]:
    """Simple exponential smoothing of every row for every alpha, skipping NaNs.

    Returns ``(level (n, A), sse (n, A), sum of squared relative errors (n, A), count (n,))``;
    errors count from the fourth observation on, so the start-up does not dominate.
    """
    n, t_len = d.shape
    level = np.full((n, alphas.size), np.nan)
    sse = np.zeros((n, alphas.size))
    rel = np.zeros((n, alphas.size))
    seen = np.zeros(n)
    for t in range(t_len):
        obs = d[:, t]
        valid = ~np.isnan(obs)
        started = ~np.isnan(level[:, 0])
        err = obs[:, None] - level
        scored = (valid & started & (seen >= 3))[:, None]
        sse += np.where(scored, err * err, 0.0)
        scale = np.maximum(np.abs(level), 1e-9)
        rel += np.where(scored, (err / scale) ** 2, 0.0)
        upd = valid[:, None] & started[:, None]
        level = np.where(upd, level + alphas[None, :] * err, level)
        level = np.where((valid & ~started)[:, None], obs[:, None], level)
        seen += valid
    count = np.maximum(seen - 3, 0)
    return level, sse, rel, count


def _damped_grid(d: Array, grid: Array) -> tuple[Array, Array, Array]:
    """Additive damped-trend Holt smoothing for every row and every (alpha, beta, phi)."""
    n, t_len = d.shape
    a, b, phi = grid[:, 0][None, :], grid[:, 1][None, :], grid[:, 2][None, :]
    level = np.full((n, grid.shape[0]), np.nan)
    trend = np.zeros((n, grid.shape[0]))
    sse = np.zeros((n, grid.shape[0]))
    seen = np.zeros(n)
    for t in range(t_len):
        obs = d[:, t]
        valid = ~np.isnan(obs)
        started = ~np.isnan(level[:, 0])
        pred = level + phi * trend
        err = obs[:, None] - pred
        scored = (valid & started & (seen >= 3))[:, None]
        sse += np.where(scored, err * err, 0.0)
        upd = valid[:, None] & started[:, None]
        new_level = pred + a * err
        new_trend = phi * trend + a * b * err
        level = np.where(upd, new_level, level)
        trend = np.where(upd, new_trend, trend)
        level = np.where((valid & ~started)[:, None], obs[:, None], level)
        seen += valid
    return level, trend, sse


HW_GRID = np.array([(a, g) for a in (0.1, 0.2, 0.4, 0.7) for g in (0.02, 0.1, 0.25)])


def _holt_winters(x: Array, index0: Array, end: int, rem: int) -> Array:
    """Multiplicative Holt-Winters without trend (level and seasonal index both smoothed),
    every (alpha, gamma) of ``HW_GRID`` at once, the best by in-sample relative one-step error.
    ``index0`` (n, 12) starts the seasonal states; returns the path (n, rem)."""
    n = x.shape[0]
    grid = HW_GRID.shape[0]
    a, g = HW_GRID[:, 0][None, :], HW_GRID[:, 1][None, :]
    level = np.full((n, grid), np.nan)
    season = np.repeat(index0[:, None, :], grid, axis=1)
    sse = np.zeros((n, grid))
    seen = np.zeros(n)
    for t in range(end):
        j = t % MONTHS
        obs = x[:, t]
        valid = ~np.isnan(obs)
        started = ~np.isnan(level[:, 0])
        s_j = season[:, :, j]
        pred = level * s_j
        with np.errstate(invalid="ignore", divide="ignore"):
            err = (obs[:, None] - pred) / np.maximum(np.abs(pred), 1e-9)
            scored = (valid & started & (seen >= MONTHS))[:, None]
            sse += np.where(scored, err * err, 0.0)
            upd = (valid & started)[:, None]
            new_level = a * (obs[:, None] / np.maximum(s_j, 1e-3)) + (1 - a) * level
            new_s = g * (obs[:, None] / np.where(np.abs(new_level) > 1e-9, new_level, np.nan))
            new_s = new_s + (1 - g) * s_j
        new_s = np.where(np.isfinite(new_s), np.clip(new_s, 0.02, 20.0), s_j)
        season[:, :, j] = np.where(upd, new_s, s_j)
        level = np.where(upd, new_level, level)
        level = np.where((valid & ~started)[:, None], obs[:, None] / np.maximum(s_j, 1e-3), level)
        seen += valid
    best = np.argmin(sse, axis=1)
    rows = np.arange(n)
    return level[rows, best][:, None] * season[rows, best][:, MONTHS - rem :]


def _ols_slope(d: Array) -> Array:
    t = np.arange(d.shape[1], dtype=float)[None, :]
    valid = ~np.isnan(d)
    cnt = valid.sum(axis=1)
    tm = np.where(valid, t, 0.0).sum(axis=1) / np.maximum(cnt, 1)
    dm = _nan_to_zero(d).sum(axis=1) / np.maximum(cnt, 1)
    dt = np.where(valid, t - tm[:, None], 0.0)
    dd = np.where(valid, d - dm[:, None], 0.0)
    var = (dt * dt).sum(axis=1)
    return np.where((cnt >= 3) & (var > 0), (dt * dd).sum(axis=1) / np.maximum(var, 1e-12), 0.0)


def shrunk_decomposition_index(history: Array, fallback: Array) -> Array:
    """Classical-decomposition index shrunk towards 1 by the seasonality test's strength."""
    idx, strength = decomposition_index(history, fallback)
    return np.maximum(1.0 + strength[:, None] * (idx - 1.0), MIN_INDEX)


@dataclass
class _Smoothed:
    ses: Array
    theta: Array
    damped: Array
    level: Array
    alpha: Array
    month_sigma: Array
    n_obs: Array


def _smoothing_paths(x: Array, index: Array, end: int, rem: int) -> _Smoothed:
    """SES, Theta and damped Holt on ``x / index``, each re-seasonalised over ``rem`` months."""
    n = x.shape[0]
    n_years_known = end // MONTHS + 1
    tiled = np.tile(index, (1, n_years_known))[:, :end]
    d = x / tiled
    level, sse, rel, count = _ses_grid(d, SES_ALPHAS)
    best = np.argmin(np.where(count[:, None] > 0, sse, 0.0), axis=1)
    rows = np.arange(n)
    ses_level = level[rows, best]
    alpha = SES_ALPHAS[best]
    index_rem = index[:, MONTHS - rem :]
    month_sigma = np.where(count > 0, np.sqrt(rel[rows, best] / np.maximum(count, 1)), np.nan)

    slope = _ols_slope(d)
    n_obs = (~np.isnan(d)).sum(axis=1).astype(float)
    h = np.arange(1, rem + 1, dtype=float)[None, :]
    a = alpha[:, None]
    theta_drift = 0.5 * slope[:, None] * (h - 1 + 1 / a - (1 - a) ** n_obs[:, None] / a)

    d_level, d_trend, d_sse = _damped_grid(d, DAMPED_GRID)
    best_d = np.argmin(d_sse, axis=1)
    phi = DAMPED_GRID[best_d, 2][:, None]
    damp_sum = np.cumsum(phi**h, axis=1)
    damped = d_level[rows, best_d][:, None] + d_trend[rows, best_d][:, None] * damp_sum
    return _Smoothed(
        ses=ses_level[:, None] * index_rem,
        theta=(ses_level[:, None] + theta_drift) * index_rem,
        damped=damped * index_rem,
        level=ses_level,
        alpha=alpha,
        month_sigma=month_sigma,
        n_obs=n_obs,
    )


def candidate_paths(
    values: Array,
    year: int,
    as_of: int,
    budgets: Array | None = None,
    fallback_profile: Array | None = None,
) -> CandidateSet:
    """Compute every candidate's remaining-month path for target year index ``year``.

    ``budgets``: optional ``(n, n_years, 12)`` monthly budget (NaN where none).
    ``fallback_profile``: ``(n, 12)`` shares used where a series has no complete earlier year.
    """
    n = values.shape[0]
    m = as_of
    rem = MONTHS - m
    start = MONTHS * year
    end = start + m
    known = values[:, :end].astype(float, copy=True)
    sgn = series_sign(known, end)
    x = known * sgn[:, None]
    if fallback_profile is None:
        fallback_profile = np.full((n, MONTHS), 1.0 / MONTHS)

    cur = _nan_to_zero(x[:, start:end])
    ytd = cur.sum(axis=1)
    paths = np.full((len(CANDIDATES), n, rem), np.nan)

    # Run-rate: the year-to-date monthly average carried to December.
    paths[0] = np.repeat((ytd / max(m, 1))[:, None], rem, axis=1) if m > 0 else 0.0

    # Last year's shape: this year's YTD scaled by last year's remainder / YTD.
    if year >= 1:
        ly = x[:, start - MONTHS : start]
        ly_ytd = ly[:, :m].sum(axis=1)
        ok = ~np.isnan(ly).any(axis=1) & (ly_ytd > 0)
        ratio = np.where(ok, ytd / np.where(ok, ly_ytd, 1.0), np.nan)
        paths[1] = ly[:, m:] * ratio[:, None]

    # Seasonal shape averaged over up to SHAPE_YEARS earlier years.
    profile, _used = seasonal_profile(x, year, fallback_profile)
    p_ytd = profile[:, :m].sum(axis=1)
    ok = p_ytd > 1e-6  # without an earlier year, the fallback (category) profile
    paths[2] = np.where(
        ok[:, None], profile[:, m:] * (ytd / np.maximum(p_ytd, 1e-6))[:, None], np.nan
    )

    # Exponential smoothing and Theta on the deseasonalised series, with two seasonal indices:
    # the averaged yearly shares (follows the shape closely) and a classical decomposition index
    # shrunk by a seasonality test (robust on noisy series). The backtest weighs them per series.
    share_index = np.maximum(MONTHS * profile, MIN_INDEX)
    decomp_index = shrunk_decomposition_index(x[:, :start], fallback_profile)
    for offset, index in ((3, share_index), (6, decomp_index)):
        sm = _smoothing_paths(x, index, end, rem)
        paths[offset], paths[offset + 1], paths[offset + 2] = sm.ses, sm.theta, sm.damped
        # Too-short series: the smoothing models need a handful of points.
        paths[offset : offset + 3, np.less(sm.n_obs, 6), :] = np.nan
        if offset == 3:
            first = sm
    index_rem = share_index[:, m:]
    hw = _holt_winters(x, decomp_index, end, rem)
    hw[first.n_obs < 2 * MONTHS] = np.nan
    paths[CANDIDATES.index("holt_winters")] = hw

    # Periodised budget corrected by the year-to-date deviation (ratio of actual to budget).
    if budgets is not None and budgets.shape[1] > year:
        bud = budgets[:, year, :] * sgn[:, None]
        b_ytd = bud[:, :m].sum(axis=1)
        has_budget: NDArray[np.bool_] = np.asarray(~np.isnan(bud).any(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(has_budget & (b_ytd > 0) & (m > 0), ytd / b_ytd, 1.0)
        paths[CANDIDATES.index("budget")] = np.where(
            has_budget[:, None], bud[:, m:] * ratio[:, None], np.nan
        )

    paths = paths * sgn[None, :, None]
    return CandidateSet(
        paths=paths,
        ytd=ytd * sgn,
        month_sigma=first.month_sigma,
        level=first.level * sgn,
        alpha=first.alpha,
        index_rem=index_rem,
    )
