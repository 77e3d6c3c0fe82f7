"""A real worker on the embedded broker under a few thousand fuzzed messages (valid, malformed,
hostile, carrying identity numbers, one of 900 kB): it stays ready throughout, every message
sent is counted as accepted, duplicate or rejected, every rejection is one dead letter, and no
identity number appears in a dead letter, the metrics or the log."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import pytest

from contract.dead_letter import MAX_RECORD_BYTES
from contract.pii import contains_identity_number, contains_identity_number_in_raw
from contract.validation import InvalidEvent, parse_event
from core.domain import DomainConfig
from services.processes.scrape import sum_metric
from services.processes.supervised import wait_until
from testing.fuzz import IdentityNumber, messages
from tests.fixtures import records_on_topic
from tests.streams.fixtures import StreamCase, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MESSAGES = 3_000
HANDLED_TIMEOUT_S = 180.0


class ReadyMonitor:
    """Asks the worker's /ready every quarter second from a thread; counts the answers."""

    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker
        self.asked = 0
        self.not_ready = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            self.asked += 1
            if self.worker.ready() is None:
                self.not_ready += 1
            self.stop.wait(0.25)

    def __enter__(self) -> ReadyMonitor:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def handled(case: StreamCase, outcome: str | None = None) -> float:
    labels = {"topic": case.topics["cost"]}
    if outcome is not None:
        labels["outcome"] = outcome
    return sum_metric(case.samples(), "budgetvakt_events_total", **labels)


def is_accepted_cost(raw: bytes, domain: DomainConfig) -> bool:
    try:
        return parse_event(raw, domain).type == "cost"
    except InvalidEvent:
        return False


def test_fuzzed_messages_are_all_accounted_for_and_no_identity_number_leaks(
    stream_case: StreamCase, tmp_path: Path, domain: DomainConfig
) -> None:
    # The operator chose full payloads: the dead letters then hold bytes, except where they
    # would show an identity number, and never more than the cap.
    env = {**stream_case.env, "BUDGETVAKT_DEAD_LETTER_PAYLOAD": "full"}
    worker = WorkerProcess(env, tmp_path / "fuzz-data", tmp_path / "fuzz-worker.log")
    stream_case.workers.append(worker.start())
    worker.wait_ready()

    inputs = list(messages(seed=4711, count=MESSAGES))
    carried: list[IdentityNumber] = [i.identity for i in inputs if i.identity is not None]
    records: list[tuple[bytes | None, bytes, int | None]] = []
    for item in inputs:
        key: bytes | None = b"1110"
        if item.identity is not None and len(records) % 3 == 0:
            key = item.identity.spelled.encode()  # an identity number as the Kafka key too
        records.append((key, item.raw, None))
    resent = [item.raw for item in inputs if is_accepted_cost(item.raw, domain)][:100]
    records += [(b"1110", raw, None) for raw in resent]  # re-sent: duplicates
    big = b'{"type":"cost","event_id":"big","org_unit":"1110","period":"2025-01",'
    big += b'"category":"overtime","amount_sek":1,"source":"' + b"x" * 900_000 + b'"}'
    records.append((b"1110", big, None))

    with ReadyMonitor(worker) as monitor:
        for start in range(0, len(records), 500):
            stream_case.send("cost", records[start : start + 500])
        wait_until(
            lambda: handled(stream_case) >= len(records),
            HANDLED_TIMEOUT_S,
            f"{len(records)} fuzzed messages handled",
        )
    assert worker.alive()
    assert monitor.asked >= 4 and monitor.not_ready == 0

    accepted = handled(stream_case, "accepted")
    duplicate = handled(stream_case, "duplicate")
    rejected = handled(stream_case, "rejected")
    assert accepted + duplicate + rejected == len(records)
    assert duplicate == len(resent) >= 50
    assert accepted >= 100 and rejected >= len(carried)

    letters = records_on_topic(stream_case.bootstrap_servers, stream_case.topics["dead_letter"])
    assert len(letters) == rejected
    samples = worker.samples()
    assert sum_metric(samples, "budgetvakt_dead_letter_total") == rejected
    assert sum_metric(samples, "budgetvakt_dead_letter_total", reason_kind="personal_id") >= len(
        carried
    )
    for letter in letters:
        assert len(letter.value) <= MAX_RECORD_BYTES
        record = json.loads(letter.value)
        # Reason, key, hashes, the base64 text: nothing of the record holds one.
        assert not contains_identity_number(record), [
            field for field, value in record.items() if contains_identity_number(value)
        ]
        if record["original"] is not None:
            assert not contains_identity_number_in_raw(base64.b64decode(record["original"]))
        if letter.key is not None:
            assert not contains_identity_number_in_raw(letter.key)
    big_letter = next(
        json.loads(r.value) for r in letters if json.loads(r.value)["original_length"] == len(big)
    )
    assert big_letter["payload"] == "truncated"

    exposition = json.dumps(samples)
    log_text = worker.log_path.read_text(encoding="utf-8")
    for number in carried:
        for text in number.echoes:
            assert text not in exposition
            assert text not in log_text
