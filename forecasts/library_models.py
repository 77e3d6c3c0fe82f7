"""Per-series library models: statsforecast's AutoETS and Prophet.

They fit one series at a time (≈ 30 ms for AutoETS, ≈ 250 ms for Prophet per series), so they are
not part of ``auto``'s default path; ``--model ets`` / ``--model prophet`` use them, and
``bench/forecast_speed.py`` measures them (Prophet also in a process pool).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from forecasts.candidates import MONTHS, Array

#: Calendar year that the panel's first year is mapped to for Prophet's date axis; only the
#: month of year matters to a yearly seasonality.
BASE_YEAR = 2000


def _history(values: Array, row: int, end: int) -> Array:
    y = values[row, :end]
    valid = np.flatnonzero(~np.isnan(y))
    if valid.size == 0:
        return np.zeros(0)
    return np.nan_to_num(y[valid[0] :])


def ets_path(y: Array, horizon: int) -> Array:
    """AutoETS (statsforecast, season length 12 when two years are there) over ``horizon``."""
    from statsforecast.models import AutoETS

    season = MONTHS if y.size >= 2 * MONTHS else 1
    fitted = AutoETS(season_length=season).forecast(y=y.astype(float), h=horizon)
    return np.asarray(fitted["mean"], dtype=float)


def prophet_path(y: Array, horizon: int, first_month_index: int = 0) -> Array:
    """Prophet with monthly data and a yearly seasonality, tuned for speed (no MCMC, no
    uncertainty sampling, few changepoints)."""
    import pandas as pd

    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)  # "Importing plotly failed"
    from prophet import Prophet

    # cmdstanpy logs every chain at INFO and resets its level on each fit: switch it off.
    logging.getLogger("cmdstanpy").disabled = True
    for name in ("prophet", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.ERROR)
    start = pd.Timestamp(year=BASE_YEAR, month=1, day=1) + pd.DateOffset(months=first_month_index)
    ds = pd.date_range(start, periods=y.size + horizon, freq="MS")
    model = Prophet(
        yearly_seasonality=6 if y.size >= 2 * MONTHS else False,
        weekly_seasonality=False,
        daily_seasonality=False,
        n_changepoints=min(10, max(0, y.size // 4)),
        uncertainty_samples=0,
    )
    model.fit(pd.DataFrame({"ds": ds[: y.size], "y": y}))
    out = model.predict(pd.DataFrame({"ds": ds[y.size :]}))
    return np.asarray(out["yhat"], dtype=float)


def _one(args: tuple[str, Array, int, int]) -> Array:
    model, y, horizon, first = args
    if y.size < 4 or np.all(y == y[0]):
        return np.full(horizon, y.mean() if y.size else 0.0)
    try:
        if model == "ets":
            return ets_path(y, horizon)
        return prophet_path(y, horizon, first)
    except Exception:  # a library failing on a degenerate series falls back to the mean
        return np.full(horizon, float(y[-MONTHS:].mean()))


def library_paths(
    values: Array,
    year: int,
    as_of: int,
    model: str,
    progress: Callable[[int], None] | None = None,
    processes: int = 1,
) -> Array:
    """Remaining-month paths from ``model`` ("ets" or "prophet") for every row of the panel."""
    end = MONTHS * year + as_of
    horizon = MONTHS - as_of
    n = values.shape[0]
    if horizon == 0:
        return np.zeros((n, 0))
    jobs = []
    for row in range(n):
        y = _history(values, row, end)
        first = end - y.size
        jobs.append((model, y, horizon, first))
    out = np.zeros((n, horizon))
    if processes > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Spawn, not fork: a child forked after LightGBM's OpenMP threads started deadlocks.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
            for row, path in enumerate(pool.map(_one, jobs, chunksize=8)):
                out[row] = path
                if progress:
                    progress(1)
        return out
    for row, job in enumerate(jobs):
        out[row] = _one(job)
        if progress:
            progress(1)
    return out
