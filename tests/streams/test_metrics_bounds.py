"""Bounded cardinality: no label of the worker's /metrics takes a value a producer chose freely.

Events for 500 random cost centres that are not in config/org.yaml add no series: they are
counted under ``omappad`` and in ``budgetvakt_unmapped_org_units``, never under their own ids.
"""

from __future__ import annotations

import random
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from core.domain import DomainConfig
from core.hierarchy import UNMAPPED_ID
from forecasts.deviations import AlertBook, AlertState
from forecasts.live import forecast_organisation
from services.processes.scrape import fetch_metrics, sum_metric
from services.processes.supervised import wait_until
from streams.aggregation import ActiveState, apply_events, home_partition, leaf_series, state_key
from streams.forecasting import ForecastStatus
from streams.metrics import WorkerMetrics
from streams.pii_egress import PiiEgress
from testing.cli import run_cli
from tests.streams.fixtures import StreamCase, cost, volume

PARTITIONS = 4
UNKNOWN_IDS = 500


def close(event_id: str, unit: str, period: str) -> Any:
    return SimpleNamespace(type="period_close", event_id=event_id, org_unit=unit, period=period)


def random_ids(rng: random.Random, count: int, known: set[str]) -> list[str]:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
    ids: set[str] = set()
    while len(ids) < count:
        candidate = "".join(rng.choice(alphabet) for _ in range(rng.randint(3, 12)))
        if candidate not in known:
            ids.add(candidate)
    return sorted(ids)


def label_values(exposition: bytes) -> dict[str, set[str]]:
    """Label name → every value it takes in the exposition."""
    values: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(exposition.decode("utf-8")):
        for sample in family.samples:
            for name, value in sample.labels.items():
                values[name].add(value)
    return values


def test_500_unknown_cost_centres_add_no_label_values(domain: DomainConfig) -> None:
    rng = random.Random(12)
    known = {node for node in domain.org.nodes if domain.org.is_known(node)}
    unknown = random_ids(rng, UNKNOWN_IDS, known)
    events = [cost(f"k{i}", unit, "2025-02", "salaries", 100.0) for i, unit in enumerate(known)]
    events += [cost(f"u{i}", unit, "2025-02", "overtime", 1.0) for i, unit in enumerate(unknown)]
    events += [close(f"c{i}", unit, "2025-01") for i, unit in enumerate(unknown)]
    # The contract checks a measure's form only: 500 made-up measures on a known unit.
    made_up = [f"matt_{i}" for i in range(UNKNOWN_IDS)]
    events += [volume(f"m{i}", "1110", "2025-02", m, 1.0) for i, m in enumerate(made_up)]
    measure = next(iter(domain.measures))
    events.append(volume("m-known", "1110", "2025-02", measure, 5.0))
    state, values = ActiveState(), {}
    for event in events:
        key = state_key(home_partition(event.org_unit, PARTITIONS), event)
        values[key] = apply_events(values.get(key), [event], domain).value
    for key, value in values.items():
        state.put(key, value)

    registry = CollectorRegistry()
    metrics = WorkerMetrics(state, domain.org, PiiEgress(registry), set(domain.measures))
    for _ in unknown:  # what the ingest agent counts per accepted event of an unknown unit
        metrics.unmapped_events.inc()
    forecast = forecast_organisation(
        leaf_series(values.items(), 2025)[0], domain, 2025, 2, model="runrate"
    )
    assert {n.org_unit for n in forecast.nodes} >= set(unknown[:5])  # the input has them
    metrics.forecast_status = ForecastStatus(latest={2025: forecast})
    book = AlertBook()
    for unit in unknown[:50]:
        book._states[f"budget_deficit|{unit}|total|2025"] = AlertState("firing", "warning", 1, {})
    book._states["budget_deficit|1110|total|2025"] = AlertState("firing", "critical", 1, {})
    metrics.set_alerts_firing(book)

    exposition = metrics.exposition()
    labels = label_values(exposition)
    allowed = known | {UNMAPPED_ID}
    assert labels["org_unit"] <= allowed
    assert labels["measure"] == {measure}
    assert labels["category"] <= set(domain.categories) | {"total"}
    assert not any(unit in exposition.decode() for unit in unknown if len(unit) > 4)
    series = sum(len(f.samples) for f in text_string_to_metric_families(exposition.decode("utf-8")))
    assert series < 2 * len(allowed) * 14 * 8  # bounded by the org tree, not by the input

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("budgetvakt_unmapped_org_units") == UNKNOWN_IDS
    assert sample("budgetvakt_unmapped_events_total") == UNKNOWN_IDS
    unmapped_ytd = sample(
        "budgetvakt_actual_ytd_sek",
        org_unit=UNMAPPED_ID,
        category="overtime",
        year="2025",
        level="namnd",
    )
    assert unmapped_ytd == UNKNOWN_IDS * 1.0
    assert sample("budgetvakt_last_closed_period", org_unit=UNMAPPED_ID) == 202501
    firing = {"rule": "budget_deficit", "severity": "warning", "org_unit": UNMAPPED_ID}
    assert sample("budgetvakt_alerts_firing", **firing) == 50
    forecast_omappad = sample(
        "budgetvakt_forecast_full_year_sek",
        org_unit=UNMAPPED_ID,
        category="total",
        year="2025",
        level="namnd",
    )
    assert forecast_omappad is not None and forecast_omappad > 0
    assert registry.get_sample_value("budgetvakt_pii_blocked_total", {"where": "metric_label"}) == 0


def test_every_label_name_of_the_worker_has_a_documented_bound() -> None:
    """docs/metrics.md names each label and where its values come from."""
    from core.settings import REPO_ROOT
    from streams.metrics import metric_names

    doc = (REPO_ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    for name in metric_names():
        family = name.removesuffix("_total").removesuffix("_bucket")
        family = family.removesuffix("_count").removesuffix("_sum")
        assert family in doc, f"{family} is not in docs/metrics.md"


@pytest.mark.integration
def test_a_real_worker_given_500_unknown_cost_centres(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    """The same through a worker: Kafka in, /metrics and `budgetvakt unmapped` out."""
    known = {node for node in domain.org.nodes if domain.org.is_known(node)}
    unknown = random_ids(random.Random(500), UNKNOWN_IDS, known)
    worker = stream_case.start_worker()
    events = [
        {
            "event_id": f"u{i}",
            "type": "cost",
            "org_unit": unit,
            "period": "2025-02",
            "category": "salaries",
            "amount_sek": 10.0,
        }
        for i, unit in enumerate([*unknown, "1110"])
    ]
    stream_case.publish("cost", events)

    def accepted() -> float:
        return sum_metric(worker.samples(), "budgetvakt_events_total", outcome="accepted")

    wait_until(lambda: accepted() == len(events), 120, f"{len(events)} events accepted")
    exposition = fetch_metrics(worker.port).encode()
    labels = label_values(exposition)
    assert labels["org_unit"] <= set(domain.org.nodes)
    assert not [unit for unit in unknown if f'"{unit}"' in exposition.decode()]
    samples = worker.samples()
    assert sum_metric(samples, "budgetvakt_unmapped_org_units") == UNKNOWN_IDS
    assert sum_metric(samples, "budgetvakt_unmapped_events_total") == UNKNOWN_IDS
    listed = run_cli("unmapped", "--worker", worker.url(""), timeout_s=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == unknown
    assert f"{UNKNOWN_IDS} cost centre(s) not in the org tree" in listed.stderr
