"""The live forecaster per nämnd at a kommun's size: what a close costs when postings did not
change, what a month of postings in one nämnd costs, and what the first pass costs.

No broker: ``streams.forecasting.LiveForecaster`` on state items built directly (as the worker's
``ActiveState`` holds them), the shipped categories and rules, and ``N`` nämnder of ``M`` cost
centres each (one förvaltning, avdelningar of ten enheter), every cost centre booking every one of
``C`` categories every month of ``Y`` years. Publishing is counted, not sent. Measured per step:
the wall time of ``run_once`` and, for a close, the time from its start to the first alert
publish (the worker's close → alert path after the debounce; add the broker and the notifier
from ``bench/alert_latency.py``), and how many (year, as-of month) forecasts were computed.

    .venv/bin/python -m bench.forecaster_owners [--namnder 8] [--cost-centres 190]
        [--categories 12] [--years 3] [--closes 3] [--seed 1]
    .venv/bin/python -m bench.forecaster_owners --tiny   # 2 nämnder × 10 cost centres, 2 years
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace
from typing import Any

import numpy as np

from core.domain import DomainConfig
from core.hierarchy import OrgNode, OrgTree
from core.settings import DEFAULT_CONFIG_DIR
from streams.forecasting import LiveForecaster

LAST_YEAR = 2024


class _Counter:
    def inc(self) -> None:
        pass


class Metrics:
    def __init__(self) -> None:
        self.forecast_status: Any = None
        self.snapshot_failures = _Counter()

    def observe_forecast(self, seconds: float) -> None:
        pass

    def set_alerts_firing(self, *books: Any) -> None:
        pass

    def set_owned_namnder(self, owners: Any) -> None:
        pass

    def set_forecast_series_failed(self, counts: Any) -> None:
        pass


def kommun(
    domain: DomainConfig, namnder: int, cost_centres: int
) -> tuple[DomainConfig, dict[str, list[str]]]:
    nodes: dict[str, OrgNode] = {}
    units: dict[str, list[str]] = {}
    for n in range(namnder):
        namnd = f"N{n}"
        nodes[namnd] = OrgNode(namnd, f"Nämnd {n}", "namnd", None)
        nodes[f"{namnd}F"] = OrgNode(f"{namnd}F", f"Förvaltning {n}", "forvaltning", namnd)
        units[namnd] = []
        for u in range(cost_centres):
            avdelning = f"{namnd}A{u // 10}"
            if avdelning not in nodes:
                nodes[avdelning] = OrgNode(avdelning, avdelning, "avdelning", f"{namnd}F")
            unit = f"{n}{u:04d}"
            nodes[unit] = OrgNode(unit, f"Enhet {unit}", "enhet", avdelning)
            units[namnd].append(unit)
    return replace(
        domain, org=OrgTree(nodes, {f"N{n}": "Benchkommun" for n in range(namnder)})
    ), units


def state(
    units: dict[str, list[str]], categories: list[str], years: int, through: int, seed: int
) -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    items: dict[str, dict[str, Any]] = {}
    for partition, (namnd, members) in enumerate(sorted(units.items())):
        for unit in members:
            levels = rng.uniform(20_000, 400_000, len(categories))
            for year in range(LAST_YEAR - years + 1, LAST_YEAR + 1):
                budget = {
                    c: {
                        "kind": "category",
                        "version": None,
                        "annual": 12 * lv,
                        "monthly": [lv] * 12,
                    }
                    for c, lv in zip(categories, levels, strict=True)
                }
                items[f"p{partition}|{unit}|budget|{year}"] = {"budget": budget}
                last = through if year == LAST_YEAR else 12
                for month in range(1, last + 1):
                    noise = rng.normal(1.0, 0.05, len(categories))
                    cost = {
                        c: float(lv * x) for c, lv, x in zip(categories, levels, noise, strict=True)
                    }
                    items[f"p{partition}|{unit}|{year}-{month:02d}"] = {"cost": cost}
        items[f"p{partition}|{namnd}|closed"] = close_value(through - 1)
    return items


def close_value(month: int) -> dict[str, Any]:
    periods = [f"{LAST_YEAR}-{m:02d}" for m in range(1, month + 1)]
    return {"closed": periods, "close_count": dict.fromkeys(periods, 1)}


def main() -> None:
    from services.config.domain import load_domain_config
    from services.config.rules import load_rules

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namnder", type=int, default=8)
    parser.add_argument("--cost-centres", type=int, default=190)
    parser.add_argument("--categories", type=int, default=12)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--closes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tiny", action="store_true", help="a smoke run (tests/bench)")
    args = parser.parse_args()
    if args.tiny:
        args.namnder, args.cost_centres, args.categories, args.years, args.closes = 2, 10, 4, 2, 1
    from bench.machine import describe

    print(f"machine: {describe()}")

    shipped = load_domain_config(DEFAULT_CONFIG_DIR)
    domain, units = kommun(shipped, args.namnder, args.cost_centres)
    categories = list(shipped.categories)[: args.categories]
    through = 6
    items = state(units, categories, args.years, through, args.seed)
    sent: list[float] = []

    def publish(topic: str, key: str, value: bytes) -> None:
        if topic == "al":
            sent.append(time.perf_counter())

    forecaster = LiveForecaster(
        domain,
        "auto",
        load_rules(DEFAULT_CONFIG_DIR, domain),
        publish,
        "fc",
        "al",
        Metrics(),  # type: ignore[arg-type]
    )
    forecaster.restore_alerts([])
    version = 0

    def run(label: str) -> None:
        nonlocal version
        version += 1
        sent.clear()
        before = sum(s.forecasts_computed for s in forecaster.status.owners.values())
        started = time.perf_counter()
        asyncio.run(forecaster.run_once(version, list(items.items())))
        took = time.perf_counter() - started
        computed = sum(s.forecasts_computed for s in forecaster.status.owners.values()) - before
        first_alert = f"{sent[0] - started:.3f} s" if sent else "no alert"
        print(
            f"{label:<48} {took:8.3f} s  forecasts computed {computed:3d}  "
            f"first alert {first_alert}"
        )
        timings.setdefault(label.split(" (")[0], []).append(took)

    timings: dict[str, list[float]] = {}
    leaves = args.cost_centres * len(categories)
    print(
        f"{args.namnder} nämnder × {args.cost_centres} cost centres × {len(categories)} categories "
        f"= {leaves} leaves per nämnd, {args.years} years"
    )
    try:
        run("first pass (every nämnd, every year)")
        rng = np.random.default_rng(args.seed + 1)
        for step in range(args.closes):
            month = through + step
            # Month by month: every nämnd's postings of the next month, then each nämnd's close
            # of this month, one at a time (the ledgers close on different days).
            for partition, namnd in enumerate(sorted(units)):
                for unit in units[namnd]:
                    key = f"p{partition}|{unit}|{LAST_YEAR}-{month + 1:02d}"
                    items[key] = {
                        "cost": {c: float(rng.uniform(20_000, 400_000)) for c in categories}
                    }
            run(f"postings of every nämnd (month {month + 1})")
            for partition, namnd in enumerate(sorted(units)):
                items[f"p{partition}|{namnd}|closed"] = close_value(month)
                run(f"close of one nämnd (month {month}, {namnd})")
    finally:
        forecaster.close()
    for label, values in timings.items():
        print(f"{label:<48} median {statistics.median(values):.3f} s  max {max(values):.3f} s")
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS of the forecaster's process (state, caches; not its pool): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
