"""The stream worker end to end: embedded broker, real ``budgetvakt worker`` processes,
kafka-python as the producer, totals read back from ``/metrics``."""

from __future__ import annotations

import hashlib
import json
import math
import random
import signal
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from core.domain import DomainConfig
from services.processes.scrape import sum_metric
from services.processes.supervised import wait_until
from tests.streams.fixtures import StreamCase

pytestmark = pytest.mark.integration

CATCH_UP_TIMEOUT_S = 90.0
# Known cost centres from config/org.yaml plus one that is not in the hierarchy.
UNITS = ("1110", "1120", "1210", "2110", "2130", "3110", "3130", "9999")
CATEGORIES = ("salaries", "substitutes", "overtime", "revenue_fees")
Samples = Sequence[tuple[str, dict[str, str], float]]


def cost_events(prefix: str, count: int, seed: int, year: int = 2025) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for i in range(count):
        category = rng.choice(CATEGORIES)
        amount = round(rng.uniform(100, 90_000), 2)
        events.append(
            {
                "event_id": f"{prefix}-{i}",
                "type": "cost",
                "org_unit": UNITS[i % len(UNITS)],
                "period": f"{year}-{1 + (i // len(UNITS)) % 12:02d}",
                "category": category,
                "amount_sek": -amount if category.startswith("revenue") else amount,
            }
        )
    return events


def volume_events(prefix: str, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "event_id": f"{prefix}-v{i}",
            "type": "volume",
            "org_unit": UNITS[i % 2],
            "period": f"2025-{1 + i % 12:02d}",
            "measure": "home_care_hours",
            "value": float(rng.randint(1_000, 9_000)),
            "unit": "h",
        }
        for i in range(count)
    ]


def budget_events(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-b{i}",
            "type": "budget",
            "org_unit": unit,
            "year": 2025,
            "category": "salaries",
            "annual": 1_000_000.0 * (i + 1),
            "version": "KF",
        }
        for i, unit in enumerate(("1110", "1120", "2110"))
    ]


def expected_rollup(
    events: Sequence[dict[str, Any]], domain: DomainConfig, field: str, name_field: str
) -> dict[tuple[str, str, str], float]:
    """What /metrics must show, summed the plain way: every unique event into every ancestor
    (an unknown cost centre's own id is not a label: only omappad and above)."""
    seen: set[str] = set()
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        year = str(event["year"]) if "year" in event else event["period"][:4]
        for node in domain.org.path(event["org_unit"]):
            if node in domain.org.nodes:
                out[(node, event[name_field], year)] += event[field]
    return dict(out)


def gauges(samples: Samples, name: str, label: str) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = defaultdict(float)
    for sample_name, labels, value in samples:
        if sample_name == name:
            out[(labels["org_unit"], labels[label], labels["year"])] += value
    return dict(out)


def matches(actual: dict[Any, float], expected: dict[Any, float]) -> bool:
    return actual.keys() == expected.keys() and all(
        actual[k] == pytest.approx(v, rel=1e-9, abs=1e-6) for k, v in expected.items()
    )


def assert_totals(samples: Samples, costs: Sequence[dict[str, Any]], domain: DomainConfig) -> None:
    actual = gauges(samples, "budgetvakt_actual_ytd_sek", "category")
    expected = expected_rollup(costs, domain, "amount_sek", "category")
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key


def handled(case: StreamCase, topic: str, outcome: str | None = None) -> float:
    labels = {"topic": case.topics[topic]}
    if outcome is not None:
        labels["outcome"] = outcome
    return sum_metric(case.samples(), "budgetvakt_events_total", **labels)


def wait_handled(case: StreamCase, topic: str, count: int) -> None:
    wait_until(
        lambda: handled(case, topic) >= count,
        CATCH_UP_TIMEOUT_S,
        f"{count} events of {topic} handled",
    )
    assert handled(case, topic) == count


def wait_for_totals(
    case: StreamCase,
    samples: Callable[[], Samples],
    costs: Sequence[dict[str, Any]],
    domain: DomainConfig,
    what: str,
) -> None:
    """Wait until the cost gauges equal the published totals; on timeout say what differs."""
    expected = expected_rollup(costs, domain, "amount_sek", "category")
    try:
        wait_until(
            lambda: matches(gauges(samples(), "budgetvakt_actual_ytd_sek", "category"), expected),
            CATCH_UP_TIMEOUT_S,
            what,
        )
    except TimeoutError as err:
        actual = gauges(samples(), "budgetvakt_actual_ytd_sek", "category")
        differing = sorted(
            (key, actual.get(key), expected.get(key))
            for key in actual.keys() | expected.keys()
            if actual.get(key) != pytest.approx(expected.get(key), rel=1e-9, abs=1e-6)
        )
        counts = {o: handled(case, "cost", o) for o in ("accepted", "duplicate", "rejected")}
        # A lag left says the worker stalled; none, that events were lost.
        lag = {
            f"{labels['topic']}/{labels['partition']}": value
            for name, labels, value in samples()
            if name == "budgetvakt_consumer_lag" and value
        }
        raise AssertionError(
            f"{err}; handled {counts}; consumer lag {lag}; {len(differing)} differing "
            f"(node, category, year): {differing[:8]}"
        ) from None


def test_totals_are_exact_rolled_up_and_a_resent_file_counts_once(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    worker = stream_case.start_worker()
    costs = cost_events("a", 400, seed=1)
    costs_with_repeats = costs + costs[:25]
    volumes = volume_events("a", 24, seed=2)
    budgets = budget_events("a")
    stream_case.publish("cost", costs_with_repeats)
    stream_case.publish("volume", volumes)
    stream_case.publish("budget", budgets)

    wait_handled(stream_case, "cost", len(costs_with_repeats))
    wait_handled(stream_case, "volume", len(volumes))
    wait_handled(stream_case, "budget", len(budgets))
    samples = worker.samples()
    assert handled(stream_case, "cost", "accepted") == 400
    assert handled(stream_case, "cost", "duplicate") == 25
    assert_totals(samples, costs, domain)
    # Spot checks against hand-picked labels, not only against the helper above.
    leaf = sum_metric(
        samples,
        "budgetvakt_actual_ytd_sek",
        org_unit="1110",
        category="salaries",
        year="2025",
        level="enhet",
    )
    assert leaf == pytest.approx(
        sum(
            e["amount_sek"] for e in costs if (e["org_unit"], e["category"]) == ("1110", "salaries")
        )
    )
    namnd = sum_metric(samples, "budgetvakt_actual_ytd_sek", org_unit="VON", level="namnd")
    # The unknown cost centre is its own owner (omappad), not part of the nämnd.
    assert namnd == pytest.approx(sum(e["amount_sek"] for e in costs if e["org_unit"] != "9999"))
    unmapped = sum_metric(samples, "budgetvakt_actual_ytd_sek", org_unit="omappad", level="namnd")
    assert unmapped == pytest.approx(sum(e["amount_sek"] for e in costs if e["org_unit"] == "9999"))
    assert sum_metric(samples, "budgetvakt_unmapped_org_units") == 1
    assert sum_metric(samples, "budgetvakt_unmapped_events_total") == 50
    # The unknown id itself is never a label value (docs/metrics.md).
    assert not [name for name, labels, _ in samples if "9999" in labels.values()]
    assert matches(
        gauges(samples, "budgetvakt_volume_ytd", "measure"),
        expected_rollup(volumes, domain, "value", "measure"),
    )
    assert sum_metric(
        samples, "budgetvakt_budget_full_year_sek", org_unit="VOF", category="salaries"
    ) == pytest.approx(6_000_000.0)

    # The same "file" again: every event is a duplicate, the totals do not move.
    stream_case.publish("cost", costs)
    wait_handled(stream_case, "cost", len(costs_with_repeats) + len(costs))
    assert handled(stream_case, "cost", "duplicate") == 25 + 400
    assert_totals(worker.samples(), costs, domain)


PERSONNUMMER = "19121212-1212"  # Skatteverket's test number: valid date and check digit


def test_poison_messages_go_to_the_dead_letter_topic_and_the_stream_flows_on(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    from kafka import KafkaConsumer, TopicPartition

    worker = stream_case.start_worker()
    good = cost_events("p", 3, seed=3)
    missing_amount = {k: v for k, v in cost_events("bad-schema", 1, seed=4)[0].items()}
    del missing_amount["amount_sek"]
    unknown_category = {**cost_events("bad-cat", 1, seed=5)[0], "category": "champagne"}
    with_personnummer = {**cost_events("pnr", 1, seed=6)[0], "source": f"lön {PERSONNUMMER}"}
    poison: list[bytes] = [
        b"{this is not json",
        json.dumps(missing_amount).encode(),
        json.dumps(unknown_category).encode(),
        json.dumps(with_personnummer).encode(),
        json.dumps(volume_events("wrong-topic", 1, seed=7)[0]).encode(),
    ]
    stream_case.publish("cost", [good[0], *poison, good[1]])
    wait_handled(stream_case, "cost", 2 + len(poison))
    assert worker.alive()
    assert handled(stream_case, "cost", "rejected") == len(poison)
    assert handled(stream_case, "cost", "accepted") == 2
    samples = worker.samples()
    assert sum_metric(samples, "budgetvakt_dead_letter_total") == len(poison)

    consumer = KafkaConsumer(
        stream_case.topics["dead_letter"],
        bootstrap_servers=stream_case.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
        group_id=None,
    )
    letters: list[dict[str, Any]] = []
    try:
        wait_until(
            lambda: letters.extend(json.loads(m.value) for m in consumer) or len(letters) >= 5,
            60,
            "dead letters readable",
        )
    finally:
        consumer.close()
    assert len(letters) == len(poison)
    # The default keeps the hash and the length of the rejected bytes, not the bytes.
    assert sorted(letter["original_sha256"] for letter in letters) == sorted(
        hashlib.sha256(p).hexdigest() for p in poison
    )
    assert all(letter["original"] is None for letter in letters)
    for letter in letters:
        assert letter["topic"] == stream_case.topics["cost"]
        assert letter["reason"]
        assert "1212" not in letter["reason"]
        assert letter["rejected_at"]
        # topic/partition/offset point at exactly the rejected message.
        reader = KafkaConsumer(bootstrap_servers=stream_case.bootstrap_servers, group_id=None)
        try:
            tp = TopicPartition(letter["topic"], letter["partition"])
            reader.assign([tp])
            reader.seek(tp, letter["offset"])
            fetched = reader.poll(timeout_ms=10_000, max_records=1)[tp][0]
        finally:
            reader.close()
        assert hashlib.sha256(fetched.value).hexdigest() == letter["original_sha256"]
        assert len(fetched.value) == letter["original_length"]
    reasons = " | ".join(letter["reason"] for letter in letters).lower()
    assert "json" in reasons and "categor" in reasons
    assert PERSONNUMMER not in worker.log_path.read_text(encoding="utf-8")
    assert "121212" not in worker.log_path.read_text(encoding="utf-8")

    # The worker is alive and later events still count.
    stream_case.publish("cost", [good[2]])
    wait_handled(stream_case, "cost", 3 + len(poison))
    assert_totals(worker.samples(), good, domain)


@pytest.mark.slow
def test_restart_keeps_totals_with_local_store_and_after_changelog_recovery(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    first_batch = cost_events("r1", 200, seed=11)
    worker = stream_case.start_worker()
    stream_case.publish("cost", first_batch)
    wait_handled(stream_case, "cost", len(first_batch))
    assert worker.stop(signal.SIGTERM) == 0

    # Same data dir: the local RocksDB store plus the rest of the changelog.
    worker = stream_case.start_worker(data_dir=worker.data_dir)
    assert_totals(worker.samples(), first_batch, domain)
    second_batch = cost_events("r2", 150, seed=12)
    stream_case.publish("cost", second_batch + first_batch[:50])
    wait_handled(stream_case, "cost", len(second_batch) + 50)
    assert handled(stream_case, "cost", "duplicate") == 50
    assert_totals(worker.samples(), first_batch + second_batch, domain)
    assert worker.stop(signal.SIGTERM) == 0

    # Fresh data dir: everything comes back from the changelog topic.
    worker = stream_case.start_worker()
    assert_totals(worker.samples(), first_batch + second_batch, domain)
    third_batch = cost_events("r3", 120, seed=13)
    stream_case.publish("cost", third_batch + second_batch[:30])
    wait_handled(stream_case, "cost", len(third_batch) + 30)
    assert handled(stream_case, "cost", "duplicate") == 30
    assert_totals(worker.samples(), first_batch + second_batch + third_batch, domain)


@pytest.mark.slow
def test_two_workers_in_one_group_share_partitions_and_sum_exactly(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    first = stream_case.start_worker()
    second = stream_case.start_worker()

    def split_settled() -> bool:
        answers = [first.ready(), second.ready()]
        if any(a is None for a in answers):
            return False
        parts = [set(a["partitions"]) for a in answers if a is not None]
        return bool(parts[0]) and bool(parts[1]) and not parts[0] & parts[1]

    wait_until(split_settled, 60, "both workers own disjoint partitions")
    costs = cost_events("two", 600, seed=21)
    stream_case.publish("cost", costs)
    wait_for_totals(
        stream_case,
        stream_case.samples,
        costs,
        domain,
        "sum of both workers' gauges equals the published totals",
    )
    assert handled(stream_case, "cost", "accepted") == 600
    assert first.samples() and second.samples()
    shares = [
        sum_metric(w.samples(), "budgetvakt_actual_ytd_sek", org_unit="VON", level="namnd")
        for w in (first, second)
    ]
    # The nämnd is the unit of ownership: one worker holds all of VON, the other none of it.
    von = [e["amount_sek"] for e in costs if domain.org.owner_of(e["org_unit"]) == "VON"]
    assert sorted(shares, key=abs) == [0, pytest.approx(math.fsum(von))]

    # One worker leaves: the other takes over its partitions from the changelog, and neither
    # re-sent nor new events are double counted.
    assert second.stop(signal.SIGTERM) == 0
    more = cost_events("two-more", 100, seed=22)
    stream_case.publish("cost", costs[:100] + more)
    wait_for_totals(
        stream_case, first.samples, costs + more, domain, "the remaining worker holds all totals"
    )


def test_events_without_the_org_unit_key_are_forwarded_home_and_resent_copies_count_once(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    # A producer that ignores the documented key: every event goes to a random partition, and
    # its re-sent copy to a different one. Counting per partition would count both copies.
    worker = stream_case.start_worker()
    costs = cost_events("keyless", 240, seed=31)
    rng = random.Random(32)
    partitions = 4
    records: list[tuple[bytes | None, bytes, int | None]] = []
    for event in costs:
        first = rng.randrange(partitions)
        second = (first + rng.randrange(1, partitions)) % partitions
        value = json.dumps(event).encode("utf-8")
        records += [(None, value, first), (None, value, second)]
    stream_case.send("cost", records)

    wait_handled(stream_case, "cost", 2 * len(costs))
    assert handled(stream_case, "cost", "accepted") == len(costs)
    assert handled(stream_case, "cost", "duplicate") == len(costs)
    forwarded = sum_metric(worker.samples(), "budgetvakt_events_forwarded_total")
    # Two copies per event on two different partitions: at least one of them is not at home.
    assert len(costs) <= forwarded < 2 * len(costs)
    assert_totals(worker.samples(), costs, domain)


@pytest.mark.slow
def test_a_worker_killed_mid_ingest_loses_nothing_and_counts_nothing_twice(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    costs = cost_events("kill", 6000, seed=41)
    worker = stream_case.start_worker()
    stream_case.publish("cost", costs)
    wait_until(lambda: handled(stream_case, "cost") > 0, CATCH_UP_TIMEOUT_S, "ingest under way")
    # No shutdown, no commit, possibly in the middle of a batch's changelog writes.
    worker.stop(signal.SIGKILL)

    # A fresh data dir: the state comes back from the changelog alone (as with a memory store).
    worker = stream_case.start_worker()
    wait_for_totals(
        stream_case, worker.samples, costs, domain, "the restarted worker's totals are exact"
    )
    # Later events add exactly, and no event is counted twice by the restarted worker.
    more = cost_events("kill-more", 50, seed=42)
    stream_case.publish("cost", more)
    wait_for_totals(stream_case, worker.samples, costs + more, domain, "later events add exactly")


@pytest.mark.slow
def test_workers_killed_repeatedly_restart_on_their_own_data_dir_and_count_exactly(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    # The probe's case: SIGKILL mid-ingest, and the successor on the SAME data dir (its local
    # RocksDB store may hold writes the changelog never got, and a persisted changelog offset
    # beyond what Tansu reports as the end). Killed in the middle of a batch (while its marker
    # is on disk: exactly the state the probe's successors could not start from), and once
    # just after a start.
    from streams.local_store import MARKER_NAME

    costs = cost_events("again", 20_000, seed=43)
    worker = stream_case.start_worker()
    data_dir = worker.data_dir
    assert data_dir is not None
    marker = data_dir / "v1" / "tables" / MARKER_NAME
    stream_case.publish("cost", costs)
    rebuilt = 0.0
    for moment in ("mid-batch", "mid-batch", "after start", "mid-batch"):
        if moment == "mid-batch":
            wait_until(marker.exists, CATCH_UP_TIMEOUT_S, "a batch in progress", interval_s=0.002)
        else:
            wait_until(lambda: handled(stream_case, "cost") > 0, CATCH_UP_TIMEOUT_S, "ingest")
        worker.stop(signal.SIGKILL)
        worker = stream_case.start_worker(data_dir=data_dir)
        rebuilt += sum_metric(
            worker.samples(), "budgetvakt_table_store_rebuilds_total", reason="interrupted_batch"
        )
    # A kill can land just after a batch ended; not all three mid-batch kills.
    assert rebuilt >= 1
    wait_for_totals(
        stream_case, worker.samples, costs, domain, "the same-dir successor's totals are exact"
    )
    more = cost_events("again-more", 60, seed=44)
    stream_case.publish("cost", more)
    wait_for_totals(stream_case, worker.samples, costs + more, domain, "later events add exactly")
    # What the same-dir successors wrote is in the changelog too: a worker with an empty data
    # dir recovers the same totals.
    assert worker.stop(signal.SIGTERM) == 0
    worker = stream_case.start_worker()
    wait_for_totals(
        stream_case, worker.samples, costs + more, domain, "an empty-dir successor is exact too"
    )


def test_a_local_store_left_untrustworthy_is_rebuilt_from_the_changelog(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    # The two states a crash leaves, made on purpose after a clean stop: the marker of a batch
    # that never finished, and a persisted changelog offset beyond the changelog's end (Faust
    # alone refuses to start on that: ConsistencyError, and so does every successor).
    import rocksdict

    from streams.local_store import MARKER_NAME

    costs = cost_events("store", 400, seed=45)
    worker = stream_case.start_worker()
    data_dir = worker.data_dir
    assert data_dir is not None
    stream_case.publish("cost", costs)
    wait_handled(stream_case, "cost", len(costs))
    assert worker.stop(signal.SIGTERM) == 0

    tables = data_dir / "v1" / "tables"
    partition_dirs = sorted(tables.glob("aggregates-*.db"))
    assert len(partition_dirs) == 4
    (tables / MARKER_NAME).write_text('{"partitions": [0, 1]}', encoding="utf-8")
    db = rocksdict.Rdict(str(tables / "aggregates-2.db"), options=rocksdict.Options(raw_mode=True))
    raw = db[b"__faust\0offset__"]
    assert isinstance(raw, bytes)
    persisted = int(raw)
    db[b"__faust\0offset__"] = str(persisted + 5).encode()
    db.close()

    worker = stream_case.start_worker(data_dir=data_dir)
    wait_for_totals(stream_case, worker.samples, costs, domain, "the rebuilt store's totals")
    samples = worker.samples()
    rebuilds = {
        reason: sum_metric(samples, "budgetvakt_table_store_rebuilds_total", reason=reason)
        for reason in ("interrupted_batch", "ahead_of_changelog")
    }
    assert rebuilds == {"interrupted_batch": 2, "ahead_of_changelog": 1}
    assert not (tables / MARKER_NAME).exists()
    log = worker.log_text()
    assert '"reason": "interrupted_batch"' in log and '"reason": "ahead_of_changelog"' in log
    assert "ConsistencyError" not in log
    more = cost_events("store-more", 40, seed=46)
    stream_case.publish("cost", costs[:40] + more)
    wait_for_totals(stream_case, worker.samples, costs + more, domain, "later events add exactly")


def _process_start(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process from /proc; None when gone or a zombie."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), fields[19]


def children_of(pid: int) -> dict[int, str]:
    """pid → start time of every live child of ``pid``."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _process_start(int(entry.name))
            if info is not None and info[0] == pid:
                out[int(entry.name)] = info[1]
    return out


def test_a_killed_worker_leaves_no_process_behind(stream_case: StreamCase) -> None:
    worker = stream_case.start_worker()
    stream_case.publish("cost", cost_events("orphan", 40, seed=47))
    assert worker.pid is not None
    pid = worker.pid
    # The forecast pool (and the resource tracker its queues start) exists after a first run.
    wait_until(lambda: len(children_of(pid)) >= 2, CATCH_UP_TIMEOUT_S, "forecast pool started")
    children = children_of(pid)
    worker.stop(signal.SIGKILL)

    def gone() -> bool:
        return all(
            (info := _process_start(child)) is None or info[1] != started
            for child, started in children.items()
        )

    wait_until(gone, 30, f"the killed worker's children {sorted(children)} ended")


def test_a_message_whose_dead_letter_is_too_large_does_not_stop_ingestion(
    stream_case: StreamCase, domain: DomainConfig
) -> None:
    # The probe's 900 kB event: its dead letter (original bytes and reason) was larger than the
    # producer's max_request_size, the batch failed five times, the worker exited with 75, and
    # every restart read the same message and exited again.
    from kafka import KafkaConsumer

    worker = stream_case.start_worker()
    first = cost_events("big-before", 20, seed=48)
    later = cost_events("big-after", 30, seed=49)
    huge = {**cost_events("big", 1, seed=50)[0], "source": "x" * 900_000}
    stream_case.publish("cost", [*first, json.dumps(huge).encode("utf-8"), *later])
    wait_handled(stream_case, "cost", len(first) + 1 + len(later))
    assert worker.alive()
    assert handled(stream_case, "cost", "rejected") == 1
    assert handled(stream_case, "cost", "accepted") == len(first) + len(later)
    assert_totals(worker.samples(), first + later, domain)
    log = worker.log_text()
    assert "worker_exiting_batch_failed" not in log
    if sum_metric(worker.samples(), "budgetvakt_dead_letter_total") == 1:
        # A dead-letter record small enough to send (hash and length instead of the original).
        consumer = KafkaConsumer(
            stream_case.topics["dead_letter"],
            bootstrap_servers=stream_case.bootstrap_servers,
            auto_offset_reset="earliest",
            consumer_timeout_ms=1000,
            group_id=None,
        )
        letters: list[dict[str, Any]] = []

        def read() -> bool:
            letters.extend(json.loads(m.value) for m in consumer)
            return bool(letters)

        try:
            wait_until(read, 60, "the dead letter readable")
        finally:
            consumer.close()
        (coordinates,) = letters
    else:
        # Its record would carry the original: the message is rejected, counted and logged by
        # its coordinates (it stays readable there), and ingestion goes on.
        (coordinates,) = [
            json.loads(line[line.index("{") :])
            for line in log.splitlines()
            if '"event": "event_rejected_without_dead_letter"' in line
        ]
    # The coordinates point at exactly the huge message.
    where = (coordinates["topic"], coordinates["partition"], coordinates["offset"])
    assert json.loads(fetch(stream_case, *where))["event_id"] == huge["event_id"]


def fetch(case: StreamCase, topic: str, partition: int, offset: int) -> bytes:
    """The value of one message, read by its coordinates."""
    from kafka import KafkaConsumer, TopicPartition

    reader = KafkaConsumer(bootstrap_servers=case.bootstrap_servers, group_id=None)
    try:
        tp = TopicPartition(topic, partition)
        reader.assign([tp])
        reader.seek(tp, offset)
        value: bytes = reader.poll(timeout_ms=10_000, max_records=1)[tp][0].value
        return value
    finally:
        reader.close()
