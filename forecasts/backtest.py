"""Hold-out backtest of full-year forecasts: the last full calendar year against the models.

Pure: takes a panel (``forecasts.candidates``), returns per (cutoff, model) the median and mean
absolute percentage error of the full-year total and the 80 % interval coverage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from forecasts.candidates import MONTHS, Array
from forecasts.engine import forecast_panel

BASELINES: tuple[str, ...] = ("runrate", "lastyear")
DEFAULT_CUTOFFS: tuple[int, ...] = (4, 8, 10)


@dataclass(frozen=True)
class BacktestRow:
    cutoff: int
    model: str
    series: int
    median_ape_pct: float
    mean_ape_pct: float
    coverage_80_pct: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def eligible(values: Array) -> np.ndarray:
    """Series whose last year is complete and that have two complete years before it."""
    years = values.shape[1] // MONTHS
    if years < 3:
        return np.zeros(values.shape[0], dtype=bool)
    tail = values[:, -3 * MONTHS :]
    ok = ~np.isnan(tail).any(axis=1)
    return ok & (np.abs(values[:, -MONTHS:].sum(axis=1)) > 0)


def backtest_panel(
    values: Array,
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    models: Sequence[str] = ("auto",),
    budgets: Array | None = None,
    fallback_profile: Array | None = None,
    progress: Callable[[int], None] | None = None,
    processes: int = 1,
) -> tuple[list[BacktestRow], dict[tuple[int, str], Array]]:
    """Backtest ``models`` (plus the two baselines) on the eligible rows of ``values``.

    Returns the summary rows and, per (cutoff, model), the signed percentage errors per series
    (for the bench's own analysis).
    """
    keep = eligible(values)
    panel = values[keep]
    bud = budgets[keep] if budgets is not None else None
    fb = fallback_profile[keep] if fallback_profile is not None else None
    actual = panel[:, -MONTHS:].sum(axis=1)
    ordered = list(BASELINES) + [m for m in models if m not in BASELINES]
    rows: list[BacktestRow] = []
    errors: dict[tuple[int, str], Array] = {}
    for cutoff in cutoffs:
        for model in ordered:
            fc = forecast_panel(
                panel, cutoff, bud, model, fb, progress=progress, processes=processes
            )
            err = (fc.full_year - actual) / np.abs(actual) * 100.0
            ape = np.abs(err)
            covered = (fc.low <= actual) & (actual <= fc.high)
            errors[(cutoff, model)] = err
            rows.append(
                BacktestRow(
                    cutoff=cutoff,
                    model=model,
                    series=int(panel.shape[0]),
                    median_ape_pct=float(np.median(ape)) if ape.size else float("nan"),
                    mean_ape_pct=float(np.mean(ape)) if ape.size else float("nan"),
                    coverage_80_pct=float(np.mean(covered) * 100) if ape.size else float("nan"),
                )
            )
    return rows, errors
