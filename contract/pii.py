"""Guard against Swedish personal identity numbers (personnummer, samordningsnummer) in events.

A match needs the usual shape (10 or 12 digits, optionally ``-`` or ``+`` before the last four),
a real calendar date (day + 60 for a samordningsnummer) and a correct Luhn check digit, so that
ordinary ids and amounts are rarely caught. Digits inside a longer digit run or inside a UUID
are not a personnummer: about one random UUID in 4 000 holds a date-and-Luhn-valid run of ten
digits, and UUIDs are the commonest event ids. Matches are never logged or echoed: callers get
the field that carried one, not the number.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from typing import Any

# Candidate runs first (cheap), then the exact shape: 12 or 10 digits, the century optional.
_RUN = re.compile(r"\d{6,8}[-+]?\d{4}")
_SHAPE = re.compile(
    r"(?P<century>1[89]|20)?(?P<yy>\d{2})(?P<mm>\d{2})(?P<dd>\d{2})[-+]?"
    r"(?P<serial>\d{3})(?P<check>\d)"
)
SAMORDNING_DAY_OFFSET = 60
_UUID = re.compile(r"[0-9a-f]{8}(-?)[0-9a-f]{4}\1[0-9a-f]{4}\1[0-9a-f]{4}\1[0-9a-f]{12}", re.I)
_UUID_CHARS = frozenset("0123456789abcdefABCDEF-")


def luhn_check_digit(nine_digits: str) -> int:
    """The Luhn check digit of YYMMDDNNN (weights 2,1,2,1,…)."""
    total = 0
    for i, ch in enumerate(nine_digits):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return (10 - total % 10) % 10


def _is_real_date(century: str | None, yy: int, mm: int, dd: int) -> bool:
    if not 1 <= mm <= 12:
        return False
    if dd > SAMORDNING_DAY_OFFSET:
        dd -= SAMORDNING_DAY_OFFSET
    if dd < 1:
        return False
    # Without a century the number may be from either; accept the date if either has it.
    years = [int(century) * 100 + yy] if century else [1900 + yy, 2000 + yy]
    return any(dd <= calendar.monthrange(year, mm)[1] for year in years)


def _inside_uuid(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] lies inside a token that is a whole UUID (hex, dashes optional)."""
    while start > 0 and text[start - 1] in _UUID_CHARS:
        start -= 1
    while end < len(text) and text[end] in _UUID_CHARS:
        end += 1
    return _UUID.fullmatch(text, start, end) is not None


def _matches(text: str) -> Iterator[re.Match[str]]:
    for run in _RUN.finditer(text):
        start, end = run.span()
        # A run embedded in a longer digit run is an ordinary number or id, not a personnummer.
        if (start > 0 and text[start - 1].isdigit()) or (end < len(text) and text[end].isdigit()):
            continue
        if _inside_uuid(text, start, end):
            continue
        match = _SHAPE.fullmatch(text, start, end)
        if match is None:
            continue
        yy, mm, dd = int(match["yy"]), int(match["mm"]), int(match["dd"])
        if not _is_real_date(match["century"], yy, mm, dd):
            continue
        nine = match["yy"] + match["mm"] + match["dd"] + match["serial"]
        if luhn_check_digit(nine) == int(match["check"]):
            yield match


def contains_personal_id(text: str) -> bool:
    return next(_matches(text), None) is not None


def find_personal_ids(text: str) -> list[str]:
    """The matching substrings, for tests and redaction; never log what this returns."""
    return [m.group(0) for m in _matches(text)]


def redact(text: str) -> str:
    """The text with every personal identity number replaced by ``[personnummer]``."""
    out, last = [], 0
    for match in _matches(text):
        out.append(text[last : match.start()])
        out.append("[personnummer]")
        last = match.end()
    out.append(text[last:])
    return "".join(out)


def field_with_personal_id(value: Any, path: str = "") -> str | None:
    """The dotted path of the first field of a decoded JSON value that carries a personal id."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if contains_personal_id(str(key)):
                return child
            found = field_with_personal_id(item, child)
            if found is not None:
                return found
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = field_with_personal_id(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return path or "(value)" if contains_personal_id(str(value)) else None
