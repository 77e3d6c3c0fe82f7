"""Fixtures for the forecast engine tests: constructed series and CSV writers."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest

from bench.synthetic_municipal import generate

SEASONAL_SHAPE = np.array([1.0, 0.9, 1.0, 1.0, 1.1, 1.4, 1.9, 1.6, 1.0, 0.95, 0.95, 1.2])


def monthly_history(values: Sequence[float], first_year: int = 2021) -> dict[str, float]:
    """``[v0, v1, …]`` → ``{"2021-01": v0, "2021-02": v1, …}``."""
    return {f"{first_year + i // 12}-{i % 12 + 1:02d}": float(v) for i, v in enumerate(values)}


@pytest.fixture(autouse=True)
def fresh_forecast_caches() -> None:
    """Every test starts with the forecasts' caches empty (``forecasts.cache``): a result kept
    by an earlier test must not stand in for a computation a test patches or counts."""
    from forecasts.cache import clear_all

    clear_all()


@pytest.fixture
def municipal_panel() -> tuple[list[tuple[str, str]], np.ndarray]:
    return generate(n_units=6, n_years=5, seed=11)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, Iterable[Sequence[object]]], Path]:
    def _write(name: str, rows: Iterable[Sequence[object]]) -> Path:
        path = tmp_path / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
        return path

    return _write


@pytest.fixture
def actuals_csv(
    write_csv: Callable[[str, Iterable[Sequence[object]]], Path],
) -> Path:
    """Three and a half years of two cost centres (salaries and revenue), through 2024-08."""
    rows: list[Sequence[object]] = [("org_unit", "category", "period", "amount_sek")]
    for unit, scale in (("1110", 1.0), ("1120", 2.0)):
        for i in range(44):
            year, month = 2021 + i // 12, i % 12 + 1
            rows.append(
                (
                    unit,
                    "salaries",
                    f"{year}-{month:02d}",
                    f"{1000 * scale * SEASONAL_SHAPE[month - 1]:.2f}",
                )
            )
            rows.append((unit, "revenue_fees", f"{year}-{month:02d}", f"{-100 * scale:.2f}"))
    return write_csv("A.csv", rows)
