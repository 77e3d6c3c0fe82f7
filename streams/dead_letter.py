"""Dead letters: the record an invalid input message becomes, and the label it is counted by.

A dead-letter record carries the original key and value as base64 (they may hold what we
refuse to read, e.g. a personnummer), the message's coordinates and the reason. The reason
comes from ``contract.validation`` or the worker and never holds a personal identity number;
the logs get the coordinates and the reason only, never the payload.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import structlog
from faust.types import EventT

from streams.metrics import WorkerMetrics

log = structlog.get_logger(__name__)

SendRecord = Callable[[bytes | None, bytes], Awaitable[object]]  # (key, value) → sent


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


def dead_letter_record(event: EventT, reason: str, now: datetime | None = None) -> bytes:
    msg = event.message
    raw_value = msg.value if isinstance(msg.value, bytes | bytearray) else b""
    raw_key = msg.key if isinstance(msg.key, bytes | bytearray) else None
    record = {
        "reason": reason,
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        # Keys and values are arbitrary bytes and may hold what we refuse to read: base64.
        "key": base64.b64encode(raw_key).decode("ascii") if raw_key is not None else None,
        "original": base64.b64encode(raw_value).decode("ascii"),
        "rejected_at": (now or datetime.now(UTC)).isoformat(),
    }
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


class DeadLetters:
    """Sends rejected input to the dead-letter topic, counts it and logs its coordinates."""

    def __init__(self, send: SendRecord, metrics: WorkerMetrics) -> None:
        self.send = send
        self.metrics = metrics

    async def reject(self, event: EventT, reason: str, err: Exception | None = None) -> None:
        msg = event.message
        await self.send(msg.key, dead_letter_record(event, reason))
        self.metrics.events.labels(msg.topic, "rejected").inc()
        self.metrics.dead_letters.labels(reason_kind(reason, err)).inc()
        # Only coordinates and the reason (which never holds a personal id), never the payload.
        log.warning(
            "event_rejected",
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            reason=reason,
        )
