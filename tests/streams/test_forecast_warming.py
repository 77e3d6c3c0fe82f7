"""Warming the forecast pool's caches while the worker is idle (streams.forecasting,
``LiveForecaster.warm_while_idle``): after a nämnd's close of May, what its June forecast learns
from history is computed in the pool; June's forecast then finds it there and equals the cold
forecast; a close makes a running warm-up give way."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from core.domain import DomainConfig
from forecasts.cache import disabled, figures
from streams.forecasting import LiveForecaster, Warming, compute_forecasts
from streams.owner_inputs import ForecastRequest

ORIGINS = "origin years"
JUNE = ForecastRequest(2024, 6)


class State:
    """Table items as the worker's state holds them (a changed key gets a new value)."""

    def __init__(self, domain: DomainConfig) -> None:
        self.domain = domain
        self.values: dict[str, Any] = {}
        self.version = 0

    def apply(self, raws: Sequence[dict[str, Any]]) -> State:
        from contract.validation import parse_event
        from streams.aggregation import apply_events, state_key

        for raw in raws:
            event = parse_event(json.dumps(raw).encode(), self.domain)
            key = state_key(0, event)
            self.values[key] = apply_events(self.values.get(key), [event], self.domain).value
        self.version += 1
        return self

    def items(self) -> list[tuple[str, Any]]:
        return list(self.values.items())


def _cost(unit: str, period: str, amount: float) -> dict[str, Any]:
    return {
        "event_id": f"c-{unit}-{period}",
        "type": "cost",
        "org_unit": unit,
        "period": period,
        "category": "salaries",
        "amount_sek": amount,
    }


def _postings(first: str, last: str) -> list[dict[str, Any]]:
    """Salaries on two enheter, seasonal and growing, from ``first`` through ``last``."""
    events: list[dict[str, Any]] = []
    for year in (2021, 2022, 2023, 2024):
        for month in range(1, 13):
            period = f"{year}-{month:02d}"
            if first <= period <= last:
                for unit, size in (("1110", 1.0), ("1120", 0.6)):
                    amount = size * (1_000_000 + 40_000 * month + 30_000 * (year - 2021))
                    events.append(_cost(unit, period, amount))
    return events


def _close(period: str) -> dict[str, Any]:
    return {
        "event_id": f"close-{period}",
        "type": "period_close",
        "org_unit": "VON",
        "period": period,
    }


class Metrics:
    def __init__(self) -> None:
        self.forecast_status: Any = None

    def observe_forecast(self, seconds: float) -> None:
        pass

    def set_alerts_firing(self, *books: Any) -> None:
        pass

    def set_owned_namnder(self, owners: Any) -> None:
        pass

    def set_forecast_series_failed(self, counts: Any) -> None:
        pass


@pytest.fixture
def forecaster(domain: DomainConfig) -> Iterator[LiveForecaster]:
    made = LiveForecaster(domain, "auto", None, lambda *_: None, "fc", "al", Metrics())  # type: ignore[arg-type]
    yield made
    made.close()


def _pool_caches(forecaster: LiveForecaster) -> dict[str, dict[str, int]]:
    return forecaster._pool.submit(figures).result(timeout=60)


def _warm_to_the_end(forecaster: LiveForecaster, state: State) -> None:
    assert forecaster.warm_while_idle(state.version)
    assert forecaster._warming is not None
    forecaster._warming.future.result(timeout=120)
    assert not forecaster.warm_while_idle(state.version)  # collected; nothing else to warm


def test_a_warmed_month_is_forecast_from_the_pools_caches_exactly_as_cold(
    forecaster: LiveForecaster, domain: DomainConfig
) -> None:
    state = State(domain).apply([*_postings("2021-01", "2024-05"), _close("2024-05")])
    assert asyncio.run(forecaster.run_once(state.version, state.items()))
    assert forecaster.status.warmed == []  # nothing warms before the worker is asked to

    _warm_to_the_end(forecaster, state)
    assert forecaster.status.warmed == ["VON 2024-06"]
    before = _pool_caches(forecaster)[ORIGINS]

    state.apply(_postings("2024-06", "2024-06"))  # June's postings arrive
    assert asyncio.run(forecaster.run_once(state.version, state.items()))
    after = _pool_caches(forecaster)[ORIGINS]
    assert after["misses"] == before["misses"]  # June's history tables were all warm…
    assert after["hits"] > before["hits"]  # …and were used
    june = forecaster.status.owners["VON"].latest[2024]
    assert june.as_of_month == 6
    with disabled():  # the cold forecast, computed here without any cache
        cold = compute_forecasts(state.items(), forecaster.domain_of("VON"), [JUNE], "auto")
    assert june.nodes == cold[JUNE].nodes and june.failed == cold[JUNE].failed

    # The month is warmed once: idle again, there is nothing more to do for VON.
    assert not forecaster.warm_while_idle(state.version)


def test_no_warming_while_a_change_is_not_yet_forecast(
    forecaster: LiveForecaster, domain: DomainConfig
) -> None:
    state = State(domain).apply([*_postings("2021-01", "2024-05"), _close("2024-05")])
    asyncio.run(forecaster.run_once(state.version, state.items()))
    state.apply([_cost("1110", "2024-06", 5.0)])
    assert not forecaster.warm_while_idle(state.version)  # the state is ahead of the forecasts
    asyncio.run(forecaster.run_once(state.version, state.items()))
    # June has a posting now: its forecast was computed by the run itself, nothing to warm.
    assert not forecaster.warm_while_idle(state.version)


def test_a_close_makes_a_running_warm_up_give_way_and_it_is_warmed_later(
    forecaster: LiveForecaster, domain: DomainConfig
) -> None:
    state = State(domain).apply([*_postings("2021-01", "2024-04"), _close("2024-04")])
    asyncio.run(forecaster.run_once(state.version, state.items()))

    # A warm-up in flight (a future not done) when May's close comes: the pass asks it to stop.
    in_flight: concurrent.futures.Future[bool] = concurrent.futures.Future()
    forecaster._warming = Warming("VON", ForecastRequest(2024, 5), in_flight, 0.0)
    state.apply([*_postings("2024-05", "2024-05"), _close("2024-05")])
    asyncio.run(forecaster.run_once(state.version, state.items()))
    assert forecaster._warm_abort.is_set()
    in_flight.set_result(False)  # what warm_forecast returns when it gave way

    assert forecaster._collect_warming()  # the one that gave way; the flag is down again
    assert forecaster.status.warm_given_way == 1 and not forecaster._warm_abort.is_set()

    # The pool process reads the same flag: a warm-up that finds it set stops at once.
    forecaster._warm_abort.set()
    assert forecaster.warm_while_idle(state.version)  # June, after May's close
    assert forecaster._warming is not None
    assert forecaster._warming.future.result(timeout=120) is False
    assert forecaster._collect_warming()
    assert forecaster.status.warm_given_way == 2 and forecaster.status.warmed == []

    # Idle again with nothing asking it to stop: June is warmed after all.
    _warm_to_the_end(forecaster, state)
    assert forecaster.status.warmed == ["VON 2024-06"]


@pytest.mark.parametrize(
    ("warming", "gives_way"), [(JUNE, False), (ForecastRequest(2024, 7), True)]
)
def test_a_forecast_that_needs_the_pool_makes_a_warm_up_for_something_else_give_way(
    forecaster: LiveForecaster, domain: DomainConfig, warming: ForecastRequest, gives_way: bool
) -> None:
    state = State(domain).apply([*_postings("2021-01", "2024-05"), _close("2024-05")])
    asyncio.run(forecaster.run_once(state.version, state.items()))
    # A warm-up in flight when June's postings come (no close): the pass needs June's forecast.
    in_flight: concurrent.futures.Future[bool] = concurrent.futures.Future()
    forecaster._warming = Warming("VON", warming, in_flight, 0.0)
    state.apply(_postings("2024-06", "2024-06"))
    asyncio.run(forecaster.run_once(state.version, state.items()))
    # A warm-up of June itself computes what the pass needs: it goes on; another one stops.
    assert forecaster._warm_abort.is_set() is gives_way
    assert forecaster.status.owners["VON"].latest[2024].as_of_month == 6
    in_flight.set_result(not gives_way)
