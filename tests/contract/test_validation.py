"""parse_event: valid events come back typed; every kind of bad input gets a precise reason."""

from __future__ import annotations

import pytest

from contract.records import BudgetEvent, CostEvent, PeriodCloseEvent, VolumeEvent
from contract.validation import InvalidEvent, parse_event
from core.domain import DomainConfig
from tests.contract.fixtures import as_bytes, cost_event


def test_valid_events_of_every_type(domain: DomainConfig) -> None:
    assert isinstance(parse_event(as_bytes(cost_event()), domain), CostEvent)
    volume = {
        "type": "volume",
        "event_id": "v",
        "org_unit": "1110",
        "period": "2024-01",
        "measure": "home_care_hours",
        "value": 2500.5,
        "unit": "h",
    }
    assert isinstance(parse_event(as_bytes(volume), domain), VolumeEvent)
    budget = {
        "type": "budget",
        "event_id": "b",
        "org_unit": "1110",
        "year": 2024,
        "category": "overtime",
        "annual": 1200.0,
        "monthly": [100.0] * 12,
        "version": "namnd",
    }
    parsed = parse_event(as_bytes(budget), domain)
    assert isinstance(parsed, BudgetEvent) and parsed.target == "overtime"
    close = {"type": "period_close", "event_id": "p", "org_unit": "VON", "period": "2024-08"}
    assert isinstance(parse_event(as_bytes(close), domain), PeriodCloseEvent)


def test_account_is_mapped_to_its_category(domain: DomainConfig) -> None:
    event = parse_event(as_bytes(cost_event(category=None, account=5031)), domain)
    assert isinstance(event, CostEvent)
    assert event.category == "overtime"
    assert event.account == 5031


def test_negative_amounts_and_corrections_are_postings(domain: DomainConfig) -> None:
    event = parse_event(as_bytes(cost_event(amount_sek=-5000, corrects="c-0")), domain)
    assert isinstance(event, CostEvent) and event.amount_sek == -5000


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"type": "cost", ', "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (as_bytes({"event_id": "x"}), "field 'type': missing"),
        (as_bytes(cost_event(type="salary")), "field 'type': unknown event type"),
        (as_bytes(cost_event(period="2024-13")), "field 'period'"),
        (as_bytes(cost_event(amount_sek="many")), "field 'amount_sek'"),
        (as_bytes(cost_event(category="coffee")), "unknown category 'coffee'"),
        (as_bytes(cost_event(account=5031)), "exactly one of 'category' and 'account'"),
        (as_bytes(cost_event(category=None, account=99)), "field 'account': 99 maps to no"),
        (as_bytes(cost_event(org_unit="")), "field 'org_unit'"),
        (as_bytes(cost_event(event_id="")), "field 'event_id'"),
        (as_bytes(cost_event(amout_sek=5)), "field 'amout_sek': Extra inputs"),
        (
            b'{"type":"cost","event_id":"c","org_unit":"1110","period":"2024-01",'
            b'"category":"overtime","amount_sek":NaN}',
            "amount_sek",
        ),
        (
            as_bytes(
                {
                    "type": "budget",
                    "event_id": "b",
                    "org_unit": "1110",
                    "year": 2024,
                    "category": "overtime",
                    "annual": 1200.0,
                    "monthly": [1.0] * 12,
                }
            ),
            "adds up to 12.00, not to 'annual' 1200.00",
        ),
        (
            as_bytes(
                {
                    "type": "budget",
                    "event_id": "b",
                    "org_unit": "1110",
                    "year": 2024,
                    "category": "overtime",
                    "annual": 10.0,
                    "monthly": [1.0] * 11,
                }
            ),
            "field 'monthly'",
        ),
        (
            as_bytes(
                {
                    "type": "volume",
                    "event_id": "v",
                    "org_unit": "1110",
                    "period": "2024-01",
                    "measure": "Home Care",
                    "value": 1,
                    "unit": "h",
                }
            ),
            "field 'measure'",
        ),
        (
            as_bytes(
                {
                    "type": "volume",
                    "event_id": "v",
                    "org_unit": "1110",
                    "period": "2024-01",
                    "measure": "home_care_hours",
                    "value": -1,
                    "unit": "h",
                }
            ),
            "field 'value'",
        ),
    ],
)
def test_rejections_name_the_problem(domain: DomainConfig, raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, domain)
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    "field",
    ["event_id", "source", "org_unit"],
)
def test_personal_id_anywhere_is_rejected_without_echoing_it(
    domain: DomainConfig, field: str
) -> None:
    number = "19121212-1212"
    event = cost_event(**{field: f"x{number}"})
    with pytest.raises(InvalidEvent) as caught:
        parse_event(as_bytes(event), domain)
    assert f"the value at $.{field} contains" in caught.value.reason
    assert caught.value.kind == "personal_id" and caught.value.personal_id
    assert "1212" not in caught.value.reason


def test_personal_id_as_an_amount_is_rejected(domain: DomainConfig) -> None:
    with pytest.raises(InvalidEvent, match=r"the value at \$.amount_sek contains a Swedish"):
        parse_event(as_bytes(cost_event(amount_sek=1212121212)), domain)


def test_personal_id_in_broken_json_is_still_caught(domain: DomainConfig) -> None:
    with pytest.raises(InvalidEvent, match="the message contains a Swedish personal"):
        parse_event(b'{"note": "19121212-1212" ', domain)


ESCAPED = "".join(f"\\u{ord(c):04x}" for c in "191212121212")


@pytest.mark.parametrize(
    ("raw", "position"),
    [
        # The probe's cases: a key, escaped digits, a key inside a nested value.
        (b'{"19121212-1212": 1, "type": "cost"}', "a key at $ "),
        (('{"type":"cost","org_unit":"' + ESCAPED + '"}').encode(), "the value at $.org_unit "),
        (b'{"type":"cost","note":[1,2,{"x 121212-1212":1}]}', "a key at $.note[2] "),
        (b'{"type":"cost","source":{"121212 1212":1}}', "a key at $.source "),
        (b'{"a b":"1912 1212 1212"}', "the value at $[key 1] "),
        (b'{"amount_sek": 1.212121212e9}', "the value at $.amount_sek "),
        # A repeated key hides nothing: the value it overwrote is scanned too.
        (b'{"source":"121212-1212","source":"ok"}', "the value at $.source "),
        (b"\xff 19121212-1212", "the message "),
        (('{"type":"cost","org_unit":"' + ESCAPED).encode(), "the message "),
    ],
)
def test_identity_numbers_in_decoded_content_are_named_by_position(
    domain: DomainConfig, raw: bytes, position: str
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, domain)
    assert caught.value.reason.startswith(position + "contains a Swedish personal identity")
    assert caught.value.kind == "personal_id"
    for digits in ("1212", "121212", "1912"):
        assert digits not in caught.value.reason


def test_an_unknown_key_that_is_no_plain_name_is_named_by_position(domain: DomainConfig) -> None:
    event = cost_event()
    event["line\nbreak \x1b[31m"] = 1
    with pytest.raises(InvalidEvent) as caught:
        parse_event(as_bytes(event), domain)
    assert caught.value.reason == "the field at $[key 7]: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (as_bytes(cost_event(amount_sek=True)), "field 'amount_sek': must be a number, not true"),
        (
            as_bytes(
                {
                    "type": "volume",
                    "event_id": "v",
                    "org_unit": "1110",
                    "period": "2024-01",
                    "measure": "home_care_hours",
                    "value": False,
                    "unit": "h",
                }
            ),
            "field 'value': must be a number, not true or false",
        ),
        (
            as_bytes(cost_event(category=None, account=True)),
            "field 'account': must be a number, not true or false",
        ),
        (
            b'{"type":"cost","event_id":"c","org_unit":"1110","period":"2024-01",'
            b'"category":"overtime","amount_sek":58650.6,"amount_sek":58650601.0}',
            "duplicate key at $.amount_sek: a key may appear only once in an object",
        ),
        (
            b'{"type":"cost","event_id":"c","org_unit":"1110","period":"2024-01",'
            b'"category":"overtime","amount_sek":1,"source":{"a":1,"a":2}}',
            "duplicate key at $.source.a",
        ),
        (
            b'{"type":"cost","event_id":"c","org_unit":"1110","period":"2024-01",'
            b'"category":"overtime","amount_sek":Infinity}',
            "field 'amount_sek': must be a finite number",
        ),
        (
            b'{"type":"cost","event_id":"c","org_unit":"1110","period":"2024-01",'
            b'"category":"overtime","amount_sek":-1e400}',
            "field 'amount_sek': must be a finite number",
        ),
        (
            as_bytes(cost_event(amount_sek=1.7e308)),
            "field 'amount_sek': Input should be less than or equal to 10000000000000",
        ),
        (
            as_bytes(cost_event(amount_sek=-1.0000001e13)),
            "field 'amount_sek': Input should be greater than or equal to -10000000000000",
        ),
        (
            as_bytes(
                {
                    "type": "volume",
                    "event_id": "v",
                    "org_unit": "1110",
                    "period": "2024-01",
                    "measure": "home_care_hours",
                    "value": 2e9,
                    "unit": "h",
                }
            ),
            "field 'value': Input should be less than or equal to 1000000000",
        ),
        (
            as_bytes(
                {
                    "type": "budget",
                    "event_id": "b",
                    "org_unit": "1110",
                    "year": 2024,
                    "category": "overtime",
                    "annual": 12.0,
                    "monthly": [1.0, 1.0, True, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                }
            ),
            "field 'monthly[2]': must be a number, not true or false",
        ),
        (
            as_bytes(
                {
                    "type": "budget",
                    "event_id": "b",
                    "org_unit": "1110",
                    "year": 2024,
                    "measure": "home_care_hours",
                    "annual": -5.0,
                }
            ),
            "a measure's budget is a volume",
        ),
        (as_bytes(cost_event(category="x" * 100_000)), "field 'category': String should have"),
        (b"[" * 40 + b"]" * 40, "nested deeper than 32 levels"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 32 levels"),
        (b'{"a": "\\ud800"}', "field 'a': not valid Unicode (a lone surrogate)"),
        (b'{"a": 1} {"b": 2}', "not valid JSON: Extra data at line 1 column 10"),
        (b'{"a": ' + b"1" * 5000 + b"}", "not valid JSON: a number with too many digits"),
    ],
)
def test_strict_json_and_bounds(domain: DomainConfig, raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw, domain)
    assert reason in caught.value.reason
    assert len(caught.value.reason) <= 1_000


def test_bounds_themselves_are_accepted(domain: DomainConfig) -> None:
    assert parse_event(as_bytes(cost_event(amount_sek=-1e13)), domain)
    assert parse_event(as_bytes(cost_event(amount_sek=1e13)), domain)


@pytest.mark.parametrize(
    "overrides",
    [
        {"event_id": "3f2a9c1e-5b7a-4d2e-8f81-b3c40d2e6f81"},
        {"event_id": "pub-4f3a8112189876c91e5b7a0d2e6f81b3"},
        {"emitted_at": "2024-08-31T12:34:56.123456+00:00"},
        {"source": "ERP huvudbok 2024-08-31, verifikation 4711"},
        {"amount_sek": 1_051_500_000.0},
        {"amount_sek": -98_765_432.1},
        {"org_unit": "3130"},
        {"corrects": "hn-2024-03-0001"},
    ],
)
def test_ordinary_events_are_not_false_positives(
    domain: DomainConfig, overrides: dict[str, object]
) -> None:
    assert parse_event(as_bytes(cost_event(**overrides)), domain)
