"""A small seeded generator of municipal cost series (for tests and the accuracy bench).

Modelled on the domain (shared/domain/domain.md, config/categories.yaml): per cost centre and
category a yearly level with drift, the category's monthly profile (summer substitutes,
overtime booked the month after it is worked, December-heavy other costs, salaries with an
April pay revision paid with retroactive pay in May), month-to-month noise, and now and then a
level shift inside a year (an overrun starting in spring). Revenues are negative.
Independent of services/demo/scenario.py on purpose.
"""

from __future__ import annotations

import numpy as np

MONTHS = 12
PROFILES: dict[str, list[float]] = {
    "salaries": [1.0, 1.0, 1.0, 1.0, 1.05, 0.95, 0.85, 0.9, 1.05, 1.05, 1.05, 1.1],
    "substitutes": [0.8, 0.75, 0.8, 0.8, 0.9, 1.5, 2.1, 1.8, 0.85, 0.8, 0.8, 1.1],
    "overtime": [1.4, 0.9, 0.9, 1.0, 1.1, 0.9, 1.2, 1.3, 1.1, 0.8, 0.8, 0.6],
    "purchased_care": [1.0] * 12,
    "other_costs": [0.95] * 11 + [1.55],
    "revenue_fees": [1.0] * 12,
}
LEVELS = {
    "salaries": 2.0e6,
    "substitutes": 3.0e5,
    "overtime": 6.0e4,
    "purchased_care": 8.0e5,
    "other_costs": 1.5e5,
    "revenue_fees": -1.2e5,
}
NOISE = {
    "salaries": 0.01,
    "substitutes": 0.06,
    "overtime": 0.15,
    "purchased_care": 0.05,
    "other_costs": 0.08,
    "revenue_fees": 0.04,
}


def generate(
    n_units: int = 20, n_years: int = 5, seed: int = 7
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Return ``(keys (org_unit, category), panel (n, n_years * 12))``."""
    rng = np.random.default_rng(seed)
    keys: list[tuple[str, str]] = []
    rows: list[np.ndarray] = []
    for u in range(n_units):
        unit = f"{1000 + 10 * u}"
        size = rng.uniform(0.5, 2.0)
        for cat, prof in PROFILES.items():
            p = np.asarray(prof) / np.mean(prof)
            level = LEVELS[cat] * size / 12 * MONTHS / 12
            growth = rng.normal(0.03, 0.02)
            row = np.empty(n_years * MONTHS)
            for y in range(n_years):
                year_level = level * (1 + growth) ** y
                months = year_level * p * rng.lognormal(0, NOISE[cat], MONTHS)
                if cat == "salaries":
                    months[4:] *= 1.03  # pay revision from April, paid from May
                    months[4] += 0.03 * year_level  # retroactive April pay in May
                if rng.random() < 0.2:  # an overrun (or saving) starting in spring
                    start = int(rng.integers(2, 7))
                    months[start:] *= 1 + rng.normal(0, 0.08)
                row[y * MONTHS : (y + 1) * MONTHS] = months
            keys.append((unit, cat))
            rows.append(row)
    return keys, np.array(rows)
