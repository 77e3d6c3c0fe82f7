"""From raw Kafka message bytes to a validated contract-v1 event, or a precise rejection reason.

Order: size, UTF-8, strict JSON with the identity-number guard on the *decoded* content
(``contract.strict_json``), the models (``contract.records``), the domain (categories,
accounts). A reason names the field or position and the problem; it never contains a personal
identity number, nor any other key text that is not a short plain identifier.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError

from contract.output_records import AlertEvent
from contract.pii import PathStep
from contract.records import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    BudgetEvent,
    CostEvent,
    PeriodCloseEvent,
    VolumeEvent,
)
from contract.strict_json import StrictJsonError, decode_strict_bytes, field_name, pii_reason
from core.domain import DomainConfig

AnyEvent = CostEvent | VolumeEvent | BudgetEvent | PeriodCloseEvent
RejectionKind = Literal["personal_id", "bad_json", "schema"]

MAX_MESSAGE_BYTES = 1_000_000
#: No reason is longer (the longest real one, an unknown category with the known list, ≈ 250).
MAX_REASON_CHARS = 1_000

__all__ = [
    "MAX_MESSAGE_BYTES",
    "AnyEvent",
    "InvalidEvent",
    "parse_alert_event",
    "parse_event",
    "pii_reason",
    "validation_error_reason",
]


class InvalidEvent(Exception):
    """An event that is rejected to the dead-letter topic; ``reason`` says why and where,
    ``kind`` is the dead-letter counter's label (``personal_id``, ``bad_json``, ``schema``)."""

    def __init__(self, reason: str, kind: RejectionKind = "schema") -> None:
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[: MAX_REASON_CHARS - 1] + "…"
        super().__init__(reason)
        self.reason = reason
        self.kind = kind

    @property
    def personal_id(self) -> bool:
        """Rejected for an identity number: its bytes must never be kept anywhere."""
        return self.kind == "personal_id"


def _steps(loc: tuple[int | str, ...], value: Any) -> list[PathStep]:
    """pydantic's location as path steps, keys with their index in their object (so that a key
    that cannot be printed can still be named by position)."""
    steps: list[PathStep] = []
    for part in loc:
        if isinstance(part, int):
            steps.append(part)
            value = value[part] if isinstance(value, list) and 0 <= part < len(value) else None
            continue
        keys = list(value) if isinstance(value, dict) else []
        index = keys.index(part) if part in keys else len(keys)
        steps.append((part, index))
        value = value.get(part) if isinstance(value, dict) else None
    return steps


def validation_error_reason(err: ValidationError, document: Any = None) -> str:
    """The first three problems of a pydantic error by position and message only: pydantic's
    own text would quote the input, and a location may hold a key that is personal data.
    ``document`` (the decoded input) lets a key that cannot be printed be named by its place."""
    problems = []
    for item in err.errors(include_url=False, include_input=False, include_context=False)[:3]:
        kind = item["type"]
        loc = tuple(item["loc"])
        if loc and loc[0] in EVENT_TYPES:
            loc = loc[1:]  # the discriminator's branch name, not a field
        if kind in ("model_attributes_type", "model_type", "dict_type") and not loc:
            return "not a JSON object"
        if kind == "union_tag_not_found":
            return "field 'type': missing; expected one of " + ", ".join(EVENT_TYPES)
        if kind == "union_tag_invalid":
            return "field 'type': unknown event type; expected one of " + ", ".join(EVENT_TYPES)
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{field_name(_steps(loc, document))}: {message}" if loc else message)
    more = err.error_count() - 3
    return "; ".join(problems) + (f" (+{more} more)" if more > 0 else "")


def parse_event(raw: bytes, domain: DomainConfig) -> AnyEvent:
    """Validate one message. Returns the event model; a cost event always has ``category`` set."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEvent(
            f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES} bytes", "bad_json"
        )
    try:
        document = decode_strict_bytes(raw)
    except StrictJsonError as err:
        raise InvalidEvent(err.reason, err.kind) from None
    if not isinstance(document, dict):
        raise InvalidEvent("not a JSON object", "bad_json")
    try:
        event = EVENT_ADAPTER.validate_python(document)
    except ValidationError as err:
        raise InvalidEvent(validation_error_reason(err, document)) from None
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


def parse_alert_event(raw: bytes) -> AlertEvent:
    """An ``alert.v1`` event under the same rules as an input event (strict JSON, the guard,
    positions in reasons); :class:`InvalidEvent` with a reason that starts ``not an alert.v1
    event:``."""
    try:
        document = decode_strict_bytes(raw)
    except StrictJsonError as err:
        raise InvalidEvent(f"not an alert.v1 event: {err.reason}", err.kind) from None
    if not isinstance(document, dict):
        raise InvalidEvent("not an alert.v1 event: not a JSON object", "bad_json")
    try:
        return AlertEvent.model_validate(document)
    except ValidationError as err:
        reason = validation_error_reason(err, document)
        raise InvalidEvent(f"not an alert.v1 event: {reason}") from None
