"""No identity number leaves budgetvakt, whatever producers send: real worker, notifier, SMTP.

A worker and a notifier on the embedded broker get the end-to-end scenario (a vikarie alert in
June 2024, so that mails, webhooks, forecasts, alerts and a snapshot are made) plus hostile
input: personnummer and samordningsnummer in every field, key and spelling, as escaped JSON
digits, in malformed JSON, and an alert event with one in its text written straight to the
alert topic by another producer (the notifier's input guard dead-letters it). Then every output
is searched: both processes' logs and /metrics, the forecast and alert topics (what the worker
produced), every mail and webhook body, the snapshot database, the delårsrapport files, and
the dead-letter topic.
"""

from __future__ import annotations

import json
import sqlite3
import zipfile
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.pii import find_personal_ids
from core.settings import REPO_ROOT
from services.processes.scrape import fetch_metrics
from services.processes.supervised import wait_until
from testing.cli import run_cli
from tests.end_to_end.test_end_to_end import ALERT_ID, _events, worker_status
from tests.services.notifier.fixtures import NotifierCase, make_alert
from tests.streams.fixtures import StreamCase

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NUMBERS = ["19121212-1212", "121212-1212", "191212121212", "1212121212", "701063-2391"]
ESCAPED_UNIT = "191212121212"
CRAFTED_ALERT_ID = "budget_overrun:1110:overtime:2024"


def _escaped(text: str) -> str:
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


def hostile_events() -> dict[str, list[dict[str, Any] | bytes]]:
    """Identity numbers in every input path of the four input topics."""
    cost: list[dict[str, Any] | bytes] = []
    for i, number in enumerate(NUMBERS):
        base = {
            "event_id": f"pii-{i}",
            "type": "cost",
            "org_unit": "1110",
            "period": "2024-06",
            "category": "salaries",
            "amount_sek": 100,
        }
        cost += [
            {**base, "event_id": f"pii-unit-{i}", "org_unit": number},
            {**base, "event_id": f"pii-note-{i}", "note": f"faktura för {number}"},
            {**base, "event_id": f"pii-key-{i}", number: 1},
            {**base, "event_id": f"pii-nested-{i}", "source": {"rows": [{"pnr": number}]}},
            {**base, "event_id": number},
            {**base, "event_id": f"pii-cat-{i}", "category": number},
            f'{{"event_id": "pii-bad-{i}", "org_unit": "{number}", '.encode(),
        ]
    cost.append(
        (
            '{"event_id": "pii-escaped", "type": "cost", "org_unit": "'
            + _escaped(ESCAPED_UNIT)
            + '", "period": "2024-06", "category": "salaries", "amount_sek": 1000}'
        ).encode()
    )
    cost.append(
        {
            "event_id": "unknown-unit",
            "type": "cost",
            "org_unit": "9999",
            "period": "2024-06",
            "category": "salaries",
            "amount_sek": 100,
        }
    )
    return {
        "cost": cost,
        "volume": [
            {
                "event_id": f"pii-vol-{i}",
                "type": "volume",
                "org_unit": "1110",
                "period": "2024-06",
                "measure": number,
                "value": 1,
            }
            for i, number in enumerate(NUMBERS)
        ],
        "budget": [
            {
                "event_id": f"pii-budget-{i}",
                "type": "budget",
                "org_unit": "1110",
                "year": 2024,
                "category": "salaries",
                "annual": 1,
                "version": number,
            }
            for i, number in enumerate(NUMBERS)
        ],
        "period_close": [
            {
                "event_id": f"pii-close-{i}",
                "type": "period_close",
                "org_unit": n,
                "period": "2024-06",
            }
            for i, n in enumerate(NUMBERS)
        ],
    }


def leaks(text: str) -> list[str]:
    """The identity numbers in ``text``: those the guard finds and the spellings sent."""
    found = find_personal_ids(text)
    found += [n for n in NUMBERS if n in text]
    found += [_escaped(n) for n in NUMBERS if _escaped(n) in text]
    return found


def records(case: StreamCase, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        case.topics[topic],
        bootstrap_servers=case.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
        group_id=None,
    )
    try:
        return [(record.key or b"") + b" " + record.value for record in consumer]
    finally:
        consumer.close()


def mail_text(message: EmailMessage) -> str:
    """Headers, decoded, and every part's decoded text (the wire form may be base64)."""
    texts = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if not part.is_multipart():
            texts.append(str(part.get_content()))
    return "\n".join(texts)


def database_text(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def files_text(folder: Path) -> str:
    texts = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as book:
                texts += [book.read(name).decode("utf-8", "replace") for name in book.namelist()]
        elif path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(texts)


def test_no_identity_number_in_any_output(
    stream_case: StreamCase, notifier_case: NotifierCase, tmp_path: Path
) -> None:
    events = _events(np.random.default_rng(42))
    notifier_case.extra_env["BUDGETVAKT_TOPIC_ALERT"] = stream_case.topics["alert"]
    worker = stream_case.start_worker()
    notifier = notifier_case.start_process()
    hostile = hostile_events()
    for topic in ("budget", "cost", "volume", "period_close"):
        stream_case.publish(topic, [*events.get(topic, []), *hostile[topic]])
    crafted = make_alert("1110", period="2024-06")
    crafted |= {
        "alert_id": CRAFTED_ALERT_ID,
        "event_id": f"{CRAFTED_ALERT_ID}@1",
        "message": f"Gäller brukare 19121212-1212 och {NUMBERS[-1]}.",
    }
    stream_case.publish("alert", [crafted])

    def mails_about(alert_id: str) -> list[Any]:
        return [m for m in notifier_case.smtp.handler.snapshot() if f"{alert_id}@1" in m.event_ids]

    wait_until(lambda: mails_about(ALERT_ID), 120, "the vikarie alert mail")
    # The notifier reads alert events through the same input guard as the worker's events: the
    # crafted one is dead-lettered with a reason that names a position, and never mailed.
    (refused,) = [
        r for r in notifier_case.dead_letters(1, timeout_s=60) if r["kind"] == "malformed"
    ]
    assert "$." in refused["reason"], refused
    assert mails_about(CRAFTED_ALERT_ID) == []
    wait_until(lambda: "2024-06" in worker_status(worker)["snapshots"], 60, "June's snapshot")
    wait_until(
        lambda: (
            worker_status(worker)["state_version"] == worker_status(worker)["current_state_version"]
        ),
        60,
        "the worker's last forecast",
    )

    # The operator's list of unknown cost centres: the plain one, never the escaped number.
    listed = run_cli("unmapped", "--worker", worker.url(""), env=stream_case.env, timeout_s=60)
    assert listed.returncode == 0, listed.stderr
    assert "9999" in listed.stdout.split()

    worker_metrics = fetch_metrics(worker.port)
    notifier_metrics = fetch_metrics(notifier.port)
    produced_alerts = [
        r for r in records(stream_case, "alert") if CRAFTED_ALERT_ID.encode() not in r
    ]
    outputs = {
        "worker log": worker.log_path.read_text(encoding="utf-8", errors="replace"),
        "notifier log": notifier.log_path.read_text(encoding="utf-8", errors="replace"),
        "worker /metrics": worker_metrics,
        "notifier /metrics": notifier_metrics,
        "`budgetvakt unmapped`": listed.stdout + listed.stderr,
        "forecast topic": b"\n".join(records(stream_case, "forecast")).decode(),
        "alert topic (the worker's)": b"\n".join(produced_alerts).decode(),
        "mails": "\n".join(mail_text(m.message) for m in notifier_case.smtp.handler.snapshot()),
        "webhooks": "\n".join(
            json.dumps(h.body, ensure_ascii=False) for h in notifier_case.hooks.snapshot()
        ),
    }
    found = {name: leaks(text) for name, text in outputs.items()}
    assert {name: hits for name, hits in found.items() if hits} == {}

    # What the input guard keeps out (contract.pii): the snapshot database, the reports made from
    # it, and the dead-letter topic (reasons and the payload kept there).
    database = stream_case.tmp_path / "worker0-data" / "budgetvakt.sqlite"
    report_dir = tmp_path / "rapport"
    report = run_cli(
        "report",
        "--period",
        "2024-06",
        "--out",
        str(report_dir),
        env={**stream_case.env, "BUDGETVAKT_DATABASE_URL": f"sqlite:///{database}"},
        cwd=REPO_ROOT,
        timeout_s=120,
    )
    assert report.returncode == 0, report.stderr
    guarded = {
        "snapshot database": database_text(database),
        "report files": files_text(report_dir),
        "dead-letter topic": b"\n".join(records(stream_case, "dead_letter")).decode(
            "utf-8", "replace"
        ),
    }
    found = {name: leaks(text) for name, text in guarded.items()}
    found = {name: hits for name, hits in found.items() if hits}
    assert found == {}
