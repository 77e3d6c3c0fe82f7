"""The forecasts' caches (forecasts.cache): a kept result is exactly the computed one, a changed
input is always seen, and every cache stays within its bounds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bench.forecast_speed import NAMND_YEAR, namnd_domain, namnd_leaves
from core.domain import DomainConfig
from forecasts import crosslearn, engine, live
from forecasts.cache import BoundedCache, disabled, fingerprint
from forecasts.live import LeafSeries, OrganisationForecast, forecast_organisation

#: 20 cost centres × 12 categories with three origin years: ≈ 700 training rows. The correction
#: is made small (fewer rows needed, fewer rounds) so that every cache takes part in seconds.
COST_CENTRES = 20
MONTH = 6


@pytest.fixture(autouse=True)
def small_correction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crosslearn, "MIN_TRAINING_ROWS", 200)
    monkeypatch.setattr(crosslearn, "ROUNDS", 30)


@pytest.fixture(scope="module")
def namnd() -> tuple[DomainConfig, list[LeafSeries]]:
    domain = namnd_domain(COST_CENTRES)
    return domain, namnd_leaves(domain, COST_CENTRES, seed=3)


def _uncached(
    leaves: list[LeafSeries], domain: DomainConfig, month: int = MONTH
) -> OrganisationForecast:
    with disabled():
        return forecast_organisation(leaves, domain, NAMND_YEAR, month)


def _with_entry(leaves: list[LeafSeries], index: int, period: str, add: float) -> list[LeafSeries]:
    leaf = leaves[index]
    actuals = dict(leaf.actuals)
    actuals[period] = actuals.get(period, 0.0) + add
    return [*leaves[:index], replace(leaf, actuals=actuals), *leaves[index + 1 :]]


def _hits() -> tuple[int, int, int]:
    return (live._result_cache.hits, engine._origin_cache.hits, crosslearn._model_cache.hits)


def test_a_kept_forecast_is_exactly_the_computed_one(
    namnd: tuple[DomainConfig, list[LeafSeries]],
) -> None:
    domain, leaves = namnd
    expected = _uncached(leaves, domain)
    assert len(crosslearn._model_cache) == 0  # nothing was kept while disabled

    first = forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)
    assert len(crosslearn._model_cache) == 1  # the correction was fitted, and kept
    again = forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)
    assert _hits() == (1, 0, 0)  # the same inputs: the whole result
    assert first.nodes == expected.nodes and first.failed == expected.failed
    assert again.nodes == expected.nodes and again.failed == expected.failed
    # The caller's lists are its own: changing them does not change what is kept.
    again.nodes.clear()
    assert forecast_organisation(leaves, domain, NAMND_YEAR, MONTH).nodes == expected.nodes


def test_a_posting_in_the_forecast_year_reuses_what_history_taught(
    namnd: tuple[DomainConfig, list[LeafSeries]],
) -> None:
    domain, leaves = namnd
    forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)
    posted = _with_entry(leaves, 0, f"{NAMND_YEAR}-{MONTH:02d}", 50_000.0)
    result = forecast_organisation(posted, domain, NAMND_YEAR, MONTH)
    # A new result, from the kept origin tables (costs and measures) and the kept correction.
    assert _hits() == (0, 2, 1)
    expected = _uncached(posted, domain)
    assert result.nodes == expected.nodes
    unit = leaves[0].org_unit
    before = forecast_organisation(leaves, domain, NAMND_YEAR, MONTH).get(unit, leaves[0].name)
    after = result.get(unit, leaves[0].name)
    assert before is not None and after is not None
    assert after.actual_ytd == pytest.approx(before.actual_ytd + 50_000.0)


def test_a_late_posting_in_a_history_year_is_learnt_again(
    namnd: tuple[DomainConfig, list[LeafSeries]],
) -> None:
    domain, leaves = namnd
    before = forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)
    late = _with_entry(leaves, 5, f"{NAMND_YEAR - 2}-03", 400_000.0)
    result = forecast_organisation(late, domain, NAMND_YEAR, MONTH)
    # The cost panel's history changed: its table and the correction are computed again (the
    # measures' table, untouched, is reused).
    assert _hits() == (0, 1, 0)
    assert len(crosslearn._model_cache) == 2
    expected = _uncached(late, domain)
    assert result.nodes == expected.nodes
    assert result.nodes != before.nodes


def test_a_new_budget_is_seen(namnd: tuple[DomainConfig, list[LeafSeries]]) -> None:
    domain, leaves = namnd
    forecast_organisation(leaves, domain, NAMND_YEAR, MONTH)
    leaf = leaves[0]
    assert leaf.budget_monthly is not None
    raised = [v * 1.1 for v in leaf.budget_monthly]
    rebudgeted = [replace(leaf, budget_monthly=raised), *leaves[1:]]
    result = forecast_organisation(rebudgeted, domain, NAMND_YEAR, MONTH)
    assert result.nodes == _uncached(rebudgeted, domain).nodes
    node = result.get(leaf.org_unit, leaf.name)
    assert node is not None and node.budget_full_year == pytest.approx(sum(raised))


def test_a_posting_after_the_as_of_month_keeps_that_months_forecast(
    namnd: tuple[DomainConfig, list[LeafSeries]],
) -> None:
    domain, leaves = namnd
    small, may = leaves[: 14 * 3], MONTH - 1
    before = forecast_organisation(small, domain, NAMND_YEAR, may)
    june_posting = _with_entry(small, 0, f"{NAMND_YEAR}-{MONTH:02d}", 50_000.0)
    kept = forecast_organisation(june_posting, domain, NAMND_YEAR, may)
    assert live._result_cache.hits == 1
    assert kept.nodes == before.nodes == _uncached(june_posting, domain, may).nodes
    # A late posting in the as-of month itself is a new forecast.
    late = _with_entry(june_posting, 0, f"{NAMND_YEAR}-{may:02d}", 1_000.0)
    result = forecast_organisation(late, domain, NAMND_YEAR, may)
    assert live._result_cache.hits == 1
    assert result.nodes == _uncached(late, domain, may).nodes != before.nodes
    # An unusable amount after the as-of month still leaves its series out.
    broken = _with_entry(small, 0, f"{NAMND_YEAR}-12", float("nan"))
    failed = forecast_organisation(broken, domain, NAMND_YEAR, may).failed
    assert [(f.org_unit, f.name) for f in failed] == [(small[0].org_unit, small[0].name)]
    assert failed == _uncached(broken, domain, may).failed


def test_another_month_or_configuration_is_another_forecast(
    namnd: tuple[DomainConfig, list[LeafSeries]],
) -> None:
    domain, leaves = namnd
    small = leaves[: 14 * 3]  # three cost centres: no correction, quick
    june = forecast_organisation(small, domain, NAMND_YEAR, MONTH)
    july = forecast_organisation(small, domain, NAMND_YEAR, MONTH + 1)
    assert july.as_of_month == MONTH + 1 and july.nodes != june.nodes
    salaries = domain.categories["salaries"]
    flat = replace(salaries, profile=(1 / 12,) * 12)
    other = replace(domain, categories={**domain.categories, "salaries": flat})
    with disabled():
        expected = forecast_organisation(small, other, NAMND_YEAR, MONTH)
    assert forecast_organisation(small, other, NAMND_YEAR, MONTH).nodes == expected.nodes
    assert live._result_cache.hits == 0


def test_a_cache_keeps_its_bounds_and_forgets_the_least_recently_used() -> None:
    cache: BoundedCache[np.ndarray] = BoundedCache("test", 3, 100, lambda a: int(a.nbytes))
    for key in "abc":
        cache.put(key, np.zeros(2))  # 16 bytes each
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("d", np.zeros(2))
    assert len(cache) == 3 and "b" not in cache and {"a", "c", "d"} <= {*"acd"}
    cache.put("e", np.zeros(10))  # 80 bytes: the oldest go until 100 bytes are not exceeded
    assert cache.bytes <= 100 and "e" in cache and len(cache) == 2
    cache.put("f", np.zeros(20))  # larger than the whole bound: not kept, nothing evicted
    assert "f" not in cache and len(cache) == 2
    with pytest.raises(ValueError):
        BoundedCache("empty", 0, 100, lambda a: 1)


def test_the_module_caches_stay_within_their_bounds(
    namnd: tuple[DomainConfig, list[LeafSeries]], monkeypatch: pytest.MonkeyPatch
) -> None:
    domain, leaves = namnd
    small_cache = BoundedCache("organisation forecasts", 2, 10**9, live._forecast_bytes)
    monkeypatch.setattr(live, "_result_cache", small_cache)
    small = leaves[:24]
    for month in range(1, 6):
        forecast_organisation(small, domain, NAMND_YEAR, month)
    assert len(small_cache) == 2
    for cache in (live._result_cache, engine._origin_cache, crosslearn._model_cache):
        assert len(cache) <= cache.max_entries and cache.bytes <= cache.max_bytes


def test_a_fingerprint_tells_arrays_apart_by_every_byte_and_the_shape() -> None:
    a = np.arange(12.0)
    assert fingerprint(a, 1, None) == fingerprint(a.copy(), 1, None)
    changed = a.copy()
    changed[7] = np.nextafter(changed[7], np.inf)
    assert fingerprint(changed) != fingerprint(a)
    assert fingerprint(a.reshape(3, 4)) != fingerprint(a.reshape(4, 3))
    assert fingerprint(a, None) != fingerprint(a, 0)
    assert fingerprint({"x": 1.0}) == fingerprint({"x": 1.0}) != fingerprint({"x": 1})
    with pytest.raises(TypeError):
        fingerprint(object())


def test_a_bag_fitted_in_threads_is_the_bag_fitted_one_model_after_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 6))
    target = np.clip(0.1 * x[:, 0] + rng.normal(0.0, 0.05, 400), -0.5, 0.5)
    weight = rng.uniform(0.1, 1.0, 400)
    monkeypatch.setattr(crosslearn, "FIT_THREADS", 1)
    serial = crosslearn.fit(x, target, weight).predict(x)
    monkeypatch.setattr(crosslearn, "FIT_THREADS", 2)
    threaded = crosslearn.fit(x, target, weight).predict(x)
    assert np.ptp(serial) > 0  # the models learnt something
    assert np.array_equal(serial, threaded)
