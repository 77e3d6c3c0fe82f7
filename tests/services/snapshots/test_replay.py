"""streams.replay: the worker's aggregation of the input topics, read from the beginning."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from core.errors import UserError
from services.processes.supervised import free_port
from streams.replay import RawMessage, aggregate, read_topics
from tests.services.snapshots.fixtures import ForecastCase, aggregate_events
from tests.streams.fixtures import StreamCase

TOPICS = {"cost": "c", "volume": "v", "budget": "b", "period_close": "p"}
TOPIC_TYPES = {name: kind for kind, name in TOPICS.items()}


def as_message(event: dict[str, Any], topic: str | None = None) -> RawMessage:
    return RawMessage(topic or TOPICS[event["type"]], json.dumps(event).encode("utf-8"))


def test_aggregate_equals_the_worker_s_aggregation(forecast_case: ForecastCase) -> None:
    events = forecast_case.scenario.all_events()
    result = aggregate([as_message(e) for e in events], TOPIC_TYPES, forecast_case.domain)
    assert result.items == forecast_case.items
    assert result.messages == result.accepted == len(events)
    assert (result.duplicates, result.invalid, result.failed) == (0, 0, 0)
    years = forecast_case.scenario.years
    assert result.closed_periods == {f"{y}-{m:02d}" for y in years for m in range(1, 13)}


def test_invalid_messages_are_skipped_and_copies_count_once(forecast_case: ForecastCase) -> None:
    costs = forecast_case.scenario.costs[:50]
    cost = costs[0]
    messages = [as_message(e) for e in costs]
    messages += [as_message(e) for e in costs[:10]]  # re-sent or forwarded copies
    messages += [
        RawMessage("c", b"{not json"),
        RawMessage("c", None),
        RawMessage(
            "c", json.dumps({**cost, "event_id": "pnr", "source": "19121212-1212"}).encode()
        ),
        RawMessage("c", json.dumps({**cost, "category": "okänd", "event_id": "x1"}).encode()),
        as_message({**cost, "event_id": "wrong-topic"}, topic="v"),
    ]
    result = aggregate(messages, TOPIC_TYPES, forecast_case.domain)
    assert result.messages == 65
    assert result.accepted == 50
    assert result.duplicates == 10
    assert result.invalid == 5
    assert result.items == aggregate_events(costs, forecast_case.domain)


def test_input_topic_types_cover_the_four_input_topics() -> None:
    from core.settings import Topics

    topics = Topics()
    assert topics.input_types() == {
        topics.cost: "cost",
        topics.volume: "volume",
        topics.budget: "budget",
        topics.period_close: "period_close",
    }


def test_unreachable_broker_is_a_user_error_within_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(UserError, match="cannot reach Kafka"):
        read_topics(f"127.0.0.1:{free_port()}", ["a"], timeout_s=5, connect_timeout_s=2)
    assert time.monotonic() - started < 15


@pytest.mark.integration
def test_reads_every_record_past_the_broker_s_end_offset(
    stream_case: StreamCase, forecast_case: ForecastCase
) -> None:
    """Batched produces make Tansu's end offset too low (brief §5); nothing may be missed."""
    costs = forecast_case.scenario.costs[:3000]
    volumes = forecast_case.scenario.volumes[:500]
    stream_case.publish("cost", costs)  # linger 5 ms: many records per batch
    stream_case.publish("volume", volumes)
    topics = [stream_case.topics["cost"], stream_case.topics["volume"], "no-such-topic-yet"]
    messages = read_topics(stream_case.bootstrap_servers, topics, timeout_s=60)
    assert len(messages) == len(costs) + len(volumes)
    read_ids = sorted(json.loads(m.value or b"")["event_id"] for m in messages)
    assert read_ids == sorted(e["event_id"] for e in [*costs, *volumes])
