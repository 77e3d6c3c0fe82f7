"""Warming the forecasts' caches before a month's postings (``forecasts.live.warm_organisation``):
the later forecast finds what history taught, and is exactly the cold one; warming that is asked
to stop gives way within a boosting round and keeps nothing half-done."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.forecast_speed import NAMND_YEAR, namnd_domain, namnd_leaves
from core.domain import DomainConfig
from forecasts import crosslearn, engine, live
from forecasts.cache import Aborted, abortable, clear_all, disabled
from forecasts.live import LeafSeries, forecast_organisation, warm_organisation

COST_CENTRES = 20
MONTH = 6  # the month whose close is next: warmed after the close of the month before


@pytest.fixture(autouse=True)
def small_correction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crosslearn, "MIN_TRAINING_ROWS", 200)
    monkeypatch.setattr(crosslearn, "ROUNDS", 30)


@pytest.fixture(scope="module")
def namnd() -> tuple[DomainConfig, list[LeafSeries]]:
    domain = namnd_domain(COST_CENTRES)
    return domain, namnd_leaves(domain, COST_CENTRES, seed=3)


def _before_month(leaves: list[LeafSeries], month: int) -> list[LeafSeries]:
    """The leaves as they stand before ``month`` of the forecast year has any posting."""
    cut = f"{NAMND_YEAR}-{month:02d}"
    return [
        replace(leaf, actuals={p: a for p, a in leaf.actuals.items() if str(p) < cut})
        for leaf in leaves
    ]


def _counts() -> dict[str, tuple[int, int]]:
    """(hits, misses) of the origin-year tables and of the fitted corrections."""
    return {
        "origins": (engine._origin_cache.hits, engine._origin_cache.misses),
        "models": (crosslearn._model_cache.hits, crosslearn._model_cache.misses),
    }


def test_a_warmed_month_is_forecast_from_the_caches_and_exactly_as_cold(
    namnd: tuple[DomainConfig, list[LeafSeries]],
) -> None:
    domain, leaves = namnd
    with disabled():
        cold = forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)

    # After the close of May, before June's postings: what June's forecast learns from history.
    warm_organisation(_before_month(leaves, MONTH), domain, NAMND_YEAR, MONTH)
    assert _counts() == {"origins": (0, 2), "models": (0, 1)}  # costs and measures; one fit
    assert len(live._result_cache) == 0  # the forecast made while warming is not kept

    # June's postings arrive: the forecast as of June reuses both tables and the fitted bag.
    warm = forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)
    assert _counts() == {"origins": (2, 2), "models": (1, 1)}
    assert warm.nodes == cold.nodes and warm.failed == cold.failed  # every float, bit for bit

    # Without warming the same forecast computes them (the control: the hits came from warming).
    clear_all()
    forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)
    assert _counts() == {"origins": (0, 2), "models": (0, 1)}


def test_warming_another_month_warms_nothing_for_this_one(
    namnd: tuple[DomainConfig, list[LeafSeries]],
) -> None:
    domain, leaves = namnd
    warm_organisation(_before_month(leaves, MONTH), domain, NAMND_YEAR, MONTH + 1)
    forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)
    assert _counts() == {"origins": (0, 4), "models": (0, 2)}


def test_warming_asked_to_stop_gives_way_and_keeps_no_half_fitted_model(
    namnd: tuple[DomainConfig, list[LeafSeries]],
) -> None:
    domain, leaves = namnd
    early = _before_month(leaves, MONTH)
    rounds: list[int] = []

    def stop_after_three_rounds() -> bool:
        rounds.append(1)
        return len(rounds) > 3

    with abortable(stop_after_three_rounds), pytest.raises(Aborted):
        warm_organisation(early, domain, NAMND_YEAR, MONTH)
    # It stopped inside the fit (well before the bag's rounds were done) and kept no model.
    assert 3 < len(rounds) < crosslearn.BAGS * crosslearn.ROUNDS
    assert len(crosslearn._model_cache) == 0

    # Asked to stop before it starts: nothing is computed at all.
    with abortable(lambda: True), pytest.raises(Aborted):
        warm_organisation(early, domain, NAMND_YEAR, MONTH)

    # Warming again to the end, then the forecast: exactly the cold one.
    with abortable(lambda: False):
        warm_organisation(early, domain, NAMND_YEAR, MONTH)
    assert len(crosslearn._model_cache) == 1
    warm = forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)
    assert crosslearn._model_cache.hits == 1
    with disabled():
        assert warm.nodes == forecast_organisation(leaves, domain, NAMND_YEAR, MONTH).nodes
