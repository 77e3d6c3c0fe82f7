"""Swedish numbers, amounts, months and dates: the one parser and formatter (pure).

``−1 086,4``: the minus sign U+2212, a space as thousands separator and a decimal comma. The
parser reads what controllers and spreadsheets write (decimal comma or point, U+2212 or ``-``,
spaces as thousands separators); the formatters write what a controller reads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date

MINUS = "\u2212"
MONTH_NAMES_SV = (
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
)
# Swedish practice: a name of at most five letters is written out (mars, april, juni, juli),
# a longer one is cut to three (jan, aug, okt).
MONTH_ABBR_SV = tuple(name if len(name) <= 5 else name[:3] for name in MONTH_NAMES_SV)
# A chart's month axis has room for three letters a tick (``mar``, ``jun``): twelve ``april``-wide
# labels run into each other at the report's chart width.
MONTH_TICKS_SV = tuple(name[:3] for name in MONTH_NAMES_SV)

# Thousands separators: space, no-break space, narrow no-break space (what Excel and LibreOffice
# in Swedish put between digit groups).
_BLANKS = str.maketrans("", "", " \u00a0\u202f")
# One sign (+, -, U+2212), ASCII digits with one decimal point or comma, an optional exponent.
_NUMBER = re.compile(r"[+\-\u2212]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+\-]?\d+)?", re.ASCII)
_UNIT_WORDS = {"h": "timmar"}


def parse_number_sv(text: str) -> float:
    """``"1234.5"``, ``"1 234,5"``, ``"-12,50"``, ``"−3"``, ``"1e3"`` → float; ValueError else.

    Not a number here: both a comma and a point (``1.234,5`` is ambiguous), other scripts'
    digits, ``nan``/``inf`` and anything that is not finite.
    """
    cleaned = text.strip().translate(_BLANKS)
    if not _NUMBER.fullmatch(cleaned):
        raise ValueError(text)
    value = float(cleaned.replace(MINUS, "-").replace(",", "."))
    if not math.isfinite(value):  # 1e999
        raise ValueError(text)
    return value


def format_number_sv(value: float, decimals: int = 1, signed: bool = False) -> str:
    """``-1086.43`` → ``−1 086,4``; ``signed`` puts ``+`` before a positive value.

    A value that rounds to zero has no sign.
    """
    text = f"{abs(value):,.{decimals}f}".replace(",", " ").replace(".", ",")
    if round(abs(value), decimals) == 0:
        return text
    if value < 0:
        return f"{MINUS}{text}"
    return f"+{text}" if signed else text


def format_mnkr(value_sek: float, decimals: int = 1) -> str:
    """SEK as millions: ``-3_300_000`` → ``−3,3``."""
    return format_number_sv(value_sek / 1e6, decimals)


def format_pct(value: float, signed: bool = False) -> str:
    return f"{format_number_sv(value, 1, signed)} %"


def format_units(value: float, unit: str, signed: bool = False) -> str:
    """``1234, "h"`` → ``1 234 timmar``; other units are written as given."""
    return f"{format_number_sv(value, 0, signed)} {_UNIT_WORDS.get(unit, unit)}"


@dataclass(frozen=True)
class Money:
    """Amounts of one message in one unit: mnkr with one decimal, or whole tkr when every
    amount quoted is below 1 mnkr (an enhet's overtime of 45 tkr would read ``0,0 mnkr``)."""

    divisor: float
    decimals: int
    unit: str

    @classmethod
    def for_amounts(cls, *amounts: float) -> Money:
        if max((abs(a) for a in amounts), default=0.0) >= 1e6:
            return cls(1e6, 1, "mnkr")
        return cls(1e3, 0, "tkr")

    def __call__(self, sek: float, signed: bool = False) -> str:
        return f"{format_number_sv(sek / self.divisor, self.decimals, signed)} {self.unit}"

    def span(self, low: float, high: float) -> str:
        lo = format_number_sv(low / self.divisor, self.decimals)
        hi = format_number_sv(high / self.divisor, self.decimals)
        return f"{lo}–{hi} {self.unit}"


def month_sv(month: int) -> str:
    """``8`` → ``augusti``."""
    return MONTH_NAMES_SV[month - 1]


def ytd_sv(year: int, as_of_month: int) -> str:
    """``januari–augusti 2024`` (or ``januari 2024`` in January)."""
    if as_of_month == 1:
        return f"januari {year}"
    return f"januari–{month_sv(as_of_month)} {year}"


def date_sv(day: date) -> str:
    """``date(2024, 9, 1)`` → ``1 september 2024``."""
    return f"{day.day} {month_sv(day.month)} {day.year}"
