"""Cross-learned correction of the ``auto`` combination: what the panel's own past years teach.

``auto`` weighs candidates per series from that series' few earlier years. What it cannot see is
a pattern shared by many series: "when last year's shape says much more than the smoothers and
the series is noisy, the truth lies nearer the smoothers", or a drift every series had. A
gradient-boosted model learns that across the whole panel:

- one training row per series and earlier origin year (the same as-of month of up to
  ``ORIGIN_YEARS`` earlier years; only data before the target year is ever used);
- features are scale-free: each candidate's remainder relative to the combination's, the
  remainder's share of the year, the series' noise, the combination's backtest error and the
  length of the history;
- the target is the factor the combination's remainder should have been multiplied by
  (``actual / combination − 1``, clipped), fitted with absolute loss weighted by the
  remainder's share of the year total, which is the full-year error the user sees.

The remainder path is then scaled by ``1 + correction``. The model is a bag of ``BAGS`` LightGBM
regressors with fixed seeds and one thread (deterministic). Small panels (fewer than
``MIN_TRAINING_ROWS`` rows, e.g. a single series) get no correction: there is nothing to
learn across.

The training rows come from earlier years only, so the fitted bag is the same for every run of
one as-of month until a history year changes: it is kept (``forecasts.cache``) under a
fingerprint of exactly the rows, targets, weights and parameters it was fitted on, and each run
only predicts. The models are kept as rebuilt from their text (no training data attached), and
every prediction, fresh or reused, is made by such a rebuilt model, so both give the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from forecasts.cache import BoundedCache, abort_check, check_abort, fingerprint
from forecasts.candidates import Array

#: Earlier origin years that become training rows.
ORIGIN_YEARS = 6
#: Below this many training rows the panel is too small to learn from: on random sets of 300
#: real series (≈ 1 600 rows) the correction hurt as often as it helped, from 600 (≈ 3 100) on
#: it helped at every cutoff on average.
MIN_TRAINING_ROWS = 2000
#: Bagged models with these seeds; the correction is their mean.
BAGS = 5
#: Corrections are clipped to ±this fraction of the remainder (training targets too).
MAX_CORRECTION = 0.5
#: Boosting rounds of each bagged model.
ROUNDS = 300
#: Shallow, strongly regularised trees: a few thousand rows, a noisy target. One thread and
#: ``deterministic`` so that a forecast does not depend on the machine.
LGBM_PARAMS: dict[str, Any] = {
    "objective": "l1",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 100,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "lambda_l2": 1.0,
    "verbose": -1,
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
}


def features(
    candidate_rem: Array,
    combined_rem: Array,
    ytd: Array,
    month_sigma: Array,
    backtest_rms: Array,
    n_obs: Array,
) -> Array:
    """Scale-free features, shape ``(n, n_candidates + 4)``; NaN where undefined.

    ``candidate_rem`` (C, n) and ``combined_rem`` (n,) are sums of the remaining months, signed
    as booked; ``backtest_rms`` is the combination's RMS remainder error relative to the year.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = candidate_rem / combined_rem[None, :] - 1.0
        total = np.abs(ytd + combined_rem)
        share = np.abs(combined_rem) / total
    cols = [*relative, share, month_sigma, backtest_rms, n_obs.astype(float)]
    out = np.column_stack(cols)
    out[~np.isfinite(out)] = np.nan
    return out


def training_target(actual_rem: Array, combined_rem: Array, ytd: Array) -> tuple[Array, Array]:
    """``(target, weight)`` for rows with a usable combination; NaN target elsewhere."""
    with np.errstate(invalid="ignore", divide="ignore"):
        target = np.clip(actual_rem / combined_rem - 1.0, -MAX_CORRECTION, MAX_CORRECTION)
        weight = np.abs(combined_rem) / np.abs(ytd + combined_rem)
    usable = np.isfinite(target) & np.isfinite(weight) & (combined_rem != 0)
    return np.where(usable, target, np.nan), np.where(usable, weight, 0.0)


#: Bounds of the cache of fitted bags: a bag is ≈ 1,4 MB of model text (5 × 300 trees); one per
#: nämnd and as-of month in use (the worker needs two or three per nämnd).
MODEL_CACHE_ENTRIES = 64
MODEL_CACHE_BYTES = 128 * 2**20


@dataclass(frozen=True)
class FittedBag:
    """The ``BAGS`` boosters of one fit, rebuilt from their model text."""

    boosters: tuple[Any, ...]
    model_bytes: int

    def predict(self, x: Array) -> Array:
        preds = np.zeros(x.shape[0])
        for booster in self.boosters:
            preds += np.asarray(booster.predict(x), dtype=float)
        return np.clip(preds / len(self.boosters), -MAX_CORRECTION, MAX_CORRECTION)


_model_cache: BoundedCache[FittedBag] = BoundedCache(
    "crosslearn models", MODEL_CACHE_ENTRIES, MODEL_CACHE_BYTES, lambda bag: bag.model_bytes
)


#: The bag's models are fitted in this many threads at once (LightGBM releases the GIL; each
#: model keeps one thread and its seed, so the models are the same as fitted one after another).
#: Two halve a cold fit's wall time on a two-core machine.
FIT_THREADS = 2


def fit(train_x: Array, target: Array, weight: Array) -> FittedBag:
    """Fit the bag on the given rows (all usable)."""
    import lightgbm

    # Work that may be given up (warming the caches) stops within a boosting round; a callback
    # reads nothing of the model, so a fit that runs to its end is the same with or without.
    callbacks = [] if abort_check() is None else [lambda _env: check_abort()]

    def one(seed: int) -> tuple[Any, int]:
        data = lightgbm.Dataset(train_x, target, weight=weight)
        booster = lightgbm.train(
            {**LGBM_PARAMS, "seed": seed}, data, num_boost_round=ROUNDS, callbacks=callbacks
        )
        text = booster.model_to_string()
        return lightgbm.Booster(model_str=text), len(text)

    if FIT_THREADS > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(FIT_THREADS, BAGS)) as pool:
            fitted = list(pool.map(one, range(BAGS)))
    else:
        fitted = [one(seed) for seed in range(BAGS)]
    return FittedBag(tuple(b for b, _ in fitted), sum(size for _, size in fitted))


def correction(train_x: Array, target: Array, weight: Array, predict_x: Array) -> Array | None:
    """Fitted correction factors ``(n_predict,)`` to add to 1, or None if too few rows."""
    rows = ~np.isnan(target) & (weight > 0)
    if rows.sum() < MIN_TRAINING_ROWS or predict_x.shape[0] == 0:
        return None
    x, t, w = train_x[rows], target[rows], weight[rows]
    key = fingerprint("crosslearn", x, t, w, LGBM_PARAMS, ROUNDS, BAGS)
    return _model_cache.get_or_compute(key, lambda: fit(x, t, w)).predict(predict_x)
