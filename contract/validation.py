"""From raw Kafka message bytes to a validated contract-v1 event, or a precise rejection reason.

The reason names the field and the problem; it never contains a personal identity number.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from contract.pii import contains_personal_id, field_with_personal_id
from contract.records import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    BudgetEvent,
    CostEvent,
    PeriodCloseEvent,
    VolumeEvent,
)
from core.domain import DomainConfig

AnyEvent = CostEvent | VolumeEvent | BudgetEvent | PeriodCloseEvent

MAX_MESSAGE_BYTES = 1_000_000


class InvalidEvent(Exception):
    """An event that is rejected to the dead-letter topic; ``reason`` says why and where."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def pii_reason(place: str) -> str:
    return (
        f"{place} contains a Swedish personal identity number (redacted); "
        "events must not carry personal data"
    )


def _pii_reason(text: str) -> str:
    try:
        where = field_with_personal_id(json.loads(text))
    except ValueError:
        where = None
    return pii_reason(f"field '{where}'" if where else "the message")


def _format_validation_error(err: ValidationError) -> str:
    problems = []
    for item in err.errors(include_url=False, include_input=False)[:3]:
        kind = item["type"]
        loc = [str(p) for p in item["loc"]]
        if loc and loc[0] in EVENT_TYPES:
            loc = loc[1:]  # the discriminator's branch name, not a field
        if kind == "json_invalid":
            return f"not valid JSON: {item['msg']}"
        if kind in ("model_attributes_type", "model_type", "dict_type"):
            return "not a JSON object"
        if kind == "union_tag_not_found":
            return "field 'type': missing; expected one of " + ", ".join(EVENT_TYPES)
        if kind == "union_tag_invalid":
            return "field 'type': unknown event type; expected one of " + ", ".join(EVENT_TYPES)
        field = ".".join(loc)
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"field '{field}': {message}" if field else message)
    return "; ".join(problems)


def parse_event(raw: bytes, domain: DomainConfig) -> AnyEvent:
    """Validate one message. Returns the event model; a cost event always has ``category`` set."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidEvent(f"not UTF-8 text (byte {err.start})") from None
    if contains_personal_id(text):
        raise InvalidEvent(_pii_reason(text))
    try:
        event = EVENT_ADAPTER.validate_json(raw)
    except ValidationError as err:
        raise InvalidEvent(_format_validation_error(err)) from None
    if isinstance(event, CostEvent):
        if event.category is None:
            assert event.account is not None  # the model requires one of the two
            mapped = domain.category_for_account(event.account)
            if mapped is None:
                raise InvalidEvent(f"field 'account': {event.account} maps to no category")
            return event.model_copy(update={"category": mapped})
        if event.category not in domain.categories:
            raise InvalidEvent(_unknown_category(event.category, domain))
    elif (
        isinstance(event, BudgetEvent)
        and event.category is not None
        and event.category not in domain.categories
    ):
        raise InvalidEvent(_unknown_category(event.category, domain))
    return event


def _unknown_category(category: str, domain: DomainConfig) -> str:
    return f"field 'category': unknown category '{category}'; known: {', '.join(domain.categories)}"
