"""Full-year forecasts for many series at once: models, ``auto`` combination and 80 % intervals.

``forecast_panel`` is the batch entry point (the streaming worker and the CLI call it with every
touched series); ``forecasts.series.forecast_series`` wraps it for one series.

For target year Y and as-of month m: ``full_year = actual(Jan..m) + Σ path(m+1..12)``. The
year-to-date already fixes m/12 of the total, so every model forecasts only the remainder.

``auto`` (the default) computes every vectorised candidate (``forecasts.candidates``) at the
target year *and* at the same month m of up to ``MAX_ORIGINS`` earlier years (rolling-origin
backtest on the series' own history). Each candidate's weight is the inverse of its mean squared
backtest error of the remainder (relative to the year total), shrunk towards equal weights.
On a panel large enough, ``forecasts.crosslearn`` then corrects the combination's remainder by
what the same combination got wrong at earlier origin years across all series. The interval
width comes from the combination's own backtest errors, shrunk towards a model-based width
(SES error propagation), and is then calibrated on the panel's earlier origins
(``forecasts.calibration``: the method and the calibration set's hit rate come back with it).

The origin years read nothing of the target year, so their table is kept between calls under a
fingerprint of the history it was computed from (``_cached_origin_years``, ``forecasts.cache``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from core.settings import MODELS
from forecasts import calibration, crosslearn
from forecasts.cache import BoundedCache, check_abort, fingerprint, frozen
from forecasts.candidates import CANDIDATES, MONTHS, Array, candidate_paths

#: Earlier years used as backtest origins.
MAX_ORIGINS = 6
#: Shrinkage of the inverse-MSE weights towards the prior (fraction of the mean MSE added).
WEIGHT_SHRINK = 0.2
#: Weights ∝ prior / (MSE + shrink · mean MSE) ** WEIGHT_POWER.
WEIGHT_POWER = 1.5
#: Model families; the prior gives every family the same weight, so that three smoothing
#: variants on one seasonal index do not outvote the seasonal shapes three to one.
FAMILIES: dict[str, str] = {
    "runrate": "runrate",
    "lastyear": "shape",
    "seasonal": "shape",
    "ses": "smoothing_shares",
    "theta": "smoothing_shares",
    "damped": "smoothing_shares",
    "ses_d": "smoothing_decomposition",
    "theta_d": "smoothing_decomposition",
    "damped_d": "smoothing_decomposition",
    "holt_winters": "holt_winters",
    "budget": "budget",
}
_FAMILY_PRIOR = np.array(
    [1.0 / sum(1 for f in FAMILIES.values() if f == FAMILIES[c]) for c in CANDIDATES]
)
#: Pseudo-count of the model-based width against the backtest errors.
PRIOR_ORIGINS = 2.0
#: z of a central 80 % interval.
Z80 = 1.2815515655446004
#: Width calibration: ratio of the needed to the estimated width, measured once on the real
#: monthly series of bench/forecast_accuracy.py (M1, M3, tourism); one number for all cutoffs.
WIDTH_CALIBRATION = 1.0
#: With the budget and a month or two of actuals, the budget carries this weight in ``auto``.
EARLY_BUDGET_WEIGHT = 0.5

_AUTO_POOL = tuple(c for c in CANDIDATES if c != "runrate")


@dataclass
class PanelForecast:
    """Forecasts for n series at one as-of month (amounts signed as booked)."""

    as_of: int
    ytd: Array  # (n,)
    path: Array  # (n, 12 - as_of)
    full_year: Array  # (n,)
    low: Array  # (n,)
    high: Array  # (n,)
    sigma: Array  # (n,) standard deviation of the full-year total, for roll-ups
    model: NDArray[np.str_]  # (n,) model used, e.g. "auto", "auto:fallback", "runrate"
    backtest_errors: Array  # (origins, n) SEK errors of the remainder at earlier origins (NaN)
    # (n,) how the interval's width was set: "backtest", "panel", "fallback" (forecasts.calibration)
    # or "actual" (December: nothing left to forecast)
    interval_method: NDArray[np.str_] | None = None
    # (n,) share of the calibration set's outcomes inside such an interval; NaN when unknown
    interval_coverage: Array | None = None


@dataclass
class _OriginYear:
    """Every candidate at the as-of month of one earlier year, and what really happened."""

    sums: Array  # (C, n) candidates' remainders, signed as booked
    available: NDArray[np.bool_]  # (C, n) candidate had a forecast
    ytd: Array  # (n,)
    remainder: Array  # (n,) actual remainder, NaN where the year is incomplete
    total: Array  # (n,) actual year total, NaN where incomplete
    month_sigma: Array  # (n,)
    n_obs: Array  # (n,) observations before the as-of month
    model_sd: Array | None = None  # (n,) SES error propagation of the remainder (SEK)


def _origin_years(
    values: Array,
    years: range,
    as_of: int,
    budgets: Array | None,
    fallback: Array | None,
) -> dict[int, _OriginYear]:
    """Candidates at month ``as_of`` of each year in ``years`` that has a complete series with
    an earlier year (each origin only sees data before its own month ``as_of``)."""
    table: dict[int, _OriginYear] = {}
    for oy in years:
        if oy < 1:
            continue
        check_abort()  # warming gives way between origin years (outside it: no-op)
        block = values[:, MONTHS * oy : MONTHS * (oy + 1)]
        complete = ~np.isnan(block).any(axis=1) & ~np.isnan(values[:, MONTHS * (oy - 1)])
        if not complete.any():
            continue
        cs = candidate_paths(values, oy, as_of, budgets, fallback)
        total = np.where(complete, block.sum(axis=1), np.nan)
        table[oy] = _OriginYear(
            sums=cs.paths.sum(axis=2),
            available=np.asarray(~np.isnan(cs.paths).any(axis=2)),
            ytd=cs.ytd,
            remainder=np.where(complete, block[:, as_of:].sum(axis=1), np.nan),
            total=total,
            month_sigma=cs.month_sigma,
            n_obs=(~np.isnan(values[:, : MONTHS * oy + as_of])).sum(axis=1).astype(float),
            model_sd=_model_sigma(cs.month_sigma, cs.level, cs.alpha, cs.index_rem),
        )
    return table


#: Bounds of the cache of origin-year tables. A table is ≈ 1 kB per series and origin year
#: (≈ 3 MB for a nämnd of 2 660 series with three origins); the worker needs a few per nämnd and
#: run (the as-of month, the month before, each year's latest month), so 256 entries cover
#: several nämnder, and the bytes bound caps what a kommun's worth of large panels can hold.
ORIGIN_CACHE_ENTRIES = 256
ORIGIN_CACHE_BYTES = 256 * 2**20


def _table_bytes(table: dict[int, _OriginYear]) -> int:
    return sum(
        value.nbytes
        for origin in table.values()
        for value in vars(origin).values()
        if isinstance(value, np.ndarray)
    )


_origin_cache: BoundedCache[dict[int, _OriginYear]] = BoundedCache(
    "origin years", ORIGIN_CACHE_ENTRIES, ORIGIN_CACHE_BYTES, _table_bytes
)


def _cached_origin_years(
    values: Array,
    years: range,
    as_of: int,
    budgets: Array | None,
    fallback: Array | None,
) -> dict[int, _OriginYear]:
    """``_origin_years``, kept between calls (``forecasts.cache``). Origins before year index
    ``years.stop`` read only the columns before it (and the budgets of those years), so the key
    is a fingerprint of exactly those: postings in the forecast year reuse the table, a change
    in a history year recomputes it."""
    history_end = MONTHS * years.stop
    key = fingerprint(
        "origin-years",
        values[:, :history_end],
        None if budgets is None else budgets[:, : years.stop],
        fallback,
        as_of,
        years.start,
        years.stop,
    )
    table = _origin_cache.get(key)
    if table is None:
        table = _origin_years(values, years, as_of, budgets, fallback)
        for origin in table.values():
            for value in vars(origin).values():
                if isinstance(value, np.ndarray):
                    frozen(value)
        _origin_cache.put(key, table)
    return table


def _remainder_errors(table: dict[int, _OriginYear], year: int, n: int) -> tuple[Array, Array]:
    """Backtest for target ``year``: candidates' remainder errors at the same month of up to
    ``MAX_ORIGINS`` earlier years.

    Returns ``(relative errors (K, C, n), year totals (K, n))``, NaN where an origin year is
    incomplete or has no earlier year to learn from.
    """
    origins = [year - k for k in range(1, MAX_ORIGINS + 1) if year - k >= 1]
    errs = np.full((len(origins), len(CANDIDATES), n), np.nan)
    totals = np.full((len(origins), n), np.nan)
    for i, oy in enumerate(origins):
        origin = table.get(oy)
        if origin is None:
            continue
        scale = np.where(np.abs(origin.total) > 0, np.abs(origin.total), np.nan)
        errs[i] = (origin.sums - origin.remainder[None, :]) / scale[None, :]
        totals[i] = origin.total
    return errs, totals


def _auto_weights(errs: Array, available: NDArray[np.bool_]) -> tuple[Array, NDArray[np.bool_]]:
    """Per-series weights over candidates from backtest MSE; the family prior without one.

    ``errs``: (K, C, n) relative errors; ``available``: (C, n) candidate has a forecast now.
    Returns ``(weights (C, n), has_backtest (n,))``.
    """
    if errs.shape[0]:
        cnt = (~np.isnan(errs)).sum(axis=0)
        mse = np.where(cnt > 0, np.nansum(errs**2, axis=0) / np.maximum(cnt, 1), np.nan)
    else:
        mse = np.full(available.shape, np.nan)
    scored = ~np.isnan(mse) & available
    has_backtest = scored.sum(axis=0) >= 2
    mean_mse = np.nansum(np.where(scored, mse, 0.0), axis=0) / np.maximum(scored.sum(axis=0), 1)
    # A candidate without a backtest (e.g. a budget only for this year) counts as average.
    mse = np.where(scored, mse, mean_mse[None, :])
    w = 1.0 / (mse + WEIGHT_SHRINK * mean_mse[None, :] + 1e-18) ** WEIGHT_POWER
    w = np.where(has_backtest[None, :], w, 1.0) * _FAMILY_PRIOR[:, None]
    w = np.where(available, w, 0.0)
    total = w.sum(axis=0)
    return w / np.where(total > 0, total, 1.0), has_backtest


def _model_sigma(cs_month_sigma: Array, level: Array, alpha: Array, index_rem: Array) -> Array:
    """SD of the remainder's sum under SES with multiplicative noise (error propagation)."""
    rem = index_rem.shape[1]
    if rem == 0:
        return np.zeros(level.shape)
    j = np.arange(1, rem + 1, dtype=float)[None, :]
    coef = 1.0 + alpha[:, None] * (rem - j)
    var = (cs_month_sigma[:, None] ** 2) * (level[:, None] ** 2) * (index_rem**2) * coef**2
    return np.sqrt(var.sum(axis=1))


def forecast_panel(
    values: Array,
    as_of: int,
    budgets: Array | None = None,
    model: str = "auto",
    fallback_profile: Array | None = None,
    progress: Callable[[int], None] | None = None,
    processes: int = 1,
    preliminary_last_month: bool = False,
    groups: Sequence[str] | None = None,
) -> PanelForecast:
    """Forecast the last year of ``values`` (n, years × 12) at month ``as_of`` (1…12).

    ``budgets``: optional (n, years, 12) monthly budgets, NaN where absent.
    ``fallback_profile``: (n, 12) monthly shares (the category's periodisation profile) used
    where a series has no complete earlier year.
    ``groups``: (n,) labels of comparable series (e.g. the category): a series without a
    backtest of its own gets the interval width of its group's errors
    (``forecasts.calibration``).
    Months of the target year up to ``as_of`` that are NaN count as zero (nothing booked).
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if not 1 <= as_of <= MONTHS:
        raise ValueError(f"as_of must be a month 1..12, got {as_of}")
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] % MONTHS:
        raise ValueError("values must be (n_series, n_years * 12)")
    if preliminary_last_month and 2 <= as_of < MONTHS:
        return _preliminary(values, as_of, budgets, model, fallback_profile, processes, groups)
    n = values.shape[0]
    year = values.shape[1] // MONTHS - 1
    rem = MONTHS - as_of
    start = MONTHS * year
    values = values.copy()
    values[:, start : start + as_of] = np.nan_to_num(values[:, start : start + as_of])
    values[:, start + as_of :] = np.nan

    cs = candidate_paths(values, year, as_of, budgets, fallback_profile)
    ytd = cs.ytd
    # ``auto`` also learns across the panel from earlier origins, whose own weights need
    # MAX_ORIGINS years before them.
    depth = MAX_ORIGINS + (crosslearn.ORIGIN_YEARS if model == "auto" else 0)
    table = _cached_origin_years(
        values, range(year - depth, year), as_of, budgets, fallback_profile
    )
    errs, totals = _remainder_errors(table, year, n)
    labels = np.full(n, model, dtype=object)
    available: NDArray[np.bool_] = np.asarray(~np.isnan(cs.paths).any(axis=2))

    if model in ("ets", "prophet"):
        from forecasts.library_models import library_paths

        path = library_paths(values, year, as_of, model, progress=progress, processes=processes)
        weights = None
    elif model == "auto":
        weights, has_backtest, none = _auto_combination(errs, available)
        path = np.einsum("cn,cnh->nh", weights, np.nan_to_num(cs.paths))
        now = _OriginYear(
            sums=cs.paths.sum(axis=2),
            available=available,
            ytd=ytd,
            remainder=np.full(n, np.nan),
            total=np.full(n, np.nan),
            month_sigma=cs.month_sigma,
            n_obs=(~np.isnan(values[:, : start + as_of])).sum(axis=1).astype(float),
        )
        factor = _cross_learned_factor(table, year, now, weights, errs)
        if factor is not None:
            path = path * (1.0 + factor)[:, None]
        if as_of <= 2 and budgets is not None and budgets.shape[1] > year:
            # Early in the year the plan knows more than one or two months of actuals: half of
            # the remainder comes from the periodised budget as it stands.
            plan = budgets[:, year, as_of:]
            has_plan: NDArray[np.bool_] = np.asarray(~np.isnan(plan).any(axis=1))
            path = np.where(
                has_plan[:, None],
                (1 - EARLY_BUDGET_WEIGHT) * path + EARLY_BUDGET_WEIGHT * np.nan_to_num(plan),
                path,
            )
        labels[~has_backtest] = "auto:fallback"
        labels[none] = "auto:runrate"
    else:
        name = {"ses": "ses", "theta": "theta"}.get(model, model)
        i = CANDIDATES.index(name)
        path = cs.paths[i].copy()
        missing = ~available[i]
        path[missing] = cs.paths[0][missing]
        labels[missing] = f"{model}:runrate"
        weights = np.zeros((len(CANDIDATES), n))
        weights[i] = 1.0
        weights[0, missing], weights[i, missing] = 1.0, 0.0

    if rem == 0:
        path = np.zeros((n, 0))
    # Series with nothing booked ever: nothing to forecast.
    empty = np.nan_to_num(np.abs(values[:, : start + as_of])).sum(axis=1) == 0
    path[empty] = 0.0
    full_year = ytd + path.sum(axis=1)

    scale = np.maximum(np.abs(full_year), 1e-9)
    if rem == 0:
        half = np.zeros(n)
        method = np.full(n, "actual")
        coverage = np.full(n, np.nan)
    else:
        model_sd = _model_sigma(cs.month_sigma, cs.level, cs.alpha, cs.index_rem)
        raw_sd, k = _relative_sd(model_sd / scale, errs, weights, rem)
        group = np.asarray(groups, dtype=str) if groups is not None else np.full(n, "", dtype=str)
        calibrated = calibration.calibrate(
            _calibration_set(table, year, model, group, rem), raw_sd, k > 0, group, Z80
        )
        half = calibrated.half_width * scale
        method, coverage = calibrated.method, calibrated.coverage
    half[empty] = 0.0
    sigma = half / Z80
    backtest_sek = _combined_errors_sek(errs, weights, totals)
    return PanelForecast(
        as_of=as_of,
        ytd=ytd,
        path=path,
        full_year=full_year,
        low=full_year - half,
        high=full_year + half,
        sigma=sigma,
        model=labels.astype(str),
        backtest_errors=backtest_sek,
        interval_method=np.asarray(method, dtype=str),
        interval_coverage=coverage,
    )


def _preliminary(
    values: Array,
    as_of: int,
    budgets: Array | None,
    model: str,
    fallback_profile: Array | None,
    processes: int,
    groups: Sequence[str] | None,
) -> PanelForecast:
    """The as-of month is preliminary: learn from the month before, move the shortfall of the
    as-of month against its forecast into the next month (where late postings land)."""
    earlier = forecast_panel(
        values, as_of - 1, budgets, model, fallback_profile, processes=processes, groups=groups
    )
    year_start = values.shape[1] - MONTHS
    actual_now = np.nan_to_num(values[:, year_start + as_of - 1])
    expected_now = earlier.path[:, 0]
    sign = np.where(expected_now < 0, -1.0, 1.0)
    shortfall = np.maximum(sign * (expected_now - actual_now), 0.0) * sign
    path = earlier.path[:, 1:].copy()
    path[:, 0] += shortfall
    ytd = earlier.ytd + actual_now
    full_year = ytd + path.sum(axis=1)
    return PanelForecast(
        as_of=as_of,
        ytd=ytd,
        path=path,
        full_year=full_year,
        low=full_year - Z80 * earlier.sigma,
        high=full_year + Z80 * earlier.sigma,
        sigma=earlier.sigma,
        model=np.char.add(earlier.model.astype(str), "+prelim"),
        backtest_errors=earlier.backtest_errors,
        interval_method=earlier.interval_method,
        interval_coverage=earlier.interval_coverage,
    )


def _combined_relative(errs: Array, weights: Array | None) -> Array:
    """The used combination's remainder errors (K, n) relative to the year total, NaN where
    the origin has none; library models are represented by SES on the decomposition index."""
    if weights is None:
        weights = np.zeros(errs.shape[1:])
        weights[CANDIDATES.index("ses_d")] = 1.0
    comb = np.einsum("kcn,cn->kn", np.nan_to_num(errs), weights)
    return np.where(np.isnan(errs[:, 0, :]) if errs.shape[0] else comb, np.nan, comb)


def _combined_errors_sek(errs: Array, weights: Array | None, totals: Array) -> Array:
    return _combined_relative(errs, weights) * np.abs(totals)


def _rms(relative_errors: Array) -> Array:
    valid = ~np.isnan(relative_errors)
    count = valid.sum(axis=0)
    ss = np.where(valid, relative_errors, 0.0) ** 2
    return np.where(count > 0, np.sqrt(ss.sum(axis=0) / np.maximum(count, 1)), np.nan)


def _auto_combination(
    errs: Array, available: NDArray[np.bool_]
) -> tuple[Array, NDArray[np.bool_], NDArray[np.bool_]]:
    """``auto``'s weights (C, n) over its pool; run-rate where nothing else is available.

    Returns ``(weights, has_backtest, run-rate only)``.
    """
    pool = np.array([c in _AUTO_POOL for c in CANDIDATES])
    weights, has_backtest = _auto_weights(errs, available & pool[:, None])
    none = weights.sum(axis=0) == 0
    weights[CANDIDATES.index("runrate"), none] = 1.0
    return weights, has_backtest, none


def _cross_learned_factor(
    table: dict[int, _OriginYear], year: int, now: _OriginYear, weights_now: Array, errs_now: Array
) -> Array | None:
    """``forecasts.crosslearn``: the correction of ``auto``'s remainder learnt from every
    series' earlier origin years (their own ``auto`` combination against what happened)."""
    n = now.ytd.shape[0]
    rows_x, rows_t, rows_w = [], [], []
    for oy in range(year - 1, year - 1 - crosslearn.ORIGIN_YEARS, -1):
        origin = table.get(oy)
        if origin is None:
            continue
        errs, _ = _remainder_errors(table, oy, n)
        weights, _, _ = _auto_combination(errs, origin.available)
        combined = (weights * np.nan_to_num(origin.sums)).sum(axis=0)
        rms = _rms(_combined_relative(errs, weights))
        rows_x.append(
            crosslearn.features(
                origin.sums, combined, origin.ytd, origin.month_sigma, rms, origin.n_obs
            )
        )
        target, weight = crosslearn.training_target(origin.remainder, combined, origin.ytd)
        rows_t.append(target)
        rows_w.append(weight)
    if not rows_x:
        return None
    combined_now = (weights_now * np.nan_to_num(now.sums)).sum(axis=0)
    rms_now = _rms(_combined_relative(errs_now, weights_now))
    x_now = crosslearn.features(
        now.sums, combined_now, now.ytd, now.month_sigma, rms_now, now.n_obs
    )
    factor = crosslearn.correction(
        np.vstack(rows_x), np.concatenate(rows_t), np.concatenate(rows_w), x_now
    )
    if factor is None:
        return None
    return np.where(combined_now != 0, factor, 0.0)


def _relative_sd(
    model_rel: Array, errs: Array, weights: Array | None, rem: int
) -> tuple[Array, Array]:
    """Uncalibrated SD of the full-year total relative to the forecast: the used combination's
    backtest RMS shrunk to the model SD. Returns ``(relative SD, backtest origins (n,))``."""
    n = model_rel.shape[0]
    if weights is None:  # library models: the width of the decomposition-index SES
        weights = np.zeros(errs.shape[1:] if errs.shape[0] else (len(CANDIDATES), n))
        weights[CANDIDATES.index("ses_d")] = 1.0
    if errs.shape[0]:
        comb = np.einsum("kcn,cn->kn", np.nan_to_num(errs), weights)
        valid = ~np.isnan(errs[:, 0, :]) & ~np.isnan(errs[:, CANDIDATES.index("ses"), :])
        comb = np.where(valid, comb, np.nan)
        k = valid.sum(axis=0).astype(float)
        ss = np.nansum(comb**2, axis=0)
    else:
        k = np.zeros(n)
        ss = np.zeros(n)
    prior = np.where(np.isnan(model_rel), 0.0, model_rel**2)
    prior_w = np.where(np.isnan(model_rel), 0.0, PRIOR_ORIGINS)
    denom = k + prior_w
    rel_var = np.where(denom > 0, (ss + prior_w * prior) / np.maximum(denom, 1e-12), np.nan)
    # No backtest and no model noise (one month of data): a wide, honest default.
    rel_sd = np.where(np.isnan(rel_var), 0.05 * np.sqrt(rem / MONTHS), np.sqrt(rel_var))
    return WIDTH_CALIBRATION * rel_sd, k


def _weights_at(model: str, errs: Array, available: NDArray[np.bool_]) -> Array | None:
    """The weights ``model`` uses given backtest errors ``errs`` (None: a library model)."""
    if model in ("ets", "prophet"):
        return None
    if model == "auto":
        return _auto_combination(errs, available)[0]
    i = CANDIDATES.index(model)
    weights = np.zeros(available.shape)
    weights[i] = available[i]
    # Run-rate where the model has no forecast (``forecast_panel`` does the same).
    weights[0] = np.where(available[i], weights[0], 1.0)
    return weights


def _calibration_set(
    table: dict[int, _OriginYear], year: int, model: str, groups: NDArray[np.str_], rem: int
) -> calibration.CalibrationSet:
    """The model's forecasts at the same month of up to ``MAX_ORIGINS`` earlier years, each
    made from the data before it (weights and width from the years before that origin), with
    what happened: ``forecasts.calibration`` learns the interval widths from them."""
    error, raw_sd, had, group = [], [], [], []
    n = groups.shape[0]
    for oy in range(year - 1, year - 1 - MAX_ORIGINS, -1):
        origin = table.get(oy)
        if origin is None or origin.model_sd is None:
            continue
        errs, _ = _remainder_errors(table, oy, n)
        weights = _weights_at(model, errs, origin.available)
        used = weights if weights is not None else _weights_at("ses_d", errs, origin.available)
        assert used is not None
        predicted = (used * np.nan_to_num(origin.sums)).sum(axis=0)
        scale = np.abs(origin.ytd + predicted)
        scale = np.where(scale > 0, scale, np.nan)
        sd, k = _relative_sd(origin.model_sd / scale, errs, weights, rem)
        valid = np.isfinite(origin.remainder) & np.isfinite(scale) & (np.abs(origin.total) > 0)
        error.append(((predicted - origin.remainder) / scale)[valid])
        raw_sd.append(sd[valid])
        had.append((k > 0)[valid])
        group.append(groups[valid])
    if not error:
        empty = np.zeros(0)
        return calibration.CalibrationSet(
            empty, empty, np.zeros(0, dtype=bool), np.zeros(0, dtype=str)
        )
    return calibration.CalibrationSet(
        np.concatenate(error),
        np.concatenate(raw_sd),
        np.concatenate(had),
        np.concatenate(group).astype(str),
    )
