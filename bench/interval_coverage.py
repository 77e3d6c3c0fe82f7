"""Coverage of the 80 % intervals: how often the forecast year's outcome lay inside them.

    .venv/bin/python -m bench.interval_coverage [DB]         # a snapshot database
    .venv/bin/python -m bench.interval_coverage --scenario 7 # a demo scenario, offline

With a database (default ``data/demo/budgetvakt.sqlite``, what ``budgetvakt demo`` leaves) it
reads the latest snapshot version of every month of the forecast year (``--year``, default the
latest year with a December snapshot); the outcome of each node and category is the December
snapshot's actual. With ``--scenario SEED`` it computes the same forecasts as the worker would
(``forecasts.live.forecast_organisation`` on the aggregated scenario events, as of each month)
without a broker, so a second seed or ``--years`` can be checked in seconds.

Every cost row (each enhet, avdelning, förvaltning and the nämnd; each category and the total)
of months ``--months`` (default 2–11) counts once. Prints coverage overall, per month, per level,
per interval method (``forecasts.calibration``) and per model, and the issue's target: 75–85 %
overall and 70–90 % in every month.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.machine import describe
from forecasts.live import OrganisationForecast

DEFAULT_DB = Path("data/demo/budgetvakt.sqlite")
TARGET_OVERALL = (75.0, 85.0)
TARGET_MONTH = (70.0, 90.0)


@dataclass(frozen=True)
class Row:
    month: int
    level: str
    method: str
    model: str
    category: str
    inside: bool


def rows_of(
    forecasts: Iterable[OrganisationForecast], outcome: dict[tuple[str, str], float]
) -> list[Row]:
    out = []
    for fc in forecasts:
        for node in fc.nodes:
            actual = outcome.get((node.org_unit, node.category))
            if node.kind != "cost" or actual is None:
                continue
            out.append(
                Row(
                    fc.as_of_month,
                    node.level,
                    node.interval_method,
                    node.model.split("+")[0],
                    node.category,
                    node.low <= actual <= node.high,
                )
            )
    return out


def _outcome(december: OrganisationForecast) -> dict[tuple[str, str], float]:
    return {(n.org_unit, n.category): n.actual_ytd for n in december.nodes if n.kind == "cost"}


def from_database(path: Path, year: int | None) -> tuple[int, list[OrganisationForecast]]:
    from services.snapshots.engine import make_engine
    from services.snapshots.store import load_snapshots, snapshot_periods

    if not path.exists():
        sys.exit(f"no snapshot database at {path} (run `budgetvakt demo` first, or give a path)")
    engine = make_engine(f"sqlite:///{path.resolve()}")
    if year is None:
        decembers = sorted(int(p[:4]) for p in snapshot_periods(engine) if p.endswith("-12"))
        if not decembers:
            sys.exit(f"{path}: no December snapshot, so no outcome to compare with")
        year = decembers[-1]
    return year, [s.forecast for s in load_snapshots(engine, year)]


def from_scenario(
    seed: int, years: int, months: Sequence[int]
) -> tuple[int, list[OrganisationForecast]]:
    from core.settings import DEFAULT_CONFIG_DIR
    from forecasts.live import forecast_organisation
    from services.config.domain import load_domain_config
    from services.demo.scenario import generate_scenario
    from streams.aggregation import leaf_series
    from streams.replay import RawMessage, aggregate

    domain = load_domain_config(DEFAULT_CONFIG_DIR)
    scenario = generate_scenario(seed=seed, years=years, domain=domain)
    messages = [RawMessage("", json.dumps(e).encode()) for e in scenario.all_events()]
    items = list(aggregate(messages, {}, domain).items.items())
    year = scenario.years[-1]
    leaves, _ = leaf_series(items, year)
    return year, [
        forecast_organisation(leaves, domain, year, month) for month in sorted({*months, 12})
    ]


def _share(rows: Sequence[Row]) -> float:
    return 100.0 * sum(r.inside for r in rows) / len(rows) if rows else float("nan")


def _table(title: str, rows: Sequence[Row], key: Callable[[Row], object]) -> None:
    print(f"\n{title:<14s} {'rows':>5s} {'inside %':>9s}")
    for value in sorted({key(r) for r in rows}, key=str):
        group = [r for r in rows if key(r) == value]
        print(f"{value!s:<14s} {len(group):5d} {_share(group):9.1f}")


def report(rows: Sequence[Row], months: Sequence[int]) -> bool:
    chosen = [r for r in rows if r.month in months]
    overall = _share(chosen)
    print(f"\ncost rows, months {months[0]}–{months[-1]}, every level: {len(chosen)}")
    print(f"overall: {overall:.1f} % inside the 80 % interval")
    _table("month", [r for r in rows if r.month < 12], lambda r: f"{r.month:02d}")
    _table("level", chosen, lambda r: r.level)
    _table("method", chosen, lambda r: r.method)
    _table("model", chosen, lambda r: r.model)
    per_month = [_share([r for r in chosen if r.month == m]) for m in months]
    ok_overall = TARGET_OVERALL[0] <= overall <= TARGET_OVERALL[1]
    ok_months = all(TARGET_MONTH[0] <= c <= TARGET_MONTH[1] for c in per_month)
    print(
        f"\ntarget overall {TARGET_OVERALL[0]:.0f}–{TARGET_OVERALL[1]:.0f} %: "
        f"{'met' if ok_overall else 'NOT met'} ({overall:.1f} %); every month "
        f"{TARGET_MONTH[0]:.0f}–{TARGET_MONTH[1]:.0f} %: {'met' if ok_months else 'NOT met'} "
        f"({min(per_month):.1f}–{max(per_month):.1f} %)"
    )
    return ok_overall and ok_months


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", nargs="?", type=Path, default=DEFAULT_DB)
    parser.add_argument("--year", type=int, help="forecast year (default: latest with December)")
    parser.add_argument("--scenario", type=int, metavar="SEED", help="compute a scenario offline")
    parser.add_argument("--years", type=int, default=5, help="scenario years, forecast year too")
    parser.add_argument("--months", default="2-11", help="as-of months counted, e.g. 2-11")
    parser.add_argument("--tiny", action="store_true", help="the demo scenario, offline")
    args = parser.parse_args()
    first, _, last = args.months.partition("-")
    months = list(range(int(first), int(last or first) + 1))
    print(f"machine: {describe()}")
    if args.tiny and args.scenario is None:
        args.scenario = 2024
    if args.scenario is not None:
        year, forecasts = from_scenario(args.scenario, args.years, months)
        print(f"source: scenario seed {args.scenario}, {args.years} years, forecast year {year}")
    else:
        year, forecasts = from_database(args.database, args.year)
        print(f"source: {args.database}, forecast year {year}, {len(forecasts)} snapshots")
    december = next((f for f in forecasts if f.as_of_month == 12), None)
    if december is None:
        sys.exit(f"no December forecast for {year}: no outcome to compare with")
    report(rows_of(forecasts, _outcome(december)), months)


if __name__ == "__main__":
    main()
