"""``budgetvakt schemas``: JSON Schemas (draft 2020-12) of event contract v1, the dead letter and
the two events budgetvakt publishes (``forecast.v1``, ``alert.v1``).

The schemas are generated from the pydantic models in ``contract.records`` (the worker validates
with those models) and ``contract.output_records`` (the worker writes with those), written with
sorted keys so that the files in ``config/schemas/`` change only when the contract does; a test
regenerates them and compares bytes.

Two rules of the models are added by hand because pydantic cannot express model validators:
``type`` is required on the wire (the worker dispatches on it), and a cost event carries exactly
one of ``category``/``account`` and a budget exactly one of ``category``/``measure``. That
``monthly`` adds up to ``annual`` (within 1 SEK) and that a category is known to the config are
checked by the worker only.

For the output events one rule is added: every field is required. The worker serialises every
field of the model (``null`` where a value does not apply), so a consumer may rely on all of them
being present; the models' defaults only matter to code that builds an event. Their field
descriptions live here (:data:`OUTPUT_FIELD_DESCRIPTIONS`), for consumers reading the schema.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.output_records import AlertEvent, ForecastEvent
from contract.records import EVENT_ADAPTER, EVENT_TYPES
from core.errors import UserError
from core.settings import DEFAULT_CONFIG_DIR

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_BASE = "https://budgetvakt.example/schemas/"
DEFAULT_SCHEMA_DIR = DEFAULT_CONFIG_DIR / "schemas"
BASE64_PATTERN = r"^[A-Za-z0-9+/]*={0,2}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

EVENT_DESCRIPTIONS: dict[str, str] = {
    "cost": (
        "A ledger posting for one cost centre and month, signed as booked: cost positive, "
        "revenue negative. A correction is a posting like any other. Carries exactly one of "
        "'category' and 'account' (mapped to a category by config/accounts.yaml)."
    ),
    "volume": "An activity volume (hours, residents, placement days, ...) for one cost centre "
    "and month.",
    "budget": (
        "An annual budget for one cost centre, year and category (SEK) or measure (volume). "
        "Optional 'monthly' (12 numbers adding up to 'annual' within 1); without it the "
        "category's periodisation profile splits 'annual'. A later budget event for the same "
        "org_unit, year and category replaces the earlier one."
    ),
    "period_close": "The month is closed in the ledger for this cost centre.",
}
EVENT_UNION_DESCRIPTION = (
    "Any budgetvakt event, contract v1: one JSON object per Kafka message, key = org_unit. "
    "'type' selects the event type."
)
# (field a, field b, JSON type of a, JSON type of b): exactly one of the two must be non-null.
EXACTLY_ONE_OF: dict[str, tuple[str, str, str, str]] = {
    "cost": ("category", "account", "string", "integer"),
    "budget": ("category", "measure", "string", "string"),
}


# The events the worker publishes: schema name → (model, default topic, what it is).
OUTPUT_EVENTS: dict[str, tuple[type[BaseModel], str, str]] = {
    "forecast": (
        ForecastEvent,
        "budgetvakt.forecast.v1",
        "A node's full-year forecast of one cost category, 'total' (all cost categories, revenues "
        "included: the net cost) or one volume measure, published by the worker when the node's "
        "figures change. Key: org_unit.",
    ),
    "alert": (
        AlertEvent,
        "budgetvakt.alert.v1",
        "A deviation rule's state change for one series (rule, org unit, category or measure, "
        "year): it started firing, changed severity or resolved. Published by the worker only "
        "on a change. Key: org_unit.",
    ),
}
_LEVELS = "namnd, forvaltning, avdelning or enhet (an org unit missing from org.yaml: enhet)"
OUTPUT_FIELD_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "forecast": {
        "type": "Always 'forecast'.",
        "event_id": "Unique per published forecast: 'forecast|org_unit|kind|category|as_of|"
        "computed_at'.",
        "org_unit": "The node: an enhet (cost centre) or a roll-up (avdelning, förvaltning, "
        "nämnd) of config/org.yaml. A cost centre missing from it keeps its own id and rolls "
        "up into the node 'omappad' (level avdelning).",
        "level": f"The node's level: {_LEVELS}.",
        "kind": "'cost' (SEK, revenues negative) or 'measure' (a volume in its own unit).",
        "category": "A cost category of config/categories.yaml, 'total' (the node's net cost "
        "over all categories) or, for kind 'measure', a measure id.",
        "year": "The forecast year.",
        "as_of": "YYYY-MM: the last month with actuals in the forecast (the latest month with a "
        "cost booked anywhere in the organisation).",
        "preliminary": "True when as_of is later than the latest closed period (the month is "
        "still being booked); false once it is closed. Always false before any period close.",
        "actual_ytd": "Actual January..as_of, SEK or the measure's unit.",
        "budget_full_year": "Full-year budget (sum of the periodised monthly budget); null "
        "without a budget line.",
        "full_year": "Full-year forecast (prognos helår): actuals so far plus the forecast of "
        "the remaining months.",
        "low": "Lower bound of the full-year forecast's 80 % interval.",
        "high": "Upper bound of the full-year forecast's 80 % interval.",
        "deviation": "budget_full_year − full_year: negative is a forecast deficit (underskott) "
        "for a cost; null without a budget.",
        "model": "The forecast model of a single series, or 'sum' for a roll-up.",
        "volume_effect": "Part of the deviation explained by volume (volume-driven categories "
        "with a volume plan only), else null.",
        "price_effect": "Part of the deviation explained by price/productivity "
        "(volume_effect + price_effect = deviation), else null.",
        "computed_at": "When the worker computed the forecast (ISO 8601, UTC).",
    },
    "alert": {
        "type": "Always 'alert'.",
        "event_id": "Unique per state change: 'alert_id@sequence'. A consumer that has seen an "
        "event_id has seen this change.",
        "alert_id": "Stable per rule and series: 'rule|org_unit|category|year'.",
        "sequence": "1, 2, … per alert_id, one per state change (fired, severity changed, "
        "worsened, improved, resolved); the highest sequence is the current state.",
        "rule": "The rule's id in config/rules.yaml.",
        "severity": "info < warning < critical. On 'resolved': the severity the alert had.",
        "status": "'firing' (started, or changed severity), 'worsened' (still firing, the "
        "measured excess grew by at least the rule's step since this alert's previous event), "
        "'improved' (still firing, fell by at least a step; for digests) or 'resolved'.",
        "org_unit": "The node the alert is about (an enhet or a roll-up).",
        "org_unit_name": "The node's name from config/org.yaml (the id when it has none).",
        "level": f"The node's level: {_LEVELS}.",
        "category": "The cost category, 'total' or measure the rule looked at.",
        "period": "YYYY-MM: the month the evaluation was as of.",
        "values": "The numbers the message quotes, by name (e.g. budget, actual_ytd, budget_ytd, "
        "forecast, low, high, deviation, deviation_pct, volume_effect, price_effect, excess, "
        "previous_value, interval_coverage); which names depends on the rule (docs/events.md).",
        "message": "The message for the recipient, in Swedish, numbers in Swedish format.",
        "emitted_at": "When the worker decided the change (ISO 8601, UTC).",
        "title": "Swedish subject-ready line: node, what, period, amount and direction, e.g. "
        "'Äldreomsorg: vikarier 69,2 mnkr t.o.m. augusti, 22,7 mnkr över budget'.",
        "change": "Swedish: what changed since this alert's previous event, e.g. "
        "'underskottet har ökat från 3,9 till 14,5 mnkr sedan februari'; null on a first firing.",
        "year_closed": "True when the evaluation is as of December's close: the figures are the "
        "year's outcome (utfall), not a forecast.",
        "resolution": "On 'resolved': 'within_limits' (the measured quantity is back within its "
        "limits) or 'year_closed' (the year is over); null otherwise.",
        "method": "The forecast model of the node the rule read (e.g. 'auto:ets', 'sum' for a "
        "roll-up); null when the rule reads no forecast.",
    },
}


class DeadLetterRecord(BaseModel):
    """What the worker writes to the dead-letter topic for every rejected message.

    By default the record keeps the rejected value's SHA-256 hash and length, not its bytes
    (BUDGETVAKT_DEAD_LETTER_PAYLOAD=hash); with truncated or full it keeps the first 1 KiB or
    up to 256 KiB, never bytes that hold a personal identity number. The Kafka key of the dead
    letter is the original message's key when that is short and free of identity numbers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(
        min_length=1,
        max_length=1_000,
        description="Why the message was rejected: the field or position and the problem. "
        "Never contains a personal identity number.",
    )
    topic: str = Field(min_length=1, description="Topic the rejected message was read from.")
    partition: int = Field(ge=0, description="Partition of the rejected message.")
    offset: int = Field(ge=0, description="Offset of the rejected message in its partition.")
    key: str | None = Field(
        pattern=BASE64_PATTERN,
        description="The rejected message's key, base64; null when it had none, or when it is "
        "longer than 256 bytes or holds a personal identity number.",
    )
    key_sha256: str | None = Field(
        pattern=SHA256_PATTERN,
        description="SHA-256 of the rejected message's key bytes (hex); null when it had none.",
    )
    original_sha256: str = Field(
        pattern=SHA256_PATTERN,
        description="SHA-256 of the rejected message's value bytes (hex): find the message "
        "by its coordinates and compare.",
    )
    original_length: int = Field(ge=0, description="Length of the rejected value in bytes.")
    payload: Literal["hash", "withheld", "truncated", "full"] = Field(
        description="What 'original' holds: 'hash' no bytes (the operator's setting, the "
        "default), 'withheld' no bytes (they hold a personal identity number), 'truncated' the "
        "first bytes only, 'full' all of them."
    )
    original: str | None = Field(
        pattern=BASE64_PATTERN,
        description="The rejected value's bytes kept (see 'payload'), base64; null when none.",
    )
    rejected_at: datetime = Field(description="When the worker rejected it (ISO 8601, UTC).")


def _non_null(field: str, json_type: str) -> dict[str, Any]:
    return {"required": [field], "properties": {field: {"type": json_type}}}


def _wire_rules(event_type: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Add the rules pydantic keeps in validators to one event type's object schema."""
    schema["required"] = sorted({*schema.get("required", []), "type"})
    if event_type in EXACTLY_ONE_OF:
        first, second, first_type, second_type = EXACTLY_ONE_OF[event_type]
        schema["anyOf"] = [_non_null(first, first_type), _non_null(second, second_type)]
        schema["not"] = {
            "required": [first, second],
            "properties": {first: {"type": first_type}, second: {"type": second_type}},
        }
    schema["description"] = EVENT_DESCRIPTIONS[event_type]
    return schema


def _document(name: str, title: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        **schema,
        "$schema": SCHEMA_DIALECT,
        "$id": f"{SCHEMA_ID_BASE}{name}.v1.json",
        "title": title,
        "description": description,
    }


def _output_schema(name: str) -> dict[str, Any]:
    """An output event's schema: every field required and described (see the module doc)."""
    model, topic, description = OUTPUT_EVENTS[name]
    schema = model.model_json_schema(mode="validation")
    descriptions = OUTPUT_FIELD_DESCRIPTIONS[name]
    if set(descriptions) != set(schema["properties"]):
        raise AssertionError(f"OUTPUT_FIELD_DESCRIPTIONS[{name!r}] does not match {model.__name__}")
    for field, text in descriptions.items():
        schema["properties"][field]["description"] = text
    schema["required"] = sorted(schema["properties"])
    return _document(
        name, f"budgetvakt {name} event v1", f"{description} Default topic: {topic}.", schema
    )


def build_schemas() -> dict[str, dict[str, Any]]:
    """File name → schema document: every input event type, their union, the dead letter and
    the two output events."""
    documents: dict[str, dict[str, Any]] = {}
    for event_type, model in EVENT_TYPES.items():
        schema = _wire_rules(event_type, model.model_json_schema(mode="validation"))
        documents[f"{event_type}.v1.json"] = _document(
            event_type,
            f"budgetvakt {event_type} event v1",
            EVENT_DESCRIPTIONS[event_type],
            schema,
        )
    union = EVENT_ADAPTER.json_schema(mode="validation")
    by_model_name = {model.__name__: event_type for event_type, model in EVENT_TYPES.items()}
    for model_name, definition in union.get("$defs", {}).items():
        if model_name in by_model_name:
            _wire_rules(by_model_name[model_name], definition)
    documents["event.v1.json"] = _document(
        "event", "budgetvakt event v1", EVENT_UNION_DESCRIPTION, union
    )
    documents["dead_letter.v1.json"] = _document(
        "dead_letter",
        "budgetvakt dead letter v1",
        str(DeadLetterRecord.__doc__).split("\n\n")[0].strip()
        + " The Kafka key is the original message's key when it is short and free of identity"
        " numbers.",
        DeadLetterRecord.model_json_schema(mode="validation"),
    )
    for name in OUTPUT_EVENTS:
        documents[f"{name}.v1.json"] = _output_schema(name)
    return documents


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every schema into ``out_dir`` (created if missing); returns the paths written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{out_dir}: cannot create the directory: {err.strerror}") from None
    written = []
    for name, schema in sorted(build_schemas().items()):
        path = out_dir / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written
