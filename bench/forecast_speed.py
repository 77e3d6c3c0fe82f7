"""Forecast speed: series per second per model, in one and in two processes.

    .venv/bin/python -m bench.forecast_speed [--series 10000] [--ets 200] [--prophet 40]

Vectorised models run on ``--series`` synthetic municipal series of 48 months (as-of August);
the per-series library models (AutoETS, Prophet) on smaller samples. Two processes split the
series in halves (``concurrent.futures.ProcessPoolExecutor`` with the spawn start method: a
child forked after LightGBM's OpenMP threads started deadlocks). ``--tiny`` runs every model once
on a few series (a smoke run for the tests).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from bench.machine import describe
from bench.synthetic_municipal import generate

VECTOR_MODELS = ("auto", "runrate", "lastyear", "seasonal", "ses", "theta")


def _panel(n: int) -> np.ndarray:
    units = n // 6 + 1
    _keys, panel = generate(n_units=units, n_years=4, seed=5)
    return panel[:n]


def _run(args: tuple[np.ndarray, str, int]) -> int:
    from forecasts.engine import forecast_panel

    panel, model, as_of = args
    forecast_panel(panel, as_of, model=model)
    return panel.shape[0]


def _timed(panel: np.ndarray, model: str, processes: int, as_of: int = 8) -> float:
    if processes == 1:
        start = time.perf_counter()
        _run((panel, model, as_of))
        return time.perf_counter() - start
    chunks = np.array_split(panel, processes)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        list(pool.map(_run, [(chunks[0][:2], model, as_of)] * processes))  # warm up imports
        start = time.perf_counter()
        list(pool.map(_run, [(c, model, as_of) for c in chunks]))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--ets", type=int, default=200)
    parser.add_argument("--prophet", type=int, default=40)
    parser.add_argument("--tiny", action="store_true", help="a few series per model (smoke run)")
    args = parser.parse_args()
    if args.tiny:
        args.series, args.ets, args.prophet = 60, 4, 2
    print(f"machine: {describe()}")
    _run((_panel(12), "auto", 8))  # import and warm up
    rows = []
    big = _panel(args.series)
    for model in VECTOR_MODELS:
        for procs in (1, 2):
            secs = _timed(big, model, procs)
            rows.append((model, big.shape[0], procs, secs))
    for model, n in (("ets", args.ets), ("prophet", args.prophet)):
        if n <= 0:
            continue
        small = _panel(n)
        _run((small[:1], model, 8))
        for procs in (1, 2):
            rows.append((model, n, procs, _timed(small, model, procs)))
    print(f"{'model':10s} {'series':>7s} {'procs':>5s} {'seconds':>9s} {'series/s':>10s}")
    for model, n, procs, secs in rows:
        print(f"{model:10s} {n:7d} {procs:5d} {secs:9.2f} {n / secs:10.1f}")


if __name__ == "__main__":
    main()
