"""``/metrics?name[]=…`` (``WorkerMetrics.exposition(names)``): a poll for a few counters gets
exactly those samples and none of the forecast gauges."""

from __future__ import annotations

from core.domain import DomainConfig
from forecasts.live import forecast_organisation
from services.processes.scrape import parse_samples
from streams.aggregation import ActiveState, leaf_series
from streams.forecasting import ForecastStatus
from streams.metrics import WorkerMetrics
from tests.streams.fixtures import cost


def test_a_names_filter_renders_only_those_samples(domain: DomainConfig) -> None:
    from streams.aggregation import apply_events, state_key

    state = ActiveState()
    event = cost("c1", "1110", "2024-03", "salaries", 1000.0)
    key = state_key(0, event)
    state.put(key, apply_events(None, [event], domain).value)
    metrics = WorkerMetrics(state, domain.org, measures=set(domain.measures))
    metrics.events.labels("costs", "accepted").inc(3)
    metrics.observe_forecast(0.25)
    status = ForecastStatus()
    leaves = leaf_series(list(state.items()), 2024)[0]
    status.latest = {2024: forecast_organisation(leaves, domain, 2024, 3)}
    metrics.forecast_status = status

    every = {name for name, _, _ in parse_samples(metrics.exposition().decode())}
    assert "budgetvakt_forecast_full_year_sek" in every  # the gauges are there in the whole

    wanted = ("budgetvakt_events_total", "budgetvakt_forecast_duration_seconds_count")
    samples = parse_samples(metrics.exposition(wanted).decode())
    assert {name for name, _, _ in samples} == set(wanted)
    assert ("budgetvakt_events_total", {"topic": "costs", "outcome": "accepted"}, 3.0) in samples
