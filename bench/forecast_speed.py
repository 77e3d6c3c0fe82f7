"""Forecast speed: series per second per model, and one nämnd of real size.

    .venv/bin/python -m bench.forecast_speed [--series 10000] [--ets 200] [--prophet 40]
    .venv/bin/python -m bench.forecast_speed --namnd [--cost-centres 100,190,400] [--months 1,6,11]

Vectorised models run on ``--series`` synthetic municipal series of 48 months (as-of August);
the per-series library models (AutoETS, Prophet) on smaller samples. Two processes split the
series in halves (``concurrent.futures.ProcessPoolExecutor`` with the spawn start method: a
child forked after LightGBM's OpenMP threads started deadlocks). ``--tiny`` runs every model once
on a few series (a smoke run for the tests), and the nämnd bench on a few cost centres.

``--namnd`` times what the worker does per nämnd (``forecasts.live.forecast_organisation``) on
a seeded nämnd of N cost centres × 12 categories (+ 2 volume measures each) with four years of
history and the current year, at each as-of month: the first run of a period (``cold``: the
module's caches emptied) and the next run of the same period after one more posting (``warm``),
a run on unchanged inputs (``same``), wall and CPU seconds, a worker's close at the middle
month (each past year at December, the closed month and the one before, cold and at the next
run), where the cold run's time goes (cProfile, cumulative), and the peak RSS of the process
(one fresh spawned process per N, like the worker's pool process).
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing
import pstats
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.machine import describe
from bench.synthetic_municipal import generate

if TYPE_CHECKING:
    from core.domain import DomainConfig
    from forecasts.live import LeafSeries

VECTOR_MODELS = ("auto", "runrate", "lastyear", "seasonal", "ses", "theta")

REPO = Path(__file__).resolve().parents[1]
#: The nämnd bench's forecast year, preceded by ``HISTORY_YEARS`` years of history.
NAMND_YEAR = 2026
HISTORY_YEARS = 4
#: Twelve kostnadsslag per cost centre (config/categories.yaml without capital costs) with a
#: typical monthly amount of a mid-sized cost centre (kr; revenues negative) and its noise.
NAMND_CATEGORIES: dict[str, tuple[float, float]] = {
    "salaries": (1.2e6, 0.015),
    "substitutes": (1.5e5, 0.08),
    "overtime": (3.0e4, 0.18),
    "sick_pay": (2.5e4, 0.15),
    "agency_staff": (2.0e4, 0.35),
    "purchased_care": (3.0e5, 0.06),
    "premises": (1.5e5, 0.02),
    "other_costs": (8.0e4, 0.10),
    "transfers": (1.0e5, 0.07),
    "revenue_fees": (-6.0e4, 0.05),
    "revenue_grants": (-1.0e5, 0.20),
    "revenue_other": (-2.0e4, 0.25),
}
#: Volume measures per cost centre: (measure, the category it drives, kr per unit).
NAMND_MEASURES = (("substitute_hours", "substitutes", 310.0), ("overtime_hours", "overtime", 460.0))
#: Phases of the cold run reported by the profile: label → (module suffix, function names).
PHASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "panel": ("forecasts/series.py", ("build_panel",)),
    "candidates now": ("forecasts/engine.py", ("forecast_panel",)),  # minus the rest below
    "origin years": ("forecasts/engine.py", ("_origin_years",)),
    "crosslearn": ("forecasts/engine.py", ("_cross_learned_factor",)),
    "  of which lightgbm": ("forecasts/crosslearn.py", ("correction",)),
    "calibration": ("forecasts/engine.py", ("_calibration_set",)),
    "  calibrate": ("forecasts/calibration.py", ("calibrate",)),
    "roll-ups": ("forecasts/live.py", ("_members", "_node", "_node_ok")),
    "volume/price": ("forecasts/live.py", ("_with_volume_split",)),
    "total": ("forecasts/live.py", ("forecast_organisation",)),
}


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


def namnd_domain(cost_centres: int) -> DomainConfig:
    """The repository's categories and measures with an org tree of one nämnd: one
    förvaltning, an avdelning per 25 cost centres, ``cost_centres`` enheter."""
    from dataclasses import replace

    from core.hierarchy import OrgNode, OrgTree
    from services.config.domain import load_domain_config

    base = load_domain_config(REPO / "config")
    nodes = {
        "NMD": OrgNode("NMD", "Nämnden", "namnd", None),
        "FOR": OrgNode("FOR", "Förvaltningen", "forvaltning", "NMD"),
    }
    avdelningar = max(1, cost_centres // 25)
    for a in range(avdelningar):
        nodes[f"A{a:02d}"] = OrgNode(f"A{a:02d}", f"Avdelning {a}", "avdelning", "FOR")
    for c in range(cost_centres):
        unit = f"{10000 + c}"
        nodes[unit] = OrgNode(unit, f"Enhet {c}", "enhet", f"A{c % avdelningar:02d}")
    return replace(base, org=OrgTree(nodes, {"NMD": "Benchkommun"}))


def namnd_leaves(domain: DomainConfig, cost_centres: int, seed: int = 15) -> list[LeafSeries]:
    """Seeded leaves of a nämnd: per cost centre 12 categories and 2 volume measures, monthly
    from ``HISTORY_YEARS`` years before ``NAMND_YEAR`` through its December (the forecast
    ignores the months after its as-of month), with the year's periodised budget and volume
    plan. Like the domain's series (bench/synthetic_municipal.py): the category's profile,
    growth, month-to-month noise, now and then an overrun from a month on; one cost centre in
    ten is new (started within the history), agency staff is booked only in some months."""
    from forecasts.live import LeafSeries

    rng = np.random.default_rng(seed)
    years = range(NAMND_YEAR - HISTORY_YEARS, NAMND_YEAR + 1)
    leaves: list[LeafSeries] = []
    for c in range(cost_centres):
        unit = f"{10000 + c}"
        size = rng.lognormal(0.0, 0.6)
        first_year = years[0] if rng.random() > 0.1 else int(rng.integers(years[1], NAMND_YEAR))
        amounts: dict[str, dict[str, float]] = {}
        for category, (level, noise) in NAMND_CATEGORIES.items():
            profile = np.asarray(domain.categories[category].profile) * 12
            growth = rng.normal(0.03, 0.02)
            history: dict[str, float] = {}
            annual_budget: list[float] = []
            for year in years:
                if year < first_year:
                    continue
                year_level = level * size * (1 + growth) ** (year - years[0])
                months = year_level * profile * rng.lognormal(0.0, noise, 12)
                if rng.random() < 0.15:  # an overrun (or a saving) from a month on
                    months[int(rng.integers(1, 11)) :] *= 1 + rng.normal(0.0, 0.1)
                if category == "agency_staff":
                    months *= rng.random(12) < 0.6
                for m in range(12):
                    history[f"{year:04d}-{m + 1:02d}"] = round(float(months[m]), 0)
                if year == NAMND_YEAR:
                    annual_budget.append(year_level * 12 * rng.normal(1.0, 0.02))
            amounts[category] = history
            budget = domain.periodise(category, annual_budget[0]) if annual_budget else None
            leaves.append(LeafSeries(unit, "cost", category, history, budget))
        for measure, category, price in NAMND_MEASURES:
            volume = {
                p: round(v / price * rng.lognormal(0.0, 0.03), 1)
                for p, v in amounts[category].items()
            }
            plan = [
                sum(volume.get(f"{NAMND_YEAR - 1}-{m:02d}", 0.0) for m in range(1, 13)) / 12
            ] * 12
            leaves.append(LeafSeries(unit, "measure", measure, volume, plan))
    return leaves


def _with_late_posting(leaves: list[LeafSeries], month: int) -> list[LeafSeries]:
    """The same leaves with one more posting in the current year's as-of month (the next run
    of the same period, as after one more event)."""
    from dataclasses import replace

    period = f"{NAMND_YEAR:04d}-{month:02d}"
    first = leaves[0]
    actuals = dict(first.actuals)
    actuals[period] = actuals.get(period, 0.0) + 1234.0
    return [replace(first, actuals=actuals), *leaves[1:]]


def _clear_caches() -> None:
    """Empty the forecasts' caches where they exist (a cold run, as at a period's first run)."""
    from forecasts import live

    clear = getattr(live, "clear_caches", None)
    if clear is not None:
        clear()


@dataclass(frozen=True)
class NamndRun:
    cost_centres: int
    leaves: int
    month: int
    cold_wall: float
    cold_cpu: float
    warm_wall: float
    warm_cpu: float
    same_wall: float
    same_cpu: float
    phases: dict[str, float]


def _timed_call(leaves: list[LeafSeries], domain: DomainConfig, month: int) -> tuple[float, float]:
    from forecasts.live import forecast_organisation

    wall, cpu = time.perf_counter(), time.process_time()
    forecast_organisation(leaves, domain, NAMND_YEAR, month, "auto")
    return time.perf_counter() - wall, time.process_time() - cpu


def _phases(leaves: list[LeafSeries], domain: DomainConfig, month: int) -> dict[str, float]:
    """Cumulative seconds of each phase of a cold run, under cProfile."""
    from forecasts.live import forecast_organisation

    _clear_caches()
    profiler = cProfile.Profile()
    profiler.runcall(forecast_organisation, leaves, domain, NAMND_YEAR, month, "auto")
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for label, (module, names) in PHASES.items():
        out[label] = sum(
            row[3]
            for (path, _line, name), row in stats.items()
            if path.endswith(module) and name in names
        )
    inner = ("origin years", "crosslearn", "calibration")
    out["candidates now"] -= sum(out[k] for k in inner)
    return out


def _cache_figures() -> str:
    """Entries and bytes of each of the forecasts' caches, where they exist."""
    try:
        from forecasts.cache import caches
    except ImportError:
        return "no caches"
    return ", ".join(f"{c.name} {len(c)} ({c.bytes / 2**20:.1f} MiB)" for c in caches())


def _year_leaves(leaves: list[LeafSeries], year: int) -> list[LeafSeries]:
    """The leaves as the worker builds them for a past ``year``: months up to its December,
    no plan (the bench only has the forecast year's)."""
    from dataclasses import replace

    last = f"{year:04d}-12"
    out = []
    for leaf in leaves:
        actuals = {p: v for p, v in leaf.actuals.items() if p <= last}
        if actuals:
            out.append(replace(leaf, actuals=actuals, budget_monthly=None))
    return out


def worker_run(
    leaves: list[LeafSeries], past: dict[int, list[LeafSeries]], domain: DomainConfig, month: int
) -> tuple[float, float]:
    """What the worker computes at a close of ``month`` for one nämnd (streams.forecasting):
    each past year's latest month (December, ``past`` from ``_year_leaves``), the closed month
    and the month before it. Returns (wall, CPU) seconds of the forecasts."""
    from forecasts.live import forecast_organisation

    wall, cpu = time.perf_counter(), time.process_time()
    for year, year_leaves in sorted(past.items()):
        forecast_organisation(year_leaves, domain, year, 12, "auto")
    for as_of in sorted({max(1, month - 1), month}):
        forecast_organisation(leaves, domain, NAMND_YEAR, as_of, "auto")
    return time.perf_counter() - wall, time.process_time() - cpu


def _namnd_size(args: tuple[int, tuple[int, ...], bool]) -> tuple[list[NamndRun], int, str]:
    """Every as-of month of one nämnd size, in a process of its own; returns the runs, the
    process's peak RSS (bytes) and what the caches hold after the last month's runs."""
    cost_centres, months, profile = args
    domain = namnd_domain(cost_centres)
    leaves = namnd_leaves(domain, cost_centres)
    runs = []
    for month in months:
        _clear_caches()
        cold = _timed_call(leaves, domain, month)
        posted = _with_late_posting(leaves, month)
        warm = _timed_call(posted, domain, month)
        same = _timed_call(posted, domain, month)
        phases = _phases(leaves, domain, month) if profile else {}
        runs.append(NamndRun(cost_centres, len(leaves), month, *cold, *warm, *same, phases))
    # A close as the worker computes it, first in a new process (cold), then the next run
    # after one more posting (steady state): the months' runs above leave the caches as a
    # worker that has run through the year would have them.
    month = months[len(months) // 2]
    past = {y: _year_leaves(leaves, y) for y in range(NAMND_YEAR - HISTORY_YEARS, NAMND_YEAR)}
    _clear_caches()
    cold = worker_run(leaves, past, domain, month)
    steady = worker_run(_with_late_posting(leaves, month), past, domain, month)
    print(
        f"{cost_centres:5d} a worker's close of month {month} ({HISTORY_YEARS} past years at"
        f" December, months {max(1, month - 1)} and {month}): cold {cold[0]:.2f} s wall"
        f" {cold[1]:.2f} s CPU, next run {steady[0]:.2f} s wall {steady[1]:.2f} s CPU",
        flush=True,
    )
    for month in months:
        _timed_call(leaves, domain, month)
        _timed_call(_with_late_posting(leaves, month), domain, month)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return runs, rss, _cache_figures()


def namnd_bench(sizes: list[int], months: tuple[int, ...], profile: bool) -> None:
    print(
        f"nämnd of N cost centres × {len(NAMND_CATEGORIES)} categories"
        f" + {len(NAMND_MEASURES)} measures, {HISTORY_YEARS} years of history,"
        f" forecast_organisation(model='auto'); seconds wall/CPU; cold = first run of the"
        " period, warm = the next run after one more posting, same = a run on unchanged inputs"
    )
    print(
        f"{'N':>5s} {'leaves':>6s} {'month':>5s} {'cold wall':>9s} {'cold cpu':>9s}"
        f" {'warm wall':>9s} {'warm cpu':>9s} {'same wall':>9s} {'same cpu':>9s}"
    )
    spawn = multiprocessing.get_context("spawn")
    results = []
    for size in sizes:
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            runs, rss, held = pool.submit(_namnd_size, (size, months, profile)).result()
        results.append((size, runs, rss))
        for r in runs:
            print(
                f"{r.cost_centres:5d} {r.leaves:6d} {r.month:5d} {r.cold_wall:9.2f}"
                f" {r.cold_cpu:9.2f} {r.warm_wall:9.2f} {r.warm_cpu:9.2f}"
                f" {r.same_wall:9.2f} {r.same_cpu:9.2f}"
            )
        print(f"{size:5d} peak RSS {rss / 2**20:.0f} MiB; caches: {held}")
    if profile:
        print("where a cold run's time goes (cProfile, cumulative seconds):")
        print(f"{'N':>5s} {'month':>5s} " + " ".join(f"{k.strip():>14s}" for k in PHASES))
        for _size, runs, _rss in results:
            for r in runs:
                cells = " ".join(f"{r.phases[k]:14.2f}" for k in PHASES)
                print(f"{r.cost_centres:5d} {r.month:5d} {cells}")


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--ets", type=int, default=200)
    parser.add_argument("--prophet", type=int, default=40)
    parser.add_argument("--tiny", action="store_true", help="a few series per model (smoke run)")
    parser.add_argument("--namnd", action="store_true", help="only the nämnd bench (see above)")
    parser.add_argument("--cost-centres", type=_ints, default=[100, 190, 400])
    parser.add_argument("--months", type=_ints, default=[1, 6, 11])
    parser.add_argument("--no-profile", action="store_true", help="nämnd bench without cProfile")
    args = parser.parse_args()
    if args.tiny:
        args.series, args.ets, args.prophet = 60, 4, 2
        args.cost_centres, args.months = [4], [6]
    print(f"machine: {describe()}")
    if args.namnd:
        namnd_bench(args.cost_centres, tuple(args.months), not args.no_profile)
        return
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
    if args.tiny:
        namnd_bench(args.cost_centres, tuple(args.months), not args.no_profile)


if __name__ == "__main__":
    main()
