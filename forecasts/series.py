"""One series at a time: ``forecast_series`` on a monthly history keyed by ``YYYY-MM``.

A thin wrapper over the vectorised ``forecasts.engine.forecast_panel``; the streaming worker
should batch touched series and call the panel function (or ``forecast_many``) instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.domain import Category
from core.period import Period
from forecasts.candidates import MONTHS
from forecasts.effects import apply_pay_revision
from forecasts.engine import PanelForecast, forecast_panel

#: Years of history a single-series forecast looks back (older years add little).
MAX_HISTORY_YEARS = 10


@dataclass(frozen=True)
class SeriesForecast:
    year: int
    as_of: int
    ytd: float
    path: tuple[float, ...]  # months as_of+1 … 12
    full_year: float
    low: float
    high: float
    sigma: float
    model: str
    interval_method: str = "fallback"  # forecasts.calibration: backtest | panel | fallback | actual
    interval_coverage: float | None = None  # share of the calibration set inside such an interval


def build_panel(
    histories: Sequence[Mapping[str, float]], year: int, as_of: int
) -> tuple[np.ndarray, int]:
    """Histories keyed by ``YYYY-MM`` → a calendar panel ending with ``year``.

    Months before a series' first entry are NaN (it did not exist yet); months after it with no
    entry are 0 (nothing booked). Entries after the as-of month are ignored.
    Returns ``(panel, first_year)``.
    """
    months_of: dict[str, int] = {}  # period text → months since year 0 (parsed once per call)
    parsed: list[dict[int, float]] = []
    for history in histories:
        entries: dict[int, float] = {}
        for text, value in history.items():
            month = months_of.get(text)
            if month is None:
                y, m = Period.parse(text)
                month = months_of[text] = y * MONTHS + m - 1
            entries[month] = float(value)
        parsed.append(entries)
    firsts = [min(entries) for entries in parsed if entries]
    first_year = min([f // MONTHS for f in firsts], default=year)
    first_year = max(first_year, year - MAX_HISTORY_YEARS + 1)
    n_years = year - first_year + 1
    panel = np.full((len(parsed), n_years * MONTHS), np.nan)
    end = (n_years - 1) * MONTHS + as_of
    base = first_year * MONTHS
    for row, entries in enumerate(parsed):
        if not entries:
            continue
        panel[row, max(0, min(entries) - base) : end] = 0.0
        cols = np.fromiter(entries.keys(), dtype=np.int64, count=len(entries)) - base
        values = np.fromiter(entries.values(), dtype=float, count=len(entries))
        inside = (cols >= 0) & (cols < end)
        panel[row, cols[inside]] = values[inside]
    return panel, first_year


def forecast_many(
    histories: Sequence[Mapping[str, float]],
    year: int,
    as_of_month: int,
    budgets_monthly: Sequence[Sequence[float] | None] | None = None,
    model: str = "auto",
    categories: Sequence[Category | None] | None = None,
    preliminary_last_month: bool = False,
    pay_increase: float | None = None,
    processes: int = 1,
) -> list[SeriesForecast]:
    """Forecast several series for ``year`` as of ``as_of_month`` in one vectorised call."""
    panel, _first_year = build_panel(histories, year, as_of_month)
    n, n_years = panel.shape[0], panel.shape[1] // MONTHS
    budgets = None
    if budgets_monthly is not None and any(b is not None for b in budgets_monthly):
        budgets = np.full((n, n_years, MONTHS), np.nan)
        for row, bud in enumerate(budgets_monthly):
            if bud is not None:
                budgets[row, -1, :] = np.asarray(bud, dtype=float)
    fallback = None
    groups = None
    if categories is not None:
        groups = [cat.id if cat is not None else "" for cat in categories]
        fallback = np.full((n, MONTHS), 1.0 / MONTHS)
        for row, cat in enumerate(categories):
            if cat is not None:
                prof = np.asarray(cat.profile, dtype=float)
                fallback[row] = prof / prof.sum()
    fc = forecast_panel(
        panel,
        as_of_month,
        budgets,
        model,
        fallback,
        processes=processes,
        preliminary_last_month=preliminary_last_month,
        groups=groups,
    )
    if pay_increase and categories is not None:
        months = [c.pay_revision_month if c is not None else None for c in categories]
        fc = apply_pay_revision(fc, months, pay_increase)
    return _to_series(fc, year)


def forecast_series(
    history: Mapping[str, float],
    year: int,
    as_of_month: int,
    budget_monthly: Sequence[float] | None = None,
    model: str = "auto",
    category: Category | None = None,
    preliminary_last_month: bool = False,
    pay_increase: float | None = None,
) -> SeriesForecast:
    """Full-year forecast of one series: YTD actuals plus the forecast of the remaining months."""
    return forecast_many(
        [history],
        year,
        as_of_month,
        [budget_monthly] if budget_monthly is not None else None,
        model,
        [category] if category is not None else None,
        preliminary_last_month,
        pay_increase,
    )[0]


def _to_series(fc: PanelForecast, year: int) -> list[SeriesForecast]:
    return [
        SeriesForecast(
            year=year,
            as_of=fc.as_of,
            ytd=float(fc.ytd[i]),
            path=tuple(float(v) for v in fc.path[i]),
            full_year=float(fc.full_year[i]),
            low=float(fc.low[i]),
            high=float(fc.high[i]),
            sigma=float(fc.sigma[i]),
            model=str(fc.model[i]),
            interval_method=(
                str(fc.interval_method[i]) if fc.interval_method is not None else "fallback"
            ),
            interval_coverage=_coverage(fc, i),
        )
        for i in range(fc.ytd.shape[0])
    ]


def _coverage(fc: PanelForecast, i: int) -> float | None:
    if fc.interval_coverage is None or np.isnan(fc.interval_coverage[i]):
        return None
    return float(fc.interval_coverage[i])
