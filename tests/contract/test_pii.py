"""The personnummer guard: catches real shapes with valid date and Luhn digit, little else."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.pii import (
    contains_personal_id,
    field_with_personal_id,
    find_personal_ids,
    luhn_check_digit,
    redact,
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


def test_redact_and_field_path_never_reveal_the_number() -> None:
    number = "19121212-1212"
    assert redact(f"x {number} y") == "x [personnummer] y"
    event = {"org_unit": "1110", "source": {"note": ["ok", f"pnr {number}"]}}
    assert field_with_personal_id(event) == "source.note[1]"
    assert field_with_personal_id({"amount_sek": 1212121212.0}) == "amount_sek"
    assert field_with_personal_id({"amount_sek": 1.5}) is None
