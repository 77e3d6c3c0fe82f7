"""core.period: the one period type and parser."""

import pytest

from core.errors import UserError
from core.period import Period, PeriodError, parse_period_option


def test_a_period_parses_prints_orders_and_unpacks() -> None:
    august = Period.parse(" 2024-08 ")
    assert august == Period(2024, 8)
    assert str(august) == "2024-08"
    assert tuple(august) == (2024, 8)
    year, month = august
    assert (year, month) == (2024, 8)
    assert Period(2023, 12) < Period(2024, 1) < august
    assert min([august, Period(2024, 3)]) == Period(2024, 3)
    assert str(Period(987, 1)) == "0987-01"


@pytest.mark.parametrize(
    "text",
    ["2024-13", "2024-00", "2024-8", "24-08", "2024/08", "aug", "", "2024-08-01", "٢٠٢٤-08"],
)
def test_anything_else_is_a_bad_period_in_one_wording(text: str) -> None:
    with pytest.raises(PeriodError) as caught:
        Period.parse(text)
    assert str(caught.value) == f"bad period {text!r}, expected YYYY-MM, e.g. 2024-08"
    assert isinstance(caught.value, ValueError)


def test_a_month_outside_1_to_12_cannot_be_built() -> None:
    with pytest.raises(PeriodError, match="bad period '2024-13'"):
        Period(2024, 13)


def test_a_stored_key_must_be_exact() -> None:
    assert Period.parse_exact("2024-08") == Period(2024, 8)
    for text in (" 2024-08", "2024-08\n"):
        with pytest.raises(PeriodError):
            Period.parse_exact(text)


def test_an_option_names_itself_and_the_value() -> None:
    assert parse_period_option("--period", "2024-08") == Period(2024, 8)
    with pytest.raises(UserError) as caught:
        parse_period_option("--as-of", "2024-8")
    assert str(caught.value) == "--as-of '2024-8': expected YYYY-MM, e.g. 2024-08"
    assert caught.value.exit_code == 2
