"""The output check (``streams.pii_egress``): logs, metric labels, produced events, mails and
webhook payloads never carry a personal identity number, and each hit is counted by where."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from email.message import EmailMessage
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry, Counter, generate_latest

from contract.pii import find_personal_ids
from services.logs import configure_logging
from streams.pii_egress import REDACTED, WHERE, GuardedRegistry, PiiEgress

# Tolvan Tolvansson's test personnummer (valid date and Luhn) in the spellings producers use,
# and a samordningsnummer (day + 60).
SPELLINGS = ["19121212-1212", "121212-1212", "191212121212", "1212121212", "19121212+1212"]
SAMORDNINGSNUMMER = "701063-2391"
SPACED = ["19121212 1212", "121212 1212", "1912 1212 1212"]
ALL_SPELLINGS = [*SPELLINGS, SAMORDNINGSNUMMER]


def blocked(registry: CollectorRegistry, where: str) -> float:
    value = registry.get_sample_value("budgetvakt_pii_blocked_total", {"where": where})
    assert value is not None
    return value


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def egress(registry: CollectorRegistry) -> PiiEgress:
    return PiiEgress(registry)


def assert_no_identity_number(text: str, number: str) -> None:
    assert number not in text
    assert number.replace(" ", "") not in text
    assert find_personal_ids(text) == []


def test_the_guard_sees_every_spelling_used_here() -> None:
    # The tests below are only as good as their inputs: each must be one the guard rejects.
    for spelling in ALL_SPELLINGS:
        assert find_personal_ids(f"x {spelling} y") == [spelling]


def test_every_where_is_exported_from_the_start(
    egress: PiiEgress, registry: CollectorRegistry
) -> None:
    for where in WHERE:
        assert blocked(registry, where) == 0
    with pytest.raises(ValueError, match="unknown egress point"):
        egress.count("somewhere")


# -- logs -------------------------------------------------------------------------------------


@pytest.fixture
def json_logs(egress: PiiEgress, capsys: pytest.CaptureFixture[str]) -> Any:
    configure_logging("json", "DEBUG", egress=egress)
    yield capsys
    configure_logging("json", "INFO")  # the process-wide default again


def _log_everything(number: str) -> None:
    log = structlog.get_logger("test")
    log.info("plain", org_unit=number)
    log.info(f"event text {number}")
    log.warning("nested", detail={"list": [1, {"deep": f"id={number}"}], number: "as a key"})
    log.info("as a number", value=int(number) if number.isdigit() else number)
    try:
        raise ValueError(f"field {number!r} is bad")
    except ValueError:
        log.exception("failed")


@pytest.mark.parametrize("number", [*ALL_SPELLINGS, *SPACED])
def test_log_events_are_redacted_keys_values_nested_and_exceptions(
    json_logs: Any, registry: CollectorRegistry, number: str
) -> None:
    _log_everything(number)
    err = json_logs.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert len(lines) == 5
    assert_no_identity_number(err, number)
    assert REDACTED in err
    assert lines[0]["org_unit"] == REDACTED
    assert lines[2]["detail"][REDACTED] == "as a key"
    assert "ValueError" in lines[4]["exception"]  # the traceback stays, only the number goes
    assert blocked(registry, "log") == 5


def test_clean_log_events_pass_unchanged_and_uncounted(
    json_logs: Any, registry: CollectorRegistry
) -> None:
    structlog.get_logger("test").info(
        "batch", event_id="6f1c2a3e-8b9d-4e5f-a1b2-c3d4e5f60718", amount_sek=1_234_567.5
    )
    line = json.loads(json_logs.readouterr().err)
    assert line["amount_sek"] == 1_234_567.5
    assert line["event_id"] == "6f1c2a3e-8b9d-4e5f-a1b2-c3d4e5f60718"
    assert blocked(registry, "log") == 0


def test_standard_library_log_records_are_redacted(
    json_logs: Any, registry: CollectorRegistry
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("test.stdlib.pii")
    logger.addHandler(handler)
    try:
        logger.warning("offending value %s in %s", "19121212-1212", "topic")
        logger.warning("clean %d", 1)
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == [f"offending value {REDACTED} in topic", "clean 1"]
    assert blocked(registry, "log") == 1


# -- metric labels ----------------------------------------------------------------------------


@pytest.mark.parametrize("number", ALL_SPELLINGS)
def test_a_label_value_with_an_identity_number_is_withheld_and_counted_once(
    egress: PiiEgress, registry: CollectorRegistry, number: str
) -> None:
    guarded = GuardedRegistry(egress)
    events = Counter("t_events", "test", ["org_unit"], registry=guarded)
    events.labels("1110").inc()
    events.labels(number).inc()
    for _ in range(3):  # every scrape withholds it; it counts once
        text = generate_latest(guarded).decode()
        assert_no_identity_number(text, number)
        assert 't_events_total{org_unit="1110"} 1.0' in text
    assert blocked(registry, "metric_label") == 1


# -- produced events --------------------------------------------------------------------------


def test_forecast_and_alert_events_with_an_identity_number_are_not_produced(
    egress: PiiEgress, registry: CollectorRegistry
) -> None:
    produced: list[tuple[str, str, bytes]] = []

    async def publish(topic: str, key: str, value: bytes) -> None:
        produced.append((topic, key, value))

    guarded = egress.guard_publish(publish, {"f": "forecast_event", "a": "alert_event"})

    async def main() -> None:
        await guarded("f", "1110", b'{"org_unit": "1110"}')
        await guarded("f", "191212121212", b'{"org_unit": "191212121212"}')
        await guarded("a", "1110", '{"message": "gäller 19121212-1212"}'.encode())
        await guarded("a", "1120", b'{"org_unit": "1120"}')

    asyncio.run(main())
    assert [(t, k) for t, k, _ in produced] == [("f", "1110"), ("a", "1120")]
    assert blocked(registry, "forecast_event") == 1
    assert blocked(registry, "alert_event") == 1


# -- mails and webhooks -----------------------------------------------------------------------


@pytest.mark.parametrize("number", ALL_SPELLINGS)
def test_a_mail_is_redacted_in_headers_and_every_text_part(
    egress: PiiEgress, registry: CollectorRegistry, number: str
) -> None:
    message = EmailMessage()
    message["Subject"] = f"Avvikelse {number}"
    message["From"] = "budgetvakt <budgetvakt@storvik.example>"
    message["To"] = "karin.holm@storvik.example"
    message.set_content(f"Hej!\nPersonen {number} syns här.\n")
    message.add_alternative(f"<p>Personen {number}</p>", subtype="html")
    egress.redact_email(message)
    text = message.as_string()
    assert_no_identity_number(text, number)
    assert REDACTED in str(message["Subject"])
    bodies = [part.get_content() for part in message.walk() if not part.is_multipart()]
    assert bodies == [f"Hej!\nPersonen {REDACTED} syns här.\n", f"<p>Personen {REDACTED}</p>\n"]
    assert blocked(registry, "email") == 1


def test_a_clean_mail_is_untouched(egress: PiiEgress, registry: CollectorRegistry) -> None:
    message = EmailMessage()
    message["Subject"] = "Prognos 2025: underskott −1 212 121 kr"
    message.set_content("Kostnadsställe 1110, 2025-03.\n")
    before = message.as_string()
    assert egress.redact_email(message).as_string() == before
    assert blocked(registry, "email") == 0


@pytest.mark.parametrize("number", ALL_SPELLINGS)
def test_a_webhook_payload_is_redacted(
    egress: PiiEgress, registry: CollectorRegistry, number: str
) -> None:
    payload = {"org_unit": "1110", "message": f"se {number}", "facts": [{number: 1}], "n": 3}
    cleaned = egress.redact_value("webhook", payload)
    assert_no_identity_number(json.dumps(cleaned, ensure_ascii=False), number)
    assert cleaned["org_unit"] == "1110" and cleaned["n"] == 3
    assert payload["message"] == f"se {number}"  # the caller's object is not changed
    assert blocked(registry, "webhook") == 1


def test_a_dead_letter_record_is_redacted_as_json(
    egress: PiiEgress, registry: CollectorRegistry
) -> None:
    record = json.dumps({"reason": "550 unknown 19121212-1212", "alerts": [{"m": "ok"}]}).encode()
    cleaned = json.loads(egress.redact_json("dead_letter", record))
    assert cleaned == {"reason": f"550 unknown {REDACTED}", "alerts": [{"m": "ok"}]}
    assert egress.redact_json("dead_letter", b'{"reason": "fine"}') == b'{"reason": "fine"}'
    assert (
        egress.redact_json("dead_letter", b"not json 121212-1212")
        == f"not json {REDACTED}".encode()
    )
    assert blocked(registry, "dead_letter") == 2
