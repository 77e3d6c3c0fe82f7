"""The ingest agent in-process: Faust's ``agent.test_context()`` on the memory store, no broker.

The real worker app from ``streams.app.create_app``; what it would produce (dead letters,
forwards) is captured by the outbox, the table is Faust's in-memory table.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from structlog.testing import capture_logs

from core.domain import DomainConfig
from streams.aggregation import ActiveState, StateValue, home_partition
from streams.app import WorkerApp
from streams.dead_letter import DeadLetters
from streams.forwarding import FORWARDED_FROM_HEADER, HomeForwarder
from streams.ingest import IngestBatch
from streams.late_events import LateEvents
from streams.metrics import WorkerMetrics
from streams.ownership import Ownership
from tests.streams.inprocess import (
    PARTITIONS,
    LateEventRecorder,
    Outbox,
    as_bytes,
    close_event,
    cost_event,
    event,
    wait_for,
)

PERSONNUMMER = "19121212-1212"  # Skatteverket's test number: valid date and check digit
UNIT = "1110"
OWNER = "VON"  # the demo's one nämnd: the partition key of every known cost centre's events
HOME = home_partition(OWNER, PARTITIONS)
AWAY = (HOME + 1) % PARTITIONS
WAIT_S = 10.0


def sample(worker: WorkerApp, name: str, **labels: str) -> float:
    return worker.metrics.registry.get_sample_value(name, labels) or 0.0


def handled(worker: WorkerApp) -> float:
    """Every input event the worker has decided about (accepted, duplicate or rejected)."""
    return sum(
        metric.value
        for family in worker.metrics.registry.collect()
        if family.name == "budgetvakt_events"
        for metric in family.samples
        if metric.name == "budgetvakt_events_total"
    )


async def put_all(worker: WorkerApp, messages: list[tuple[bytes, int]], forwarded: int = 0) -> None:
    """Hand ``(value, partition)`` messages to the ingest agent; wait until all are decided."""
    before = handled(worker)
    async with worker.ingest_agent.test_context() as agent:
        for value, partition in messages:
            await agent.put(value, key=UNIT.encode(), partition=partition)
        await wait_for(
            lambda: handled(worker) == before + len(messages) - forwarded,
            WAIT_S,
            f"{len(messages)} events handled",
        )


def test_invalid_events_are_dead_lettered_with_reason_and_the_hash_of_the_original(
    inprocess_worker: WorkerApp, outbox: Outbox
) -> None:
    worker = inprocess_worker
    missing_amount = cost_event("bad-schema")
    del missing_amount["amount_sek"]
    poison = [
        b"{this is not json",
        as_bytes(missing_amount),
        as_bytes(cost_event("pnr", source=f"lön {PERSONNUMMER}")),
    ]
    with capture_logs() as logs:
        asyncio.run(put_all(worker, [(p, HOME) for p in [*poison, as_bytes(cost_event("ok"))]]))

    letters = outbox.dead_letter_records()
    assert [letter["original_sha256"] for letter in letters] == [
        hashlib.sha256(p).hexdigest() for p in poison
    ]
    assert all(letter["original"] is None for letter in letters)  # the default: hash only
    assert [letter["offset"] for letter in letters] == [0, 1, 2]
    assert all(letter["partition"] == HOME and letter["reason"] for letter in letters)
    assert "json" in letters[0]["reason"].lower()
    assert "amount_sek" in letters[1]["reason"]
    assert "personal identity number" in letters[2]["reason"]
    assert [key for key, _ in outbox.dead_letters] == [UNIT.encode()] * 3
    for kind in ("bad_json", "schema", "personal_id"):
        assert sample(worker, "budgetvakt_dead_letter_total", reason_kind=kind) == 1
    assert sample(worker, "budgetvakt_events_total", topic="<internal>", outcome="accepted") == 1
    assert sample(worker, "budgetvakt_events_total", topic="<internal>", outcome="rejected") == 3
    # The personnummer is nowhere: not in the record, not in reasons, not logged.
    assert all("121212" not in letter["reason"] for letter in letters)
    assert [entry["event"] for entry in logs].count("event_rejected") == 3
    assert "121212" not in json.dumps(logs, default=str)
    assert "121212" not in json.dumps([letter["reason"] for letter in letters])


def test_an_event_off_its_home_partition_is_forwarded_byte_for_byte(
    inprocess_worker: WorkerApp, outbox: Outbox
) -> None:
    worker = inprocess_worker
    # Not canonical JSON (spacing, key order): the forward must be the original bytes.
    original = b'{"type": "cost",  "event_id": "fwd-1", "org_unit": "1110", "period": "2025-03",'
    original += b' "category": "salaries", "amount_sek": 12.5}'
    asyncio.run(put_all(worker, [(original, AWAY), (as_bytes(cost_event("home")), HOME)], 1))

    assert outbox.forwards == [
        {
            "topic": "<internal>",
            "key": OWNER.encode(),  # forwards carry the partition key, the owner
            "value": original,
            "partition": HOME,
            "headers": [(FORWARDED_FROM_HEADER, f"<internal>/{AWAY}/0".encode())],
        }
    ]
    assert sample(worker, "budgetvakt_events_forwarded_total", topic="<internal>") == 1
    # Not applied where it arrived: only the event at home is in the table.
    assert dict(worker.table.items()) == {
        f"p{HOME}|{UNIT}|2025-03": {"ids": ["home"], "cost": {"salaries": 1000.0}}
    }
    assert outbox.dead_letters == []


def test_the_same_event_id_twice_counts_once(inprocess_worker: WorkerApp) -> None:
    worker = inprocess_worker
    resent = as_bytes(cost_event("twice", amount_sek=700.0))
    asyncio.run(put_all(worker, [(resent, HOME), (resent, HOME)]))
    asyncio.run(put_all(worker, [(resent, HOME)]))  # a later batch: the id is in the table

    assert sample(worker, "budgetvakt_events_total", topic="<internal>", outcome="accepted") == 1
    assert sample(worker, "budgetvakt_events_total", topic="<internal>", outcome="duplicate") == 2
    key = f"p{HOME}|{UNIT}|2025-03"
    assert worker.table[key] == {"ids": ["twice"], "cost": {"salaries": 700.0}}
    assert worker.state.snapshot(worker.domain.org).actual_ytd[(UNIT, "salaries", 2025)] == 700.0


def test_an_event_for_a_closed_month_is_accepted_counted_and_recorded_as_late(
    inprocess_worker: WorkerApp, late_store: LateEventRecorder
) -> None:
    worker = inprocess_worker
    asyncio.run(put_all(worker, [(as_bytes(close_event("close-03")), HOME)]))
    assert worker.ingest.close_seen.is_set()
    assert late_store.late == []

    late = cost_event("late-1", amount_sek=250.0)
    asyncio.run(put_all(worker, [(as_bytes(late), HOME)]))

    assert sample(worker, "budgetvakt_events_total", topic="<internal>", outcome="accepted") == 2
    assert sample(worker, "budgetvakt_late_events_total") == 1
    assert [(e.event_id, e.period, e.amount_sek) for e in late_store.late] == [
        ("late-1", "2025-03", 250.0)
    ]
    assert worker.state.snapshot(worker.domain.org).actual_ytd[(UNIT, "salaries", 2025)] == 250.0


# --- The batch directly, with events from named topics --------------------------------------------


class RecordingTable:
    def __init__(self) -> None:
        self.data: dict[str, StateValue] = {}
        self.writes: list[tuple[str, int]] = []  # (key, partition of the event in context)

    def get(self, key: str) -> StateValue | None:
        return self.data.get(key)

    def write(self, key: str, value: StateValue, event: Any) -> None:
        self.data[key] = value
        self.writes.append((key, event.message.partition))


def ingest_batch(domain: DomainConfig, outbox: Outbox, table: RecordingTable) -> IngestBatch:
    state = ActiveState()
    metrics = WorkerMetrics(state, domain.org)
    return IngestBatch(
        domain=domain,
        input_topic_types={"cost.v1": "cost", "volume.v1": "volume"},
        table=table,
        state=state,
        metrics=metrics,
        dead_letters=DeadLetters(outbox.send_dead_letter, metrics),
        forwarder=HomeForwarder(
            outbox.produce, lambda topic: PARTITIONS, metrics, Ownership(domain.org)
        ),
        late_events=LateEvents(metrics, None),
        flush=outbox.flush,
    )


def test_an_event_on_another_type_s_topic_is_dead_lettered(
    domain: DomainConfig, outbox: Outbox, inprocess_worker: WorkerApp
) -> None:
    app = inprocess_worker.app
    batch = ingest_batch(domain, outbox, RecordingTable())
    volume = {
        "event_id": "v1",
        "type": "volume",
        "org_unit": UNIT,
        "period": "2025-03",
        "measure": "home_care_hours",
        "value": 10.0,
        "unit": "h",
    }
    events = [event(app, as_bytes(volume), topic="cost.v1", partition=HOME, offset=7)]
    asyncio.run(batch.process(events))
    (letter,) = outbox.dead_letter_records()
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("cost.v1", HOME, 7)
    assert letter["reason"] == "event type 'volume' does not belong on the cost topic"
    assert batch.metrics.registry.get_sample_value(
        "budgetvakt_dead_letter_total", {"reason_kind": "wrong_topic"}
    )
    assert batch.processed_offsets == {events[0].message.tp: 8}


def test_each_partition_s_changelog_ends_with_its_last_key_written_again_after_a_flush(
    domain: DomainConfig, outbox: Outbox, inprocess_worker: WorkerApp
) -> None:
    app = inprocess_worker.app
    table = RecordingTable()
    batch = ingest_batch(domain, outbox, table)
    other = "9999"  # unknown: owned by omappad, whose home is another partition
    other_home = home_partition("omappad", PARTITIONS)
    assert other_home != HOME
    events = [
        event(app, as_bytes(cost_event("a", period="2025-01")), "cost.v1", HOME, 0),
        event(app, as_bytes(cost_event("b", period="2025-02")), "cost.v1", HOME, 1),
        event(app, as_bytes(cost_event("c", other)), "cost.v1", other_home, 0),
    ]
    asyncio.run(batch.process(events))
    keys = [f"p{HOME}|{UNIT}|2025-01", f"p{HOME}|{UNIT}|2025-02", f"p{other_home}|{other}|2025-03"]
    assert table.writes == [
        (keys[0], HOME),
        (keys[1], HOME),
        (keys[2], other_home),
        (keys[1], HOME),  # the end markers, one per partition
        (keys[2], other_home),
    ]
    assert outbox.flushes == 2

    batch.changelog_end_marker = False
    table.writes.clear()
    asyncio.run(batch.process([event(app, as_bytes(cost_event("d")), "cost.v1", HOME, 2)]))
    assert table.writes == [(f"p{HOME}|{UNIT}|2025-03", HOME)]
    assert outbox.flushes == 3


def test_the_worker_logs_no_payload_of_a_rejected_event(
    domain: DomainConfig, inprocess_worker: WorkerApp
) -> None:
    app = inprocess_worker.app
    """The rejection log line names coordinates and the reason only."""
    outbox = Outbox()
    batch = ingest_batch(domain, outbox, RecordingTable())
    payload = as_bytes(cost_event("x", source=f"lön {PERSONNUMMER}"))
    with capture_logs() as logs:
        asyncio.run(batch.process([event(app, payload, "cost.v1", HOME, 3)]))
    (entry,) = [e for e in logs if e["event"] == "event_rejected"]
    assert set(entry) == {"event", "log_level", "topic", "partition", "offset", "reason"}


# --- one message that fails its whole batch -----------------------------------------------------


def test_a_message_that_fails_its_batch_is_dead_lettered_alone_and_the_rest_counts(
    inprocess_worker: WorkerApp, outbox: Outbox
) -> None:
    # A valid event off its home partition whose forward the producer refuses as too large:
    # every retry of the batch fails alike; it used to end the worker at every restart.
    worker = inprocess_worker
    big = as_bytes(cost_event("big", source="x" * 150))
    outbox.max_forward_size = len(big) - 1
    messages = [
        (as_bytes(cost_event("before")), HOME),
        (big, AWAY),
        (as_bytes(cost_event("after")), HOME),
    ]
    with capture_logs() as logs:
        asyncio.run(put_all(worker, messages))

    assert outbox.forwards == []
    letters = outbox.dead_letter_records()
    assert [(letter["partition"], letter["offset"]) for letter in letters] == [(AWAY, 1)]
    assert "max_request_size" in letters[0]["reason"]
    assert "MessageSizeTooLargeError" in letters[0]["reason"]
    assert sample(worker, "budgetvakt_events_total", topic="<internal>", outcome="accepted") == 2
    assert sample(worker, "budgetvakt_events_total", topic="<internal>", outcome="rejected") == 1
    assert sample(worker, "budgetvakt_dead_letter_total", reason_kind="processing") == 1
    events = [entry["event"] for entry in logs]
    assert "batch_isolating_messages" in events
    assert "worker_exiting_batch_failed" not in events


def test_a_culprit_whose_dead_letter_is_refused_too_is_counted_and_logged_by_coordinates(
    inprocess_worker: WorkerApp, outbox: Outbox
) -> None:
    worker = inprocess_worker
    outbox.max_dead_letter_size = 50  # smaller than any dead-letter record
    huge = b'{"not json' + b"x" * 5_000
    with capture_logs() as logs:
        asyncio.run(put_all(worker, [(huge, HOME), (as_bytes(cost_event("later")), HOME)]))

    assert outbox.dead_letters == []
    assert sample(worker, "budgetvakt_events_total", topic="<internal>", outcome="accepted") == 1
    assert sample(worker, "budgetvakt_events_total", topic="<internal>", outcome="rejected") == 1
    (entry,) = [e for e in logs if e["event"] == "event_rejected_without_dead_letter"]
    assert (entry["partition"], entry["offset"]) == (HOME, 0)
    assert entry["error_type"] == "MessageSizeTooLargeError"


def test_a_broker_failure_is_not_blamed_on_a_message(
    inprocess_worker: WorkerApp, outbox: Outbox
) -> None:
    # The broker refuses everything: no message is dead-lettered, the batch is reported failed
    # (the agent then exits with status 75 without acknowledging it, as before).
    worker = inprocess_worker
    outbox.broker_down = True
    events = [
        event(worker.app, b"{bad json", partition=HOME, offset=0),
        event(worker.app, as_bytes(cost_event("ok")), partition=HOME, offset=1),
    ]
    ok = asyncio.run(worker.ingest.process_batch(events, attempts=2))
    assert ok is False
    assert outbox.dead_letters == []
    assert sample(worker, "budgetvakt_batch_failures_total") == 2


def test_input_handed_over_while_the_changelog_is_read_is_applied_only_when_read_again(
    domain: DomainConfig, outbox: Outbox, inprocess_worker: WorkerApp
) -> None:
    # Applied to a key not recovered yet, it would write a value without the key's earlier
    # events to the changelog; a successor rebuilding from the changelog would lose them.
    from streams.faust_compat import RecoveryReplay

    app = inprocess_worker.app
    table = RecordingTable()
    batch = ingest_batch(domain, outbox, table)
    replay = RecoveryReplay(app)
    batch.recovery = replay
    events = [
        event(app, as_bytes(cost_event("a", period="2025-01")), "cost.v1", HOME, 5),
        event(app, as_bytes(cost_event("b", period="2025-01")), "cost.v1", HOME, 6),
    ]
    app.in_recovery = True
    asyncio.run(batch.process(events))
    assert table.writes == [] and outbox.flushes == 0
    assert batch.processed_offsets == {}
    assert replay.lowest == {events[0].message.tp: 5}
    assert replay.deferred == {events[0].message.tp: 6}

    app.in_recovery = False
    asyncio.run(batch.process(events[:1]))  # read again from the replay's seek
    assert replay.deferred == {events[0].message.tp: 6}  # 6 is not applied yet
    asyncio.run(batch.process(events[1:]))
    assert replay.deferred == {}
    assert sorted(table.data[f"p{HOME}|{UNIT}|2025-01"]["ids"]) == ["a", "b"]


def test_a_deferred_batch_s_hold_ends_when_its_last_message_is_rejected_alone(
    domain: DomainConfig, outbox: Outbox, inprocess_worker: WorkerApp
) -> None:
    from streams.faust_compat import RecoveryReplay

    app = inprocess_worker.app
    batch = ingest_batch(domain, outbox, RecordingTable())
    replay = RecoveryReplay(app)
    batch.recovery = replay
    big = as_bytes(cost_event("big", source="x" * 150))
    outbox.max_forward_size = len(big) - 1  # its forward is refused: it fails alone
    events = [
        event(app, as_bytes(cost_event("small")), "cost.v1", AWAY, 5),
        event(app, big, "cost.v1", AWAY, 6),
    ]
    app.in_recovery = True
    assert asyncio.run(batch.process_batch(events, attempts=1))
    assert replay.deferred == {events[0].message.tp: 6}
    app.in_recovery = False
    assert asyncio.run(batch.process_batch(events, attempts=1))
    assert [letter["offset"] for letter in outbox.dead_letter_records()] == [6]
    assert replay.deferred == {}  # nothing left holding the partition's commit
