"""Dead letters: the record an invalid input message becomes, and the label it is counted by.

The dead-letter topic is readable by more people than the ERP, so by default a record keeps a
SHA-256 hash and the length of the rejected bytes, never the bytes themselves
(``BUDGETVAKT_DEAD_LETTER_PAYLOAD=hash``). An operator who wants the bytes (to fix a producer)
chooses ``truncated`` (the first :data:`TRUNCATED_BYTES`) or ``full`` (up to
:data:`FULL_PAYLOAD_CAP_BYTES`); either way a record stays under
:data:`MAX_RECORD_BYTES`, far below the producer's ``max_request_size`` (1 MB), so that no
message, however large, can make its own dead letter unsendable. Bytes that hold an identity
number are never kept, whatever the setting: a message rejected for one, or whose kept bytes or
key show one, gets the hash only (``payload: "withheld"``). Reasons come from
``contract.validation`` or the worker; they are redacted once more here, and the logs get the
coordinates and the reason only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal, get_args

import structlog
from faust.types import EventT

from contract.pii import contains_identity_number_in_raw, redact
from streams.metrics import WorkerMetrics

log = structlog.get_logger(__name__)

SendRecord = Callable[[bytes | None, bytes], Awaitable[object]]  # (key, value) → sent

#: What an operator lets a dead letter keep of the rejected value (BUDGETVAKT_DEAD_LETTER_PAYLOAD).
PayloadSetting = Literal["hash", "truncated", "full"]
PAYLOAD_SETTINGS: tuple[str, ...] = get_args(PayloadSetting)
#: What one record holds: no bytes (the setting), no bytes (an identity number), some, all.
PayloadKept = Literal["hash", "withheld", "truncated", "full"]
TRUNCATED_BYTES = 1_024
FULL_PAYLOAD_CAP_BYTES = 256 * 1024
#: Key bytes longer than this are not kept (a key is an org_unit, a few characters).
MAX_KEY_BYTES = 256
MAX_REASON_CHARS = 1_000
#: base64(256 KiB) ≈ 350 kB + reason, key and coordinates: the largest record, by construction.
MAX_RECORD_BYTES = 360_000


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


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_to_keep(raw_key: bytes | None) -> bytes | None:
    """The original key when it may be shown: short and free of identity numbers."""
    if raw_key is None or len(raw_key) > MAX_KEY_BYTES or contains_identity_number_in_raw(raw_key):
        return None
    return raw_key


def payload_fields(
    raw_value: bytes, setting: PayloadSetting = "hash", personal_id: bool = False
) -> dict[str, object]:
    """The record's fields about the rejected value: hash and length always, bytes as chosen."""
    fields: dict[str, object] = {
        "original_sha256": hashlib.sha256(raw_value).hexdigest(),
        "original_length": len(raw_value),
    }
    kept_bytes = {"hash": 0, "truncated": TRUNCATED_BYTES, "full": FULL_PAYLOAD_CAP_BYTES}[setting]
    kept = raw_value[:kept_bytes]
    payload: PayloadKept
    if setting == "hash":
        payload = "hash"
    elif personal_id or contains_identity_number_in_raw(kept):
        payload = "withheld"
    else:
        payload = "full" if len(kept) == len(raw_value) else "truncated"
    fields["payload"] = payload
    fields["original"] = _b64(kept) if payload in ("full", "truncated") else None
    return fields


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
    shown_key = key_to_keep(raw_key)
    safe_reason = redact(reason)
    if len(safe_reason) > MAX_REASON_CHARS:
        safe_reason = safe_reason[: MAX_REASON_CHARS - 1] + "…"
    record = {
        "reason": safe_reason,
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        # Keys and values are arbitrary bytes: base64.
        "key": _b64(shown_key) if shown_key is not None else None,
        "key_sha256": hashlib.sha256(raw_key).hexdigest() if raw_key is not None else None,
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
            reason=redact(reason)[:MAX_REASON_CHARS],
        )
