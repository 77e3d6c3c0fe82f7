"""Dead letters: the record an invalid input message becomes, and the label it is counted by.

What a record keeps of the rejected bytes is decided in ``contract.dead_letter``: by default
their SHA-256 hash and length only (BUDGETVAKT_DEAD_LETTER_PAYLOAD=hash), bounded bytes when the
operator chose so, never bytes or a key that hold an identity number. Reasons come from
``contract.validation`` or the worker; they are redacted once more here, and the logs get the
coordinates and the reason only, never the payload.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from faust.types import EventT

from contract.dead_letter import (
    FULL_PAYLOAD_CAP_BYTES,
    MAX_RECORD_BYTES,
    PAYLOAD_SETTINGS,
    TRUNCATED_BYTES,
    PayloadSetting,
    key_fields,
    key_to_keep,
    payload_fields,
    safe_reason,
)
from streams.metrics import WorkerMetrics

log = structlog.get_logger(__name__)

SendRecord = Callable[[bytes | None, bytes], Awaitable[object]]  # (key, value) → sent

__all__ = [
    "FULL_PAYLOAD_CAP_BYTES",
    "MAX_RECORD_BYTES",
    "PAYLOAD_SETTINGS",
    "TRUNCATED_BYTES",
    "DeadLetters",
    "PayloadSetting",
    "dead_letter_record",
    "key_to_keep",
    "reason_kind",
]


def reason_kind(reason: str, err: Exception | None = None) -> str:
    """A small fixed set of label values for the dead-letter counter."""
    kind = getattr(err, "kind", None)
    if isinstance(kind, str) and kind:
        return kind
    text = reason.lower()
    if "personnummer" in text or "samordningsnummer" in text or "personal" in text:
        return "personal_id"
    if "json" in text or "utf-8" in text or "empty" in text:
        return "bad_json"
    if "topic" in text:
        return "wrong_topic"
    if "processing failed" in text:
        return "processing"
    return "schema"


def dead_letter_record(
    event: EventT,
    reason: str,
    now: datetime | None = None,
    *,
    payload: PayloadSetting = "hash",
    err: Exception | None = None,
) -> bytes:
    """The dead-letter record (JSON) of a rejected message; see ``docs/events.md``."""
    msg = event.message
    raw_value = bytes(msg.value) if isinstance(msg.value, bytes | bytearray) else b""
    raw_key = bytes(msg.key) if isinstance(msg.key, bytes | bytearray) else None
    personal_id = reason_kind(reason, err) == "personal_id"
    record = {
        "reason": safe_reason(reason),
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        # Keys and values are arbitrary bytes: base64 (contract.dead_letter).
        **key_fields(raw_key),
        **payload_fields(raw_value, payload, personal_id),
        "rejected_at": (now or datetime.now(UTC)).isoformat(),
    }
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


class DeadLetters:
    """Sends rejected input to the dead-letter topic, counts it and logs its coordinates.

    The dead letter's Kafka key is the original key when that may be shown
    (:func:`key_to_keep`), else none."""

    def __init__(
        self, send: SendRecord, metrics: WorkerMetrics, payload: PayloadSetting = "hash"
    ) -> None:
        self.send = send
        self.metrics = metrics
        self.payload = payload

    async def reject(self, event: EventT, reason: str, err: Exception | None = None) -> None:
        msg = event.message
        raw_key = bytes(msg.key) if isinstance(msg.key, bytes | bytearray) else None
        record = dead_letter_record(event, reason, payload=self.payload, err=err)
        await self.send(key_to_keep(raw_key), record)
        self.metrics.events.labels(msg.topic, "rejected").inc()
        self.metrics.dead_letters.labels(reason_kind(reason, err)).inc()
        # Only coordinates and the reason (which never holds a personal id), never the payload.
        log.warning(
            "event_rejected",
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            reason=safe_reason(reason),
        )
