"""Unit tests of the worker's pure state logic: keys, de-duplication, budgets, roll-ups."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from core.domain import DomainConfig
from streams.aggregation import ActiveState, apply_events, home_partition, parse_key, state_key
from tests.streams.fixtures import cost, volume


def budget(
    event_id: str,
    unit: str,
    year: int,
    annual: float,
    category: str | None = "salaries",
    measure: str | None = None,
    monthly: list[float] | None = None,
    version: str = "KF",
) -> Any:
    return SimpleNamespace(
        type="budget",
        event_id=event_id,
        org_unit=unit,
        year=year,
        category=category,
        measure=measure,
        annual=annual,
        monthly=monthly,
        version=version,
    )


def test_keys_carry_the_source_partition_and_parse_back() -> None:
    key = state_key(3, cost("a", "1110", "2025-04", "salaries", 1.0))
    assert key == "p3|1110|2025-04"
    assert parse_key(key) == parse_key("p3|1110|2025-04")
    parsed = parse_key(key)
    assert (parsed.partition, parsed.org_unit, parsed.kind, parsed.year, parsed.month) == (
        3,
        "1110",
        "month",
        2025,
        4,
    )
    budget_key = state_key(0, budget("b", "X|Y", 2026, 1.0))
    assert budget_key == "p0|X|Y|budget|2026"
    parsed_budget = parse_key(budget_key)
    assert (parsed_budget.org_unit, parsed_budget.kind, parsed_budget.year) == (
        "X|Y",
        "budget",
        2026,
    )
    close = SimpleNamespace(type="period_close", event_id="c", org_unit="1110", period="2025-03")
    assert parse_key(state_key(1, close)).kind == "closed"


def test_costs_and_volumes_add_and_a_resent_id_counts_once(domain: DomainConfig) -> None:
    events = [
        cost("e1", "1110", "2025-01", "salaries", 100.0),
        cost("e2", "1110", "2025-01", "salaries", 50.5),
        cost("e1", "1110", "2025-01", "salaries", 100.0),
        volume("v1", "1110", "2025-01", "home_care_hours", 12.0),
    ]
    result = apply_events(None, events, domain)
    assert result.outcomes == ["accepted", "accepted", "duplicate", "accepted"]
    assert result.value["cost"] == {"salaries": 150.5}
    assert result.value["volume"] == {"home_care_hours": 12.0}
    again = apply_events(result.value, events, domain)
    assert again.outcomes == ["duplicate"] * 4
    assert not again.changed
    assert again.value["cost"] == {"salaries": 150.5}


def test_applying_does_not_mutate_the_stored_value(domain: DomainConfig) -> None:
    first = apply_events(None, [cost("e1", "1110", "2025-01", "salaries", 1.0)], domain).value
    apply_events(first, [cost("e2", "1110", "2025-01", "salaries", 2.0)], domain)
    assert first == {"ids": ["e1"], "cost": {"salaries": 1.0}}


def test_a_correction_is_an_ordinary_posting(domain: DomainConfig) -> None:
    original = cost("e1", "1110", "2025-01", "overtime", 1000.0)
    correction = cost("e2", "1110", "2025-01", "overtime", -400.0)
    correction.corrects = "e1"
    result = apply_events(None, [original, correction], domain)
    assert result.value["cost"]["overtime"] == pytest.approx(600.0)


def test_budget_without_monthly_is_periodised_by_the_category_profile(
    domain: DomainConfig,
) -> None:
    result = apply_events(None, [budget("b1", "1110", 2025, 1_200_000.0, "substitutes")], domain)
    line = result.value["budget"]["substitutes"]
    assert line["annual"] == 1_200_000.0
    assert line["monthly"] == domain.periodise("substitutes", 1_200_000.0)
    assert line["monthly"][6] > line["monthly"][0]  # summer substitutes
    assert sum(line["monthly"]) == pytest.approx(1_200_000.0)


def test_budget_monthly_split_is_kept_and_measure_budgets_are_flat(domain: DomainConfig) -> None:
    split = [float(m) for m in range(1, 13)]
    result = apply_events(
        None,
        [
            budget("b1", "1110", 2025, 78.0, "premises", monthly=split),
            budget("b2", "1110", 2025, 1200.0, None, measure="home_care_hours"),
        ],
        domain,
    )
    assert result.value["budget"]["premises"]["monthly"] == split
    assert result.value["budget"]["home_care_hours"]["kind"] == "measure"
    assert result.value["budget"]["home_care_hours"]["monthly"] == [100.0] * 12


def test_a_later_budget_version_replaces_the_earlier(domain: DomainConfig) -> None:
    first = apply_events(None, [budget("b1", "1110", 2025, 100.0)], domain).value
    revised = apply_events(first, [budget("b2", "1110", 2025, 130.0, version="revised")], domain)
    assert revised.value["budget"]["salaries"]["annual"] == 130.0
    assert revised.value["budget"]["salaries"]["version"] == "revised"
    resent_old = apply_events(revised.value, [budget("b1", "1110", 2025, 100.0)], domain)
    assert resent_old.outcomes == ["duplicate"]
    assert resent_old.value["budget"]["salaries"]["annual"] == 130.0


def test_an_event_that_cannot_be_applied_fails_alone(domain: DomainConfig) -> None:
    broken = cost("bad", "1110", "2025-01", "salaries", 0.0)
    broken.amount_sek = "not a number"
    result = apply_events(None, [broken, cost("ok", "1110", "2025-01", "salaries", 5.0)], domain)
    assert result.outcomes == ["failed", "accepted"]
    assert result.errors[0] == "processing failed: ValueError"
    assert result.value == {"ids": ["ok"], "cost": {"salaries": 5.0}}


def _state_from(events_by_partition: dict[int, list[Any]], domain: DomainConfig) -> ActiveState:
    state = ActiveState()
    values: dict[str, Any] = {}
    for partition, events in events_by_partition.items():
        for event in events:
            key = state_key(partition, event)
            values[key] = apply_events(values.get(key), [event], domain).value
    for key, value in values.items():
        state.put(key, value)
    return state


def test_snapshot_rolls_up_ytd_and_puts_unknown_units_under_omappad(
    domain: DomainConfig,
) -> None:
    state = _state_from(
        {
            0: [
                cost("a", "1110", "2025-01", "salaries", 100.0),
                cost("b", "1110", "2025-02", "salaries", 10.0),
                cost("old", "1110", "2024-12", "salaries", 999.0),
            ],
            1: [
                cost("c", "1120", "2025-03", "salaries", 1.0),
                cost("d", "2110", "2025-01", "salaries", 1000.0),
                cost("u", "9999", "2025-01", "overtime", 7.0),
                budget("b1", "1110", 2025, 1200.0),
            ],
        },
        domain,
    )
    snap = state.snapshot(domain.org)
    assert snap.actual_ytd[("1110", "salaries", 2025)] == 110.0
    assert snap.actual_ytd[("1110", "salaries", 2024)] == 999.0
    assert snap.actual_ytd[("AO", "salaries", 2025)] == 111.0
    assert snap.actual_ytd[("VOF", "salaries", 2025)] == 1111.0
    assert snap.actual_ytd[("VON", "salaries", 2025)] == 1111.0
    assert snap.actual_ytd[("omappad", "overtime", 2025)] == 7.0
    assert ("VON", "overtime", 2025) not in snap.actual_ytd  # omappad is its own owner
    assert ("VOF", "overtime", 2025) not in snap.actual_ytd
    assert snap.unmapped_units == {"9999"}
    assert snap.budget_full_year[("VON", "salaries", 2025)] == 1200.0
    assert snap.last_month[("1110", 2025)] == 2
    assert snap.last_month[("AO", 2025)] == 3


def test_dropping_a_partition_removes_its_share(domain: DomainConfig) -> None:
    state = _state_from(
        {
            0: [cost("a", "1110", "2025-01", "salaries", 100.0)],
            1: [cost("b", "1110", "2025-01", "salaries", 5.0)],
        },
        domain,
    )
    before = state.version
    state.drop_partitions({0})
    assert state.version > before
    assert state.snapshot(domain.org).actual_ytd[("1110", "salaries", 2025)] == 5.0
    state.rebuild([("p0|1110|2025-01", {"ids": ["a"], "cost": {"salaries": 1.0}})], {0})
    assert state.partitions == {0}
    assert state.snapshot(domain.org).actual_ytd[("1110", "salaries", 2025)] == 1.0


def test_home_partition_is_where_kafkas_default_partitioner_puts_the_org_unit_key() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    for partitions in (1, 3, 4, 12):
        ids = list(range(partitions))
        for unit in ("1110", "VON", "Hemtjänst Norr", "9999", "x"):
            expected = partitioner(unit.encode("utf-8"), ids, ids)
            assert home_partition(unit, partitions) == expected


# The Java client's murmur2 test vectors (Kafka's UtilsTest), as signed 32-bit ints.
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
}


def test_home_partition_is_where_the_java_client_and_kafka_python_put_the_key() -> None:
    # The worker hashes with aiokafka's murmur2; `budgetvakt publish` produces with kafka-python.
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

    for key, java_hash in JAVA_MURMUR2.items():
        assert kafka_python_murmur2(key.encode("utf-8")) == java_hash & 0xFFFFFFFF
        for partitions in (1, 3, 4, 12):
            assert home_partition(key, partitions) == (java_hash & 0x7FFFFFFF) % partitions


def test_an_event_that_would_make_a_sum_infinite_is_refused_alone(domain: DomainConfig) -> None:
    events = [
        cost("huge-1", "1110", "2025-01", "salaries", 1.7e308),
        cost("huge-2", "1110", "2025-01", "salaries", 1.7e308),
        cost("ok", "1110", "2025-01", "salaries", 5.0),
        volume("v1", "1110", "2025-01", "home_care_hours", float("inf")),
    ]
    result = apply_events(None, events, domain)
    assert result.outcomes == ["accepted", "failed", "accepted", "failed"]
    assert result.errors[1] == "processing failed: the month's sum would not be a finite number"
    assert result.value["cost"] == {"salaries": 1.7e308 + 5.0}
    assert "volume" not in result.value


def test_metrics_of_sums_that_overflow_are_infinite_instead_of_an_error(
    domain: DomainConfig,
) -> None:
    # Two huge amounts in two months (or cost centres) of one roll-up: each value is finite,
    # their sum is not. The probe saw /metrics answer 500 ("intermediate overflow in fsum").
    from streams.metrics import WorkerMetrics

    state = _state_from(
        {
            0: [cost("a", "1110", "2025-01", "salaries", 1.7e308)],
            1: [
                cost("b", "1110", "2025-02", "salaries", 1.7e308),
                cost("c", "2110", "2025-01", "salaries", -1.7e308),
                cost("d", "2110", "2025-02", "salaries", -1.7e308),
                cost("e", "1120", "2025-01", "overtime", 3.0),
            ],
        },
        domain,
    )
    snap = state.snapshot(domain.org)
    assert snap.actual_ytd[("1110", "salaries", 2025)] == float("inf")
    assert snap.actual_ytd[("2110", "salaries", 2025)] == float("-inf")
    assert not math.isfinite(snap.actual_ytd[("VON", "salaries", 2025)])
    assert snap.actual_ytd[("VON", "overtime", 2025)] == 3.0
    text = WorkerMetrics(state, domain.org).exposition().decode()
    leaf = 'category="salaries",level="enhet",org_unit="1110",year="2025"'
    assert f"budgetvakt_actual_ytd_sek{{{leaf}}} +Inf" in text
    assert 'org_unit="1120",year="2025"} 3.0' in text
