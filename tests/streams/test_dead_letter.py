"""The dead-letter record: a hash by default, bytes only when chosen, bounded, no personnummer."""

from __future__ import annotations

import base64
import hashlib
import json
from types import SimpleNamespace
from typing import Any

import pytest

from contract.validation import InvalidEvent
from streams.dead_letter import (
    FULL_PAYLOAD_CAP_BYTES,
    MAX_RECORD_BYTES,
    TRUNCATED_BYTES,
    dead_letter_record,
    key_to_keep,
)

PERSONNUMMER = b"19121212-1212"
# aiokafka's (and Faust's) default max_request_size: a record must stay far below it.
PRODUCER_MAX_REQUEST_SIZE = 1_000_000


def letter(value: Any, key: Any = b"1110", **kwargs: Any) -> dict[str, Any]:
    message = SimpleNamespace(topic="t.cost", partition=1, offset=7, key=key, value=value)
    raw = dead_letter_record(
        SimpleNamespace(message=message),  # type: ignore[arg-type]
        kwargs.pop("reason", "field 'category': unknown category 'x'"),
        **kwargs,
    )
    assert len(raw) <= MAX_RECORD_BYTES
    record: dict[str, Any] = json.loads(raw)
    return record


def test_by_default_only_the_hash_and_the_length_are_kept() -> None:
    value = b'{"type":"cost","category":"x"}'
    record = letter(value)
    assert record["payload"] == "hash" and record["original"] is None
    assert record["original_sha256"] == hashlib.sha256(value).hexdigest()
    assert record["original_length"] == len(value)
    assert base64.b64decode(record["key"]) == b"1110"
    assert record["key_sha256"] == hashlib.sha256(b"1110").hexdigest()


@pytest.mark.parametrize(
    ("setting", "kept"), [("truncated", TRUNCATED_BYTES), ("full", FULL_PAYLOAD_CAP_BYTES)]
)
def test_a_huge_message_gets_a_bounded_record(setting: str, kept: int) -> None:
    # The probe's 900 kB cost event: its dead letter must stay sendable.
    value = b'{"type":"cost","source":"' + b"x" * 900_000 + b'"}'
    raw_record = dead_letter_record(
        SimpleNamespace(
            message=SimpleNamespace(topic="t", partition=0, offset=0, key=None, value=value)
        ),  # type: ignore[arg-type]
        "message of 900028 bytes exceeds 1000000 bytes",
        payload=setting,  # type: ignore[arg-type]
    )
    assert len(raw_record) < PRODUCER_MAX_REQUEST_SIZE / 2
    record = json.loads(raw_record)
    assert record["payload"] == "truncated"
    assert base64.b64decode(record["original"]) == value[:kept]
    assert record["original_length"] == len(value)


def test_full_keeps_a_small_message_byte_for_byte() -> None:
    value = b"\xff\xfe not utf-8"
    record = letter(value, payload="full")
    assert record["payload"] == "full"
    assert base64.b64decode(record["original"]) == value


def test_bytes_with_an_identity_number_are_never_kept() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in "191212121212").encode()
    for value in (b'{"source": "' + PERSONNUMMER + b'"}', b'{"org_unit": "' + escaped + b'"}'):
        for setting in ("truncated", "full"):
            rejected = InvalidEvent("the value at $.source contains …", "personal_id")
            record = letter(value, payload=setting, err=rejected)
            assert record["payload"] == "withheld" and record["original"] is None
            # Even without the worker's verdict, the bytes themselves are scanned.
            record = letter(value, payload=setting, reason="some other reason")
            assert record["payload"] == "withheld" and record["original"] is None


def test_a_key_with_an_identity_number_or_too_long_is_not_kept() -> None:
    assert key_to_keep(PERSONNUMMER) is None
    assert key_to_keep(b"k" * 300) is None
    assert key_to_keep(b"1110") == b"1110"
    record = letter(b"{}", key=PERSONNUMMER)
    assert record["key"] is None
    assert record["key_sha256"] == hashlib.sha256(PERSONNUMMER).hexdigest()
    assert "1212" not in json.dumps(record)


def test_a_reason_is_redacted_and_bounded_again() -> None:
    record = letter(b"{}", reason="processing failed: 19121212-1212 " + "x" * 5_000)
    assert "1212" not in record["reason"].replace("[personnummer]", "")
    assert len(record["reason"]) <= 1_000
