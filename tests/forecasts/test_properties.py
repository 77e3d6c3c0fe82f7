"""Properties: full year = YTD + path; intervals contain the forecast; roll-ups are sums."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from core.hierarchy import OrgNode, OrgTree
from forecasts.engine import forecast_panel
from forecasts.rollup import Leaf, aggregate, estimate_rho, rollup_tree

# Money: whole öre up to ±100 mnkr a month.
amounts = st.integers(-(10**10), 10**10).map(lambda ore: ore / 100)


@settings(max_examples=40, deadline=None)
@given(
    panel=arrays(
        np.float64, st.tuples(st.integers(1, 6), st.sampled_from([24, 36, 48])), elements=amounts
    ),
    as_of=st.integers(1, 12),
    model=st.sampled_from(["auto", "runrate", "lastyear", "seasonal", "ses", "theta", "budget"]),
    start=st.integers(0, 20),
)
def test_full_year_is_ytd_plus_path(panel: np.ndarray, as_of: int, model: str, start: int) -> None:
    panel = panel.copy()
    panel[:, : min(start, panel.shape[1] - 12)] = np.nan  # series that start late
    fc = forecast_panel(panel, as_of, model=model)
    assert fc.path.shape == (panel.shape[0], 12 - as_of)
    assert np.isfinite(fc.full_year).all()
    np.testing.assert_allclose(fc.full_year, fc.ytd + fc.path.sum(axis=1), rtol=1e-9, atol=1e-6)
    year_start = panel.shape[1] - 12
    ytd = np.nan_to_num(panel[:, year_start : year_start + as_of]).sum(axis=1)
    np.testing.assert_allclose(fc.ytd, ytd, rtol=1e-9, atol=1e-6)
    assert (fc.low <= fc.full_year + 1e-6).all() and (fc.full_year <= fc.high + 1e-6).all()
    if as_of == 12:
        np.testing.assert_allclose(fc.low, fc.high)


@settings(max_examples=60, deadline=None)
@given(
    leaves=st.lists(
        st.tuples(amounts, amounts, st.floats(0, 1e6), st.lists(amounts, max_size=4)),
        min_size=1,
        max_size=8,
    )
)
def test_rollup_is_the_sum_with_a_width_between_independent_and_comonotone(
    leaves: list[tuple[float, float, float, list[float]]],
) -> None:
    children = [Leaf(ytd=y, full_year=f, sigma=s, backtest_errors=e) for y, f, s, e in leaves]
    agg = aggregate(children)
    assert agg.full_year == pytest.approx(sum(c.full_year for c in children), abs=1e-3)
    assert agg.ytd == pytest.approx(sum(c.ytd for c in children), abs=1e-3)
    sig = np.array([c.sigma for c in children])
    assert np.sqrt((sig**2).sum()) * (1 - 1e-9) - 1e-9 <= agg.sigma
    assert agg.sigma <= sig.sum() * (1 + 1e-9) + 1e-9
    assert 0.0 <= agg.rho <= 1.0


def test_rho_estimates_perfectly_and_un_correlated_errors() -> None:
    same = np.array([[1.0, -2.0, 3.0], [2.0, -4.0, 6.0]])
    assert estimate_rho(same) == pytest.approx(1.0)
    opposite = np.array([[1.0, -1.0], [-1.0, 1.0]])
    assert estimate_rho(opposite) == 0.0
    assert estimate_rho(np.array([[1.0, 2.0]])) is None


def test_rollup_tree_sums_every_level_and_counts_unknown_units() -> None:
    tree = OrgTree(
        {
            "N": OrgNode("N", "Nämnd", "namnd", None),
            "A": OrgNode("A", "Avd", "avdelning", "N"),
            "1": OrgNode("1", "Enhet 1", "enhet", "A"),
            "2": OrgNode("2", "Enhet 2", "enhet", "A"),
            "omappad": OrgNode("omappad", "Omappade", "avdelning", "N"),
        }
    )
    leaves = {
        "1": Leaf(10.0, 100.0, 5.0, (1.0, 2.0)),
        "2": Leaf(20.0, 200.0, 5.0, (1.0, 2.0)),
        "9": Leaf(1.0, 7.0, 1.0),
    }
    out = rollup_tree(tree, leaves)
    assert out["A"].full_year == 300.0
    assert out["N"].full_year == 307.0
    assert out["omappad"].full_year == 7.0
    assert out["A"].rho == pytest.approx(1.0)
    assert out["A"].sigma == pytest.approx(10.0)
    assert out["A"].low == pytest.approx(300.0 - 1.2815515655446004 * 10.0)


def test_panel_rollup_of_correlated_children_is_wider_than_independent(
    municipal_panel: tuple[list[tuple[str, str]], np.ndarray],
) -> None:
    from forecasts.rollup import leaves_from_panel

    keys, panel = municipal_panel
    rows = [i for i, (_unit, cat) in enumerate(keys) if cat == "salaries"]
    fc = forecast_panel(panel[rows], 8)
    leaves = leaves_from_panel(fc)
    agg = aggregate(leaves)
    assert agg.full_year == pytest.approx(float(fc.full_year.sum()))
    independent = float(np.sqrt((fc.sigma**2).sum()))
    assert independent <= agg.sigma + 1e-9
    assert agg.sigma <= float(fc.sigma.sum()) + 1e-9
    assert all(len(leaf.backtest_errors) == fc.backtest_errors.shape[0] for leaf in leaves)
