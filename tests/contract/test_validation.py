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
    assert f"field '{field}'" in caught.value.reason
    assert "1212" not in caught.value.reason


def test_personal_id_as_an_amount_is_rejected(domain: DomainConfig) -> None:
    with pytest.raises(InvalidEvent, match="field 'amount_sek' contains a Swedish personal"):
        parse_event(as_bytes(cost_event(amount_sek=1212121212)), domain)


def test_personal_id_in_broken_json_is_still_caught(domain: DomainConfig) -> None:
    with pytest.raises(InvalidEvent, match="the message contains a Swedish personal"):
        parse_event(b'{"note": "19121212-1212" ', domain)
