"""budgetvakt publish: file parsing and validation, and real sends to the embedded broker."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from core.domain import DomainConfig
from core.errors import UserError
from services.batch.publish import derived_event_id, read_events, send_events
from testing.cli import run_cli
from tests.fixtures import records_on_topic

COST_CSV = """event_id,org_unit,period,category,amount_sek
c1,1110,2024-01,substitutes,1200000
,1110,2024-01,overtime,"45 000,50"
c3,1110,2024-13,overtime,100
c4,1110,2024-02,coffee,100
c5,1110,2024-02,overtime,lots
c6,1110,2024-02,overtime,19121212-1212
c1,1120,2024-02,overtime,5
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_rows_are_validated_with_line_numbers(tmp_path: Path, domain: DomainConfig) -> None:
    loaded = read_events(write(tmp_path, "costs.csv", COST_CSV), domain)
    assert [line for line, _ in loaded.events] == [2, 3]
    assert loaded.events[1][1]["amount_sek"] == 45000.5  # Swedish decimal comma
    reasons = {r.line: r.reason for r in loaded.rejections}
    assert set(reasons) == {4, 5, 6, 7, 8}
    assert "period" in reasons[4]
    assert "unknown category 'coffee'" in reasons[5]
    assert "column 'amount_sek': 'lots' is not a number" in reasons[6]
    assert "1212" not in reasons[7] and "amount_sek" in reasons[7]
    assert "already used on line 2" in reasons[8]


def test_missing_event_id_is_deterministic(tmp_path: Path, domain: DomainConfig) -> None:
    path = write(tmp_path, "costs.csv", COST_CSV)
    first = read_events(path, domain).events[1][1]["event_id"]
    again = read_events(path, domain).events[1][1]["event_id"]
    assert first == again and first.startswith("pub-")
    other_line = derived_event_id("costs.csv", 4, {"x": 1})
    assert other_line != derived_event_id("costs.csv", 5, {"x": 1})


def test_semicolon_csv_volumes_and_budgets(tmp_path: Path, domain: DomainConfig) -> None:
    volumes = write(
        tmp_path,
        "volumes.csv",
        "org_unit;period;measure;value;unit\n1110;2024-01;home_care_hours;28 833,5;h\n",
    )
    ((_line, event),) = read_events(volumes, domain).events
    assert event["value"] == 28833.5 and event["type"] == "volume"
    months = ",".join(["100"] * 12)
    budgets = write(
        tmp_path,
        "budgets.csv",
        "org_unit,year,category,annual," + ",".join(f"m{m:02d}" for m in range(1, 13)) + "\n"
        f"1110,2024,overtime,1200,{months}\n1110,2024,overtime,1300,{months}\n",
    )
    loaded = read_events(budgets, domain)
    assert loaded.events[0][1]["monthly"] == [100.0] * 12
    assert "adds up to" in loaded.rejections[0].reason


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("org_unit,period,category,amount_sek,colour", "unknown column(s) for a cost file: colour"),
        ("org_unit,category,amount_sek", "cost file lacks column(s): period"),
        ("foo,bar", "cannot tell the kind of events"),
        ("org_unit,period,period,amount_sek", "duplicate column(s): period"),
    ],
)
def test_bad_header_fails_before_anything(
    tmp_path: Path, domain: DomainConfig, header: str, message: str
) -> None:
    path = write(tmp_path, "bad.csv", header + "\n1,2,3,4\n")
    with pytest.raises(
        UserError, match="bad.csv:1: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        read_events(path, domain)


def test_json_lines_with_bad_lines(tmp_path: Path, domain: DomainConfig) -> None:
    good = {"type": "period_close", "event_id": "p1", "org_unit": "VON", "period": "2024-01"}
    path = write(tmp_path, "e.jsonl", json.dumps(good) + "\n{oops\n\n[1]\n")
    loaded = read_events(path, domain)
    assert [e for _, e in loaded.events] == [good]
    assert [(r.line, r.reason.split(":")[0]) for r in loaded.rejections] == [
        (2, "not valid JSON"),
        (4, "not a JSON object"),
    ]


def consume_all(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, dict]]:
    out = [(m.key, json.loads(m.value)) for m in records_on_topic(bootstrap, topic)]
    assert len(out) == expected
    return out


@pytest.mark.integration
def test_send_events_routes_by_type(bootstrap_servers: str) -> None:
    from core.settings import Topics

    suffix = uuid.uuid4().hex[:8]
    topics = Topics(cost=f"cost-{suffix}", period_close=f"close-{suffix}")
    events = [
        {
            "type": "cost",
            "event_id": f"e{i}",
            "org_unit": "1110",
            "period": "2024-01",
            "category": "overtime",
            "amount_sek": float(i),
        }
        for i in range(25)
    ] + [{"type": "period_close", "event_id": "p", "org_unit": "VON", "period": "2024-01"}]
    assert send_events(bootstrap_servers, None, events, topics) == 26
    costs = consume_all(bootstrap_servers, topics.cost, 25)
    # Keyed by the nämnd that owns the cost centre (config/org.yaml), so they arrive at home.
    assert {key for key, _ in costs} == {b"VON"}
    assert sorted(e["amount_sek"] for _, e in costs) == [float(i) for i in range(25)]
    consume_all(bootstrap_servers, topics.period_close, 1)


def run_publish(*args: str, bootstrap: str | None = None) -> subprocess.CompletedProcess[str]:
    """``budgetvakt publish`` configured by nothing but ``bootstrap``."""
    env = {"BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": bootstrap} if bootstrap else {}
    return run_cli("publish", *args, env=env, inherit_settings=False)


@pytest.mark.integration
def test_cli_sends_valid_rows_reports_bad_ones_and_exits_2(
    tmp_path: Path, bootstrap_servers: str
) -> None:
    topic = f"publish-{uuid.uuid4().hex[:8]}"
    path = write(tmp_path, "costs.csv", COST_CSV)
    result = run_publish(str(path), "--topic", topic, bootstrap=bootstrap_servers)
    assert result.returncode == 2, result.stderr
    assert f"{path}:4: field 'period'" in result.stderr
    assert "19121212" not in result.stderr + result.stdout
    assert "2 sent, 5 rejected" in result.stdout
    sent = consume_all(bootstrap_servers, topic, 2)
    assert next(e["event_id"] for _, e in sent) == "c1"


def test_cli_without_kafka_or_with_bad_header_fails_cleanly(tmp_path: Path) -> None:
    path = write(tmp_path, "costs.csv", COST_CSV)
    result = run_publish(str(path))
    assert result.returncode == 2
    assert "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS" in result.stderr
    assert "Traceback" not in result.stderr
    bad = write(tmp_path, "bad.csv", "foo,bar\n1,2\n")
    result = run_publish(str(bad), bootstrap="127.0.0.1:1")
    assert result.returncode == 2
    assert "bad.csv:1: cannot tell the kind" in result.stderr
    assert "Traceback" not in result.stderr
