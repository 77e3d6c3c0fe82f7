"""The personnummer guard: catches real shapes with valid date and Luhn digit, little else."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.pii import (
    contains_identity_number,
    contains_identity_number_in_raw,
    contains_personal_id,
    find_identity_numbers,
    find_personal_ids,
    identity_number_position,
    luhn_check_digit,
    redact,
    redact_value,
)


def make_id(yymmdd: str, serial: str = "987") -> str:
    """A Luhn-valid 10-digit number for a fictional date (test data only)."""
    return yymmdd + serial + str(luhn_check_digit(yymmdd + serial))


def test_luhn_digit_of_the_published_test_number() -> None:
    # Skatteverket's well-known test number 19121212-1212.
    assert luhn_check_digit("121212121") == 2


@pytest.mark.parametrize(
    "text",
    [
        "19121212-1212",
        "191212121212",
        "121212-1212",
        "121212+1212",
        "1212121212",
        "id " + make_id("811218") + " end",
        "20" + make_id("040229"),  # leap day in a 12-digit number
        make_id("811278"),  # samordningsnummer: day 18 + 60
        '{"amount_sek": ' + make_id("811218") + "}",
    ],
)
def test_catches_every_usual_form(text: str) -> None:
    assert contains_personal_id(text)
    assert find_personal_ids(text)


@pytest.mark.parametrize(
    "text",
    [
        "19121212-1213",  # wrong check digit
        "121212-1213",
        make_id("811318"),  # month 13
        make_id("810230"),  # 30 February
        make_id("811292"),  # samordning day 32
        make_id("811200"),  # day 0
        "20" + make_id("230229"),  # 29 February in a year that has none
        "9" + make_id("811218"),  # embedded in a longer digit run
        make_id("811218") + "5",
        "scn-cost-1110-substitutes-2024-03",
        "amount 1234567.50",
        "2024-03",
        "4f3a" + make_id("811218") + "c91e5b7a0d2e6f81b3",  # inside a UUID (32 hex)
        "4f3a" + make_id("811218")[:4] + "-" + make_id("811218")[4:8] + "-4c1e-8b7a-0d2e6f81b3c4",
    ],
)
def test_ignores_wrong_dates_checksums_and_embedded_runs(text: str) -> None:
    assert not contains_personal_id(text)


@given(st.integers(min_value=0, max_value=10**10 - 1))
def test_random_ten_digit_numbers_with_a_wrong_check_digit_pass(number: int) -> None:
    digits = f"{number:010d}"
    wrong = (luhn_check_digit(digits[:9]) + 1 + number % 9) % 10
    assert not contains_personal_id(digits[:9] + str(wrong))


def test_most_random_ten_digit_numbers_are_not_caught() -> None:
    rng = random.Random(20241)
    caught = sum(contains_personal_id(f"{rng.randrange(10**10):010d}") for _ in range(20_000))
    # Only a valid date (≈ 30 %, with samordningsnummer days) with the right check digit (10 %).
    assert caught / 20_000 < 0.05


@pytest.mark.parametrize(
    "text",
    [
        "ab" + make_id("811218"),  # glued to letters, but no UUID
        "4f3a" + make_id("811218") + "c91e5b7a0d2e6f81",  # too short for a UUID
        "4f3a" + make_id("811218") + "9c1e5b7a0d2e6f81b3 " + make_id("811218"),
    ],
)
def test_a_number_next_to_hex_letters_that_is_no_uuid_is_still_caught(text: str) -> None:
    assert contains_personal_id(text)


def test_random_uuids_are_not_caught() -> None:
    import uuid

    rng = random.Random(20242)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(40_000)]
    assert not any(contains_personal_id(u.hex) or contains_personal_id(str(u)) for u in ids)


def test_redact_and_position_never_reveal_the_number() -> None:
    number = "19121212-1212"
    assert redact(f"x {number} y") == "x [personnummer] y"
    event = {"org_unit": "1110", "source": {"note": ["ok", f"pnr {number}"]}}
    assert identity_number_position(event) == "the value at $.source.note[1]"
    assert identity_number_position({"amount_sek": 1212121212.0}) == "the value at $.amount_sek"
    assert identity_number_position({"amount_sek": 1.5}) is None
    assert identity_number_position({"note": [1, 2, {number: 1}]}) == "a key at $.note[2]"
    # A key that is not a plain identifier is named by its place, not its text.
    assert identity_number_position({"x y": {"a": number}}) == "the value at $[key 1].a"


NUMBER_12 = "191212121212"  # Skatteverket's test number, 12 digits
SAMORDNING = "20" + make_id("811278")  # day 18 + 60


def spellings(twelve: str) -> list[str]:
    """Ways a person writes (or an exporter mangles) one identity number."""
    ten = twelve[2:]
    return [
        twelve,
        ten,
        f"{twelve[:8]}-{twelve[8:]}",
        f"{ten[:6]}-{ten[6:]}",
        f"{ten[:6]}+{ten[6:]}",
        f"{twelve[:8]} {twelve[8:]}",
        f"{ten[:6]} - {ten[6:]}",
        f"{twelve[:4]} {twelve[4:6]} {twelve[6:8]} {twelve[8:]}",
        " ".join(twelve),
        "\t".join(ten),
        f"{twelve[:8]}\u00a0{twelve[8:]}",  # no-break space
        f"{twelve[:8]}\u2013{twelve[8:]}",  # en dash
        f"{twelve[:6]}\u200b{twelve[6:]}",  # zero-width space
        twelve.translate(str.maketrans("0123456789", "０１２３４５６７８９")),  # fullwidth digits
        f"pnr:{ten}",
        f"{twelve}.",
        f"0 {twelve}",  # another number before it, split off by a space
    ]


@pytest.mark.parametrize("number", [NUMBER_12, SAMORDNING, "20" + make_id("040229")])
def test_every_spelling_is_caught_and_redacted(number: str) -> None:
    for spelled in spellings(number):
        text = f"anteckning {spelled} slut"
        assert contains_identity_number(text), repr(spelled)
        assert find_identity_numbers(text), repr(spelled)
        redacted = redact(text)
        assert "[personnummer]" in redacted and not contains_identity_number(redacted)
        assert redacted.startswith("anteckning ") and redacted.endswith(" slut")


def test_numbers_bytes_containers_and_models_are_scanned() -> None:
    assert contains_identity_number(1212121212)
    assert contains_identity_number(-1212121212)
    assert contains_identity_number(1212121212.0)
    assert contains_identity_number(1.212121212e9)
    assert contains_identity_number(b'{"x": "19121212-1212"}')
    assert contains_identity_number({"a": [1, {"b": ("x", "121212-1212")}]})
    assert contains_identity_number({"121212-1212": 1})
    assert not contains_identity_number({"a": [1, 2.5, True, None, "2024-08-31"]})
    assert not contains_identity_number(12121212120)  # 11 digits: a longer run
    cyclic: list[object] = []
    cyclic.append(cyclic)
    assert not contains_identity_number(cyclic)


def test_escaped_digits_in_text_that_is_not_json_are_caught() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in NUMBER_12)
    assert "1912" not in escaped
    assert contains_identity_number_in_raw('{"broken": "' + escaped)
    assert contains_identity_number_in_raw(b"\xff\xfe 19121212-1212")


def test_redact_value_keeps_the_shape() -> None:
    value = {"msg": "pnr 121212-1212", "121212-1212": [1212121212, 5, ("ok",)], "n": None}
    redacted = redact_value(value)
    assert redacted == {
        "msg": "pnr [personnummer]",
        "[personnummer]": ["[personnummer]", 5, ("ok",)],
        "n": None,
    }


@pytest.mark.parametrize(
    "text",
    [
        "2024-08-31",
        "2024-08-31T12:34:56.123456+00:00",
        "2024-12-31T23:59:59Z",
        "1110",
        "VON",
        "3130",
        "1 051 500 000",  # an amount with thousands separators
        "1234567.50",
        "-98765432.10",
        "hn-2024-03-0001",
        "erp-2024-08-31-0042",  # a date and a row number: no dash allowed inside the date
        "scn-cost-1110-substitutes-2024-03",
        "pub-4f3a" + make_id("811218") + "c91e5b7a0d2e6f81b3",  # a derived id: 32 hex
        "budgetvakt.cost.v1",
        "2024-03",
        "version KF 2024",
    ],
)
def test_ordinary_values_pass(text: str) -> None:
    assert not contains_identity_number(text)
    assert redact(text) == text


def test_ordinary_amounts_and_uuids_pass() -> None:
    import uuid

    rng = random.Random(20243)
    amounts = [round(rng.uniform(-1e9, 1e9), 2) for _ in range(20_000)]
    assert not any(contains_identity_number(a) for a in amounts if abs(a) < 1e9)
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(5_000)]
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(20_000)]
    assert not any(contains_identity_number(h) for h in hashes)
    assert not any(contains_identity_number(h[:40]) for h in hashes)
    assert not any(
        contains_identity_number({"event_id": i, "emitted_at": "2024-08-31"}) for i in ids
    )


def test_old_names_still_work() -> None:
    assert contains_personal_id("19121212-1212")
    assert find_personal_ids("x 19121212-1212") == ["19121212-1212"]


@pytest.mark.parametrize(
    "figure", [0.3403134004, 12345.3403134004, "0.3403134004", "1.121212121212"]
)
def test_decimal_fractions_are_not_identity_numbers(figure: object) -> None:
    """A computed figure's decimals (a forecast, an interval's hit rate) are no spelling of an
    identity number; counting them would drop ordinary forecast events."""
    assert not contains_identity_number(figure)


@pytest.mark.parametrize("figure", [1212121212, 1212121212.0, "1,19121212-1212", "1212121212.5"])
def test_whole_numbers_and_listed_numbers_still_count(figure: object) -> None:
    assert contains_identity_number(figure)
