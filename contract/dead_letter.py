"""What a dead-letter record may keep of a rejected message: the pure part, shared by the
worker's dead letters (``streams.dead_letter``) and the notifier's (``services.notifier``).

The dead-letter topics are readable by more people than the ERP, so by default a record keeps a
SHA-256 hash and the length of the rejected bytes, never the bytes themselves
(``BUDGETVAKT_DEAD_LETTER_PAYLOAD=hash``). An operator who wants the bytes (to fix a producer)
chooses ``truncated`` (the first :data:`TRUNCATED_BYTES`) or ``full`` (up to
:data:`FULL_PAYLOAD_CAP_BYTES`); either way a record stays under :data:`MAX_RECORD_BYTES`, far
below the producer's ``max_request_size`` (1 MB), so that no message, however large, can make
its own dead letter unsendable. Bytes that hold an identity number are never kept, whatever
the setting (``payload: "withheld"``); nor is a key that holds one.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal, get_args

from contract.pii import contains_identity_number_in_raw, redact

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


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_to_keep(raw_key: bytes | None) -> bytes | None:
    """The original key when it may be shown: short and free of identity numbers."""
    if raw_key is None or len(raw_key) > MAX_KEY_BYTES or contains_identity_number_in_raw(raw_key):
        return None
    return raw_key


def safe_reason(reason: str) -> str:
    """The reason once more through the guard, and bounded."""
    text = redact(reason)
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 1] + "…"
    return text


def key_fields(raw_key: bytes | None) -> dict[str, object]:
    shown = key_to_keep(raw_key)
    return {
        "key": b64(shown) if shown is not None else None,
        "key_sha256": hashlib.sha256(raw_key).hexdigest() if raw_key is not None else None,
    }


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
    fields["original"] = b64(kept) if payload in ("full", "truncated") else None
    return fields
