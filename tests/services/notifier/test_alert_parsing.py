"""The notifier reads alert events with the same strict JSON and identity-number guard as the
worker, and its dead letter keeps a hash by default; reasons name positions, never input."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from services.notifier.engine import malformed_record, parse_alert
from tests.services.notifier.fixtures import make_alert


def test_a_good_alert_parses() -> None:
    alert = make_alert("1110")
    assert parse_alert(json.dumps(alert).encode()).event_id == alert["event_id"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sequence": True}, "field 'sequence': must be a number, not true or false"),
        ({"values": {"forecast": False}}, "field 'values.forecast': must be a number"),
        ({"values": {"121212-1212": 1.0}}, "a key at $.values contains a Swedish personal"),
        ({"org_unit_name": "pnr 1912 1212 1212"}, "the value at $.org_unit_name contains"),
        ({"line\nbreak": 1}, "the field at $[key 16]: Extra inputs are not permitted"),
    ],
)
def test_bad_alerts_are_refused_by_position(change: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_alert(json.dumps({**make_alert("1110"), **change}).encode())
    message = str(caught.value)
    assert message.startswith("not an alert.v1 event: ")
    assert reason in message
    assert "1212" not in message


def test_repeated_keys_and_nan_are_refused() -> None:
    body = json.dumps(make_alert("1110"))[:-1]
    with pytest.raises(ValueError, match=r"duplicate key at \$\.severity"):
        parse_alert((body + ', "severity": "critical"}').encode())
    with pytest.raises(ValueError, match=r"field 'values.x': must be a finite number"):
        parse_alert((body.replace('"values": {', '"values": {"x": NaN, ') + "}").encode())


def test_the_notifier_dead_letter_keeps_a_hash_and_never_an_identity_number() -> None:
    value = json.dumps({**make_alert("1110"), "org_unit_name": "19121212-1212"}).encode()
    record = SimpleNamespace(topic="t", partition=0, offset=3, key=b"19121212-1212", value=value)
    for setting in ("hash", "full"):
        letter = json.loads(
            malformed_record(record, "not an alert.v1 event: …", setting)  # type: ignore[arg-type]
        )
        assert letter["original"] is None and letter["key"] is None
        assert letter["original_length"] == len(value)
        assert letter["payload"] == ("hash" if setting == "hash" else "withheld")
