"""The JSON Schemas in config/schemas/ match the models, accept valid and refuse invalid events,
and every example in docs/events.md is a valid event (so the producer documentation stays true).
The schemas of what the worker publishes (forecast.v1, alert.v1) accept the events the worker's
own code builds, and the documented examples of those too.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from contract.output_records import AlertEvent, ForecastEvent
from contract.records import EVENT_TYPES
from contract.schemas import DEFAULT_SCHEMA_DIR, OUTPUT_EVENTS, DeadLetterRecord, write_schemas
from contract.validation import InvalidEvent, parse_event
from core.domain import DomainConfig
from core.settings import DEFAULT_CONFIG_DIR, REPO_ROOT
from forecasts.deviations import AlertBook, evaluate
from forecasts.live import TOTAL, LeafSeries, forecast_organisation
from services.config.rules import load_rules
from streams.forecasting import forecast_event
from tests.contract.fixtures import as_bytes, cost_event

EVENTS_DOC = REPO_ROOT / "docs" / "events.md"
# ```json blocks are input events; ```json dead-letter blocks are dead-letter records;
# ```json forecast and ```json alert blocks are events the worker publishes.
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
    assert {"forecast.v1.json", "alert.v1.json"} <= set(committed)
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
    import hashlib

    from streams.app import dead_letter_record

    original = b'{"type":"cost","amount_sek":'
    message = SimpleNamespace(
        topic="budgetvakt.cost.v1", partition=3, offset=41, key=b"1110", value=original
    )
    for setting in ("hash", "truncated", "full"):
        raw = dead_letter_record(
            SimpleNamespace(message=message),  # type: ignore[arg-type]
            "not valid JSON: Expecting value at line 1 column 29",
            now=datetime(2024, 4, 3, 6, 0, tzinfo=UTC),
            payload=setting,  # type: ignore[arg-type]
        )
        record = json.loads(raw)
        assert list(validator("dead_letter").iter_errors(record)) == []
        parsed = DeadLetterRecord.model_validate_json(raw)
        assert parsed.original_sha256 == hashlib.sha256(original).hexdigest()
        assert parsed.original_length == len(original)
        if setting == "hash":
            assert parsed.original is None and parsed.payload == "hash"
        else:
            assert parsed.original is not None and base64.b64decode(parsed.original) == original
            assert parsed.payload == "full"
        assert parsed.key is not None and base64.b64decode(parsed.key) == b"1110"
        assert (parsed.topic, parsed.partition, parsed.offset) == ("budgetvakt.cost.v1", 3, 41)

    keyless = SimpleNamespace(message=SimpleNamespace(**{**vars(message), "key": None}))
    record = json.loads(dead_letter_record(keyless, "empty message (no value)"))  # type: ignore[arg-type]
    assert record["key"] is None and record["key_sha256"] is None
    assert validator("dead_letter").is_valid(record)
    assert not validator("dead_letter").is_valid({**record, "extra": 1})


def doc_examples() -> list[tuple[str, str]]:
    text = EVENTS_DOC.read_text(encoding="utf-8")
    return [(m["tag"].strip(), m["body"]) for m in FENCED_JSON.finditer(text)]


def test_events_doc_has_an_example_of_every_event_type() -> None:
    types = {json.loads(body).get("type") for tag, body in doc_examples() if tag == ""}
    assert types >= set(EVENT_TYPES)
    tags = [tag for tag, _ in doc_examples()]
    assert "dead-letter" in tags
    assert tags.count("forecast") >= 1 and tags.count("alert") >= 2  # a firing and a resolved


def example_id(tag: str, body: str) -> str:
    example = json.loads(body)
    if tag == "dead-letter":
        return f"{tag}:{example.get('offset')}"
    return f"{tag}:{example.get('event_id')}" if tag else str(example.get("event_id"))


@pytest.mark.parametrize(
    "tag,body", [pytest.param(tag, body, id=example_id(tag, body)) for tag, body in doc_examples()]
)
def test_events_doc_examples_are_valid(tag: str, body: str, domain: DomainConfig) -> None:
    example = json.loads(body)
    if tag == "dead-letter":
        assert list(validator("dead_letter").iter_errors(example)) == []
        DeadLetterRecord.model_validate(example)
        return
    if tag in OUTPUT_EVENTS:
        assert list(validator(tag).iter_errors(example)) == []
        check_output_semantics(tag, example)
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
    as_bytes(cost_event(amount_sek=True)),
    as_bytes(cost_event(amount_sek=2e13)),
    b'{"type":"volume","event_id":"v","org_unit":"1110","period":"2024-03",'
    b'"measure":"home_care_hours","value":2e9,"unit":"h"}',
    b'{"type":"cost","event_id":"c","org_unit":"1110","period":"2024-03","category":"salaries",'
    b'"amount_sek":58650.6,"amount_sek":58650601.0}',
    b'{"type":"cost","event_id":"c","org_unit":"1110","period":"2024-03","category":"salaries",'
    b'"amount_sek":1,"note":[1,2,{"19121212-1212":true}]}',
    as_bytes(cost_event(**{"amount sek": 5})),
    b"[" * 40 + b"]" * 40,
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
    from services.batch.publish import read_events

    blocks = re.findall(r"^```csv\n(.*?)^```", EVENTS_DOC.read_text(encoding="utf-8"), re.M | re.S)
    assert len(blocks) == 3
    for number, block in enumerate(blocks):
        path = tmp_path / f"example{number}.csv"
        path.write_text(block, encoding="utf-8")
        loaded = read_events(path, domain)
        assert loaded.rejections == []
        assert len(loaded.events) == block.count("\n") - 1


# --- What the worker publishes: forecast.v1 and alert.v1 -------------------------------------

OUTPUT_YEAR = 2024
OUTPUT_AS_OF = 6
NOW = datetime(2024, 7, 8, 6, 0, tzinfo=UTC)


def _history(level: float, through: int) -> dict[str, float]:
    """Three years of a steady monthly level with a small deterministic wobble."""
    out = {}
    for year in range(OUTPUT_YEAR - 2, OUTPUT_YEAR + 1):
        for month in range(1, 13):
            if year == OUTPUT_YEAR and month > through:
                break
            out[f"{year}-{month:02d}"] = level * (1 + 0.02 * math.sin(year * 12 + month))
    return out


def _leaves(budget_factor: float) -> list[LeafSeries]:
    """Two enheter of one avdelning with costs, a revenue and hours; budgets × budget_factor."""
    leaves = []
    for unit, level in (("1110", 4e6), ("1120", 3e6)):
        for category, share in (("salaries", 1.0), ("substitutes", 0.2), ("revenue_fees", -0.1)):
            monthly = level * share
            budget = [monthly * budget_factor] * 12
            leaves.append(
                LeafSeries(unit, "cost", category, _history(monthly, OUTPUT_AS_OF), budget)
            )
        hours = [12_000.0 * budget_factor] * 12
        leaves.append(
            LeafSeries(unit, "measure", "home_care_hours", _history(12_000, OUTPUT_AS_OF), hours)
        )
    return leaves


@functools.cache
def _worker_output() -> tuple[list[ForecastEvent], list[AlertEvent]]:
    """forecast.v1 and alert.v1 events as the worker builds them: the organisation forecast,
    forecast_event() per node, the shipped rules evaluated over budget (fire), then on a budget
    well above the forecast (resolve)."""
    from services.config.domain import load_domain_config

    domain = load_domain_config(DEFAULT_CONFIG_DIR)
    rules = load_rules(DEFAULT_CONFIG_DIR, domain)
    over = forecast_organisation(_leaves(0.9), domain, OUTPUT_YEAR, OUTPUT_AS_OF)
    under = forecast_organisation(_leaves(1.2), domain, OUTPUT_YEAR, OUTPUT_AS_OF)
    forecasts = [
        forecast_event(node, preliminary, NOW)
        for node in over.nodes
        for preliminary in (False, True)
    ]
    book = AlertBook()
    alerts = evaluate(rules, over, None, book, domain, NOW)
    alerts += evaluate(rules, under, None, book, domain, NOW)
    return forecasts, alerts


def check_output_semantics(name: str, event: dict[str, Any]) -> None:
    """What events.md says about the fields holds for the event (not only its shape)."""
    if name == "forecast":
        parsed = ForecastEvent.model_validate(event)
        assert parsed.low <= parsed.full_year <= parsed.high
        if parsed.budget_full_year is not None:
            assert parsed.deviation is not None
            assert parsed.deviation == pytest.approx(parsed.budget_full_year - parsed.full_year)
        assert parsed.as_of[:4] == str(parsed.year)
        assert parsed.event_id.startswith(
            f"forecast|{parsed.org_unit}|{parsed.kind}|{parsed.category}|{parsed.as_of}|"
        )
        if parsed.volume_effect is not None and parsed.price_effect is not None:
            assert parsed.deviation is not None
            assert parsed.volume_effect + parsed.price_effect == pytest.approx(parsed.deviation)
        return
    alert = AlertEvent.model_validate(event)
    assert alert.event_id == f"{alert.alert_id}@{alert.sequence}"
    rule, org_unit, category, year = alert.alert_id.split("|")
    assert (rule, org_unit, category) == (alert.rule, alert.org_unit, alert.category)
    assert year == alert.period[:4]


def test_output_schemas_describe_every_field_and_require_it() -> None:
    for name, (model, topic, _) in OUTPUT_EVENTS.items():
        schema = json.loads((DEFAULT_SCHEMA_DIR / f"{name}.v1.json").read_text(encoding="utf-8"))
        assert set(schema["properties"]) == set(model.model_fields)
        assert schema["required"] == sorted(model.model_fields)
        assert all(spec["description"] for spec in schema["properties"].values())
        assert topic in schema["description"] and schema["additionalProperties"] is False


def test_forecast_events_of_the_worker_validate() -> None:
    forecasts, _ = _worker_output()
    kinds = {(event.kind, event.category == TOTAL) for event in forecasts}
    assert kinds == {("cost", True), ("cost", False), ("measure", False)}
    assert any(event.volume_effect is None for event in forecasts)
    for event in forecasts:
        wire = json.loads(event.model_dump_json())
        assert list(validator("forecast").iter_errors(wire)) == [], event.event_id
        check_output_semantics("forecast", wire)
        assert ForecastEvent.model_validate_json(event.model_dump_json()) == event


def test_alert_events_of_the_worker_validate() -> None:
    _, alerts = _worker_output()
    statuses = {(event.status, event.severity) for event in alerts}
    assert ("firing", "critical") in statuses and any(s == "resolved" for s, _ in statuses)
    for event in alerts:
        wire = json.loads(event.model_dump_json())
        assert list(validator("alert").iter_errors(wire)) == [], event.event_id
        check_output_semantics("alert", wire)
        assert AlertEvent.model_validate_json(event.model_dump_json()) == event


def _broken(name: str, change: dict[str, Any], drop: str | None = None) -> dict[str, Any]:
    forecasts, alerts = _worker_output()
    event = forecasts[0] if name == "forecast" else alerts[0]
    wire = {**json.loads(event.model_dump_json()), **change}
    return {k: v for k, v in wire.items() if k != drop}


INVALID_OUTPUT: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "forecast without preliminary": ("forecast", {}, "preliminary"),
    "forecast without volume_effect (the worker always writes it)": (
        "forecast",
        {},
        "volume_effect",
    ),
    "forecast with an extra field": ("forecast", {"interval": 0.8}, None),
    "forecast as_of not a month": ("forecast", {"as_of": "2024-13"}, None),
    "forecast of kind volume": ("forecast", {"kind": "volume"}, None),
    "forecast amount as text": ("forecast", {"full_year": "1 094,6"}, None),
    "alert with status open": ("alert", {"status": "open"}, None),
    "alert with sequence 0": ("alert", {"sequence": 0}, None),
    "alert with severity high": ("alert", {"severity": "high"}, None),
    "alert value as text": ("alert", {"values": {"deviation": "−3,3"}}, None),
    "alert without message": ("alert", {}, "message"),
}


@pytest.mark.parametrize(
    ("name", "change", "drop"), INVALID_OUTPUT.values(), ids=list(INVALID_OUTPUT)
)
def test_output_schemas_refuse_what_the_worker_never_writes(
    name: str, change: dict[str, Any], drop: str | None
) -> None:
    assert validator(name).is_valid(_broken(name, {}))
    assert not validator(name).is_valid(_broken(name, change, drop))


def test_output_and_input_schemas_do_not_accept_each_other() -> None:
    forecasts, alerts = _worker_output()
    assert not validator("event").is_valid(json.loads(forecasts[0].model_dump_json()))
    assert not validator("alert").is_valid(json.loads(forecasts[0].model_dump_json()))
    assert not validator("forecast").is_valid(json.loads(alerts[0].model_dump_json()))
