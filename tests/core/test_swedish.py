"""core.swedish: the one Swedish number parser, the formatters and the one month table."""

from datetime import date

import pytest

from core.swedish import (
    MONTH_ABBR_SV,
    MONTH_NAMES_SV,
    MONTH_TICKS_SV,
    Money,
    date_sv,
    format_number_sv,
    format_units,
    parse_number_sv,
    ytd_sv,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # What the forecast CSV reader took.
        ("1234.5", 1234.5),
        ("1 234,5", 1234.5),
        ("-12,50", -12.5),
        ("\u22123", -3.0),
        ("1e3", 1000.0),
        ("5,", 5.0),
        (",5", 0.5),
        (" 1 234 ", 1234.0),
        # What publish took: Swedish grouping with no-break spaces, a plain float.
        ("1\u00a0234\u00a0567,89", 1234567.89),
        ("\u221243,6", -43.6),
        ("+7", 7.0),
        ("1.5E-2", 0.015),
        # Narrow no-break space (Excel's Swedish export).
        ("12\u202f000", 12000.0),
    ],
)
def test_numbers_as_controllers_and_spreadsheets_write_them(text: str, value: float) -> None:
    assert parse_number_sv(text) == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    [
        "1.234,5",  # both separators: ambiguous
        "1,2,3",
        "",
        "-",
        "lots",
        "nan",
        "inf",
        "1e999",  # not finite
        "1_000",
        "١٢",  # other scripts' digits
        "--5",
        "\u2212-5",
        # The old forecast parser's sign class [+-−] spanned U+002B..U+2212: any of these
        # passed as a "sign" (and only float() happened to reject most of them).
        "a5",
        "/5",
        "05-",
        "\u00d75",  # ×
        "\u20135",  # en dash
        "\u00b15",  # ±
    ],
)
def test_anything_else_is_not_a_number(text: str) -> None:
    with pytest.raises(ValueError):
        parse_number_sv(text)


def test_formatting_round_trips_through_the_parser() -> None:
    for value in (-1086.43, 0.04, 1234567.0, -0.01):
        text = format_number_sv(value, 2)
        assert parse_number_sv(text) == pytest.approx(round(value, 2))
    assert format_number_sv(-1086.43) == "\u22121 086,4"
    assert format_number_sv(3.0, signed=True) == "+3,0"
    assert format_units(1234, "h") == "1 234 timmar"
    assert Money.for_amounts(45_000)(45_000) == "45 tkr"
    assert Money.for_amounts(3_300_000).span(-3_300_000, 1_000_000) == "\u22123,3–1,0 mnkr"


def test_one_month_table_and_its_abbreviations() -> None:
    assert len(MONTH_NAMES_SV) == 12 and MONTH_NAMES_SV[2] == "mars"
    # The abbreviations the report tables have always shown.
    assert MONTH_ABBR_SV == (
        "jan",
        "feb",
        "mars",
        "april",
        "maj",
        "juni",
        "juli",
        "aug",
        "sep",
        "okt",
        "nov",
        "dec",
    )
    # The chart axes' ticks, as the charts have always shown them.
    assert (
        tuple(["jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"])
        == MONTH_TICKS_SV
    )
    assert ytd_sv(2024, 8) == "januari–augusti 2024"
    assert ytd_sv(2024, 1) == "januari 2024"
    assert date_sv(date(2024, 9, 1)) == "1 september 2024"
