"""Roll-ups of forecasts over the organisation tree: sums, with a proper interval.

The forecast of a parent is the sum of its children's forecasts (paths, YTD and full year add
up exactly). Its interval is not the sum of the children's bounds (that assumes perfectly
correlated errors and is far too wide). Instead the parent's variance is

    Var(Σ X_i) = Σ σ_i² + ρ · ((Σ σ_i)² − Σ σ_i²)

i.e. an equicorrelation model, with σ_i each child's full-year SD (from the engine) and ρ the
average correlation of the children's errors, estimated from their rolling-origin backtest
errors at the same as-of month (``PanelForecast.backtest_errors``):

    ρ̂ = Σ_k ((Σ_i e_ik)² − Σ_i e_ik²) / Σ_k ((Σ_i |e_ik|)² − Σ_i e_ik²)

clipped to [0, 1], and ``DEFAULT_RHO`` where it cannot be estimated (fewer than two children or
origins). The 80 % interval is the sum ± z·σ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.hierarchy import OrgTree
from forecasts.engine import Z80, PanelForecast

#: Correlation assumed between sibling forecast errors when the backtest cannot tell.
DEFAULT_RHO = 0.3


@dataclass(frozen=True)
class Leaf:
    ytd: float
    full_year: float
    sigma: float
    backtest_errors: Sequence[float] = ()  # SEK errors at earlier origins, NaN allowed


@dataclass(frozen=True)
class Aggregate:
    ytd: float
    full_year: float
    low: float
    high: float
    sigma: float
    rho: float


def estimate_rho(errors: np.ndarray) -> float | None:
    """Average pairwise error correlation from (children, origins) errors; None if unknown."""
    if errors.ndim != 2 or errors.shape[0] < 2:
        return None
    complete = ~np.isnan(errors).any(axis=0)
    e = errors[:, complete]
    if e.shape[1] < 2:
        return None
    num = (e.sum(axis=0) ** 2 - (e**2).sum(axis=0)).sum()
    den = (np.abs(e).sum(axis=0) ** 2 - (e**2).sum(axis=0)).sum()
    if den <= 0:
        return None
    return float(np.clip(num / den, 0.0, 1.0))


def aggregate(children: Sequence[Leaf]) -> Aggregate:
    """Sum of children with the equicorrelation interval."""
    if not children:
        return Aggregate(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    sig = np.array([c.sigma for c in children], dtype=float)
    width = max((len(c.backtest_errors) for c in children), default=0)
    errs = np.full((len(children), width), np.nan)
    for i, c in enumerate(children):
        errs[i, : len(c.backtest_errors)] = c.backtest_errors
    rho = estimate_rho(errs)
    return aggregate_sums(
        [c.ytd for c in children],
        [c.full_year for c in children],
        sig,
        DEFAULT_RHO if rho is None else rho,
    )


def aggregate_sums(
    ytd: Sequence[float], full_year: Sequence[float], sigma: np.ndarray, rho: float
) -> Aggregate:
    """The equicorrelation sum of children given as columns (``sigma`` a float array)."""
    var = (sigma**2).sum() + rho * (sigma.sum() ** 2 - (sigma**2).sum())
    sd = float(np.sqrt(max(var, 0.0)))
    total = float(sum(full_year))
    return Aggregate(
        ytd=float(sum(ytd)),
        full_year=total,
        low=total - Z80 * sd,
        high=total + Z80 * sd,
        sigma=sd,
        rho=rho,
    )


def rollup_tree(tree: OrgTree, leaves: Mapping[str, Leaf]) -> dict[str, Aggregate]:
    """Aggregate every node of ``tree`` (and ``omappad``) from the leaf forecasts under it."""
    members: dict[str, list[Leaf]] = {}
    for unit_id, leaf in leaves.items():
        for node_id in tree.path(unit_id):
            members.setdefault(node_id, []).append(leaf)
    return {node_id: aggregate(group) for node_id, group in members.items()}


def leaves_from_panel(fc: PanelForecast) -> list[Leaf]:
    """One ``Leaf`` per row of a panel forecast (same order), with its backtest errors."""
    errors = fc.backtest_errors
    return [
        Leaf(
            ytd=float(fc.ytd[i]),
            full_year=float(fc.full_year[i]),
            sigma=float(fc.sigma[i]),
            backtest_errors=tuple(float(e) for e in errors[:, i]) if errors.size else (),
        )
        for i in range(fc.ytd.shape[0])
    ]
