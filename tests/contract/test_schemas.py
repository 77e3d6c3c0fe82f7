"""The JSON Schemas in config/schemas/ match the models, accept valid and refuse invalid events,
and every example in docs/events.md is a valid event (so the producer documentation stays true).
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from forecasts.domain import DomainConfig
from services.schemas import DEFAULT_SCHEMA_DIR, DeadLetterRecord, write_schemas
from services.settings import REPO_ROOT
from streams.records import EVENT_TYPES
from streams.validation import InvalidEvent, parse_event
from tests.contract.fixtures import as_bytes, cost_event

EVENTS_DOC = REPO_ROOT / "docs" / "events.md"
# ```json blocks are events; ```json dead-letter blocks are dead-letter records.
FENCED_JSON = re.compile(r"^```json(?P<tag>[^\n]*)\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((DEFAULT_SCHEMA_DIR / f"{name}.v1.json").read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


VALID_EVENTS: list[dict[str, Any]] = [
    cost_event(),
    cost_event(category=None, account=5031, amount_sek=-12_500, corrects="c-0"),
    cost_event(emitted_at="2024-04-03T06:00:00+02:00", source="raindance"),
    {
        "type": "volume",
        "event_id": "v-1",
        "org_unit": "1110",
        "period": "2024-03",
        "measure": "home_care_hours",
        "value": 14_850,
        "unit": "h",
    },
    {
        "type": "budget",
        "event_id": "b-1",
        "org_unit": "1110",
        "year": 2024,
        "category": "substitutes",
        "annual": 12_000_000,
        "version": "KF",
    },
    {
        "type": "budget",
        "event_id": "b-2",
        "org_unit": "1110",
        "year": 2024,
        "measure": "home_care_hours",
        "annual": 1200,
        "monthly": [100] * 12,
    },
    {"type": "period_close", "event_id": "pc-1", "org_unit": "1110", "period": "2024-03"},
]

INVALID_EVENTS: dict[str, dict[str, Any]] = {
    "missing amount": {k: v for k, v in cost_event().items() if k != "amount_sek"},
    "missing type": {k: v for k, v in cost_event().items() if k != "type"},
    "amount as text": cost_event(amount_sek="1 000"),
    "extra field": cost_event(amout=5),
    "bad period": cost_event(period="2024-13"),
    "category and account": cost_event(account=5020),
    "neither category nor account": cost_event(category=None),
    "unknown type": cost_event(type="costs"),
    "negative volume": {
        "type": "volume",
        "event_id": "v-1",
        "org_unit": "1110",
        "period": "2024-03",
        "measure": "home_care_hours",
        "value": -1,
        "unit": "h",
    },
    "budget with eleven months": {
        "type": "budget",
        "event_id": "b-1",
        "org_unit": "1110",
        "year": 2024,
        "category": "substitutes",
        "annual": 1100,
        "monthly": [100] * 11,
    },
    "budget for category and measure": {
        "type": "budget",
        "event_id": "b-1",
        "org_unit": "1110",
        "year": 2024,
        "category": "substitutes",
        "measure": "home_care_hours",
        "annual": 1,
    },
}


def test_committed_schemas_match_the_models(tmp_path: Path) -> None:
    written = write_schemas(tmp_path)
    committed = sorted(p.name for p in DEFAULT_SCHEMA_DIR.glob("*.json"))
    assert sorted(p.name for p in written) == committed, "run `budgetvakt schemas`"
    for path in written:
        assert path.read_bytes() == (DEFAULT_SCHEMA_DIR / path.name).read_bytes(), (
            f"config/schemas/{path.name} is out of date: run `budgetvakt schemas`"
        )


def test_schemas_name_their_dialect_and_id() -> None:
    for path in DEFAULT_SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(f"/{path.name}")
        assert schema["title"] and schema["description"]


@pytest.mark.parametrize("event", VALID_EVENTS, ids=lambda e: f"{e['type']}-{e['event_id']}")
def test_valid_events_pass_the_union_and_their_type_schema(
    event: dict[str, Any], domain: DomainConfig
) -> None:
    assert list(validator("event").iter_errors(event)) == []
    assert list(validator(event["type"]).iter_errors(event)) == []
    assert parse_event(as_bytes(event), domain).event_id == event["event_id"]


@pytest.mark.parametrize("event", INVALID_EVENTS.values(), ids=list(INVALID_EVENTS))
def test_invalid_events_fail_the_schema_and_the_worker(
    event: dict[str, Any], domain: DomainConfig
) -> None:
    assert not validator("event").is_valid(event)
    with pytest.raises(InvalidEvent):
        parse_event(as_bytes(event), domain)


def test_schema_wants_json_numbers_where_the_worker_is_lenient(domain: DomainConfig) -> None:
    # The worker (pydantic, lax mode) also takes numeric strings; producers should send numbers.
    event = cost_event(category=None, account="5020")
    assert not validator("event").is_valid(event)
    assert parse_event(as_bytes(event), domain).category == "substitutes"


def test_type_schemas_refuse_another_types_event() -> None:
    volume = next(e for e in VALID_EVENTS if e["type"] == "volume")
    assert not validator("cost").is_valid(volume)
    assert not validator("period_close").is_valid(cost_event())


def test_dead_letter_record_of_the_worker_validates() -> None:
    from streams.app import dead_letter_record

    original = b'{"type":"cost","amount_sek":'
    message = SimpleNamespace(
        topic="budgetvakt.cost.v1", partition=3, offset=41, key=b"1110", value=original
    )
    raw = dead_letter_record(
        SimpleNamespace(message=message),  # type: ignore[arg-type]
        "not valid JSON: EOF while parsing a value",
        now=datetime(2024, 4, 3, 6, 0, tzinfo=UTC),
    )
    record = json.loads(raw)
    assert list(validator("dead_letter").iter_errors(record)) == []
    parsed = DeadLetterRecord.model_validate_json(raw)
    assert base64.b64decode(parsed.original) == original
    assert parsed.key is not None and base64.b64decode(parsed.key) == b"1110"
    assert (parsed.topic, parsed.partition, parsed.offset) == ("budgetvakt.cost.v1", 3, 41)

    keyless = SimpleNamespace(message=SimpleNamespace(**{**vars(message), "key": None}))
    record = json.loads(dead_letter_record(keyless, "empty message (no value)"))  # type: ignore[arg-type]
    assert record["key"] is None
    assert validator("dead_letter").is_valid(record)
    assert not validator("dead_letter").is_valid({**record, "extra": 1})


def doc_examples() -> list[tuple[str, str]]:
    text = EVENTS_DOC.read_text(encoding="utf-8")
    return [(m["tag"].strip(), m["body"]) for m in FENCED_JSON.finditer(text)]


def test_events_doc_has_an_example_of_every_event_type() -> None:
    types = {json.loads(body).get("type") for tag, body in doc_examples() if tag == ""}
    assert types >= set(EVENT_TYPES)
    assert any(tag == "dead-letter" for tag, _ in doc_examples())


def example_id(tag: str, body: str) -> str:
    example = json.loads(body)
    return f"{tag}:{example.get('offset')}" if tag else str(example.get("event_id"))


@pytest.mark.parametrize(
    "tag,body", [pytest.param(tag, body, id=example_id(tag, body)) for tag, body in doc_examples()]
)
def test_events_doc_examples_are_valid(tag: str, body: str, domain: DomainConfig) -> None:
    example = json.loads(body)
    if tag == "dead-letter":
        assert list(validator("dead_letter").iter_errors(example)) == []
        DeadLetterRecord.model_validate(example)
        return
    assert tag == "", f"unknown example tag {tag!r} in docs/events.md"
    assert list(validator("event").iter_errors(example)) == []
    parse_event(body.encode("utf-8"), domain)


# Messages whose rejection reason docs/events.md quotes word for word.
QUOTED_REJECTIONS: list[bytes] = [
    b"\xff\xfe",
    b'{"type":"cost",',
    b"[1,2]",
    b'{"event_id":"x"}',
    as_bytes(cost_event(type="costs")),
    as_bytes({k: v for k, v in cost_event().items() if k != "period"}),
    as_bytes(cost_event(period="2024-13")),
    as_bytes(cost_event(amount_sek="abc")),
    b'{"type":"cost","event_id":"c","org_unit":"1110","period":"2024-03","category":"salaries",'
    b'"amount_sek":NaN}',
    as_bytes(cost_event(amout=5)),
    as_bytes(cost_event(account=5020)),
    as_bytes(cost_event(category=None, account=9500)),
    as_bytes(cost_event(source="lön 19121212-1212")),
    b'{"type":"volume","event_id":"v","org_unit":"1110","period":"2024-03",'
    b'"measure":"home_care_hours","value":-1,"unit":"h"}',
    b'{"type":"budget","event_id":"b","org_unit":"1110","year":2024,"annual":1200}',
    b'{"type":"budget","event_id":"b","org_unit":"1110","year":2024,"category":"overtime",'
    b'"annual":1200,"monthly":[100,100,100,100,100,100,100,100,100,100,100,50]}',
]


@pytest.mark.parametrize("raw", QUOTED_REJECTIONS)
def test_events_doc_quotes_the_workers_rejection_reasons(raw: bytes, domain: DomainConfig) -> None:
    with pytest.raises(InvalidEvent) as rejected:
        parse_event(raw, domain)
    quoted = "`" + rejected.value.reason.replace("|", "\\|") + "`"
    assert quoted in EVENTS_DOC.read_text(encoding="utf-8"), "docs/events.md misquotes a reason"


def test_events_doc_csv_examples_publish_without_rejections(
    tmp_path: Path, domain: DomainConfig
) -> None:
    from services.publish import read_events

    blocks = re.findall(r"^```csv\n(.*?)^```", EVENTS_DOC.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 3
    for number, block in enumerate(blocks):
        path = tmp_path / f"example{number}.csv"
        path.write_text(block, encoding="utf-8")
        loaded = read_events(path, domain)
        assert loaded.rejections == []
        assert len(loaded.events) == block.count("\n") - 1
