"""The one guard against Swedish personal identity numbers (personnummer, samordningsnummer).

A match is a run of 10 or 12 digits that has

* a real calendar date (``YYMMDD`` or ``YYYYMMDD``, century 18, 19 or 20; for a
  samordningsnummer the day has 60 added), and
* a correct Luhn check digit over ``YYMMDDNNN``,

in any of its spellings: with or without a ``-`` or ``+`` (also a Unicode dash or minus) before
the last four digits, with whitespace (also non-breaking and zero-width spaces) between any two
digits, in any script's decimal digits. Callers scan *decoded* text, so JSON escapes
(``\\u0031…``) are seen as the digits they stand for; :func:`scan_raw` also decodes ``\\uXXXX``
escapes for input that is not valid JSON.

What is not a match, to keep false positives rare: digits that continue a longer digit run
(``9`` + a personnummer is an ordinary 11-digit number), a run inside a UUID or a 32-hex-digit
id (about one random UUID in 4 000 holds a date-and-Luhn-valid run of ten digits, and UUIDs and
hashes are the commonest event ids), dates (``2024-08-31``), ISO timestamps, amounts and
cost-centre ids. A window of digits must start and end at the edges of whitespace-separated
groups: ``2024 03 1110`` is three groups and only whole groups are joined.

Matches are never logged or echoed. :func:`find_identity_numbers` returns spans (for redaction);
:func:`identity_number_position` names where in a decoded JSON value one sits (``a key at
$.note[2]``, ``the value at $.org_unit``), never the text.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from itertools import accumulate
from typing import Any, Literal, NamedTuple

SAMORDNING_DAY_OFFSET = 60
REDACTED = "[personnummer]"
CENTURIES = frozenset({18, 19, 20})

# Separators allowed between two digits of one number: whitespace, and the invisible format
# characters a hostile or careless exporter may insert (soft hyphen, zero-width space/joiners,
# word joiner, BOM). A dash or plus (any Unicode dash, minus sign, fullwidth forms) is allowed
# once, before the last four digits only.
_SPACE = "\\s\u00ad\u200b\u200c\u200d\u2060\ufeff"
_DASH = "\\-+\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0b\uff0d"
# A chain: digit groups joined by separators. Possessive quantifiers: linear time on any input.
_CHAIN = re.compile(rf"\d++(?:(?=[{_SPACE}{_DASH}])[{_SPACE}]*+[{_DASH}]?+[{_SPACE}]*+\d++)*+")
_ONE_DIGIT = re.compile(r"\d")
_SEPARATOR = re.compile(r"(\D+)")  # inside a chain: whitespace, at most one dash
# Every character the chain's separators may hold except a dash: what is left is a dash.
_DELETE_SPACES: dict[int, None] = {
    c: None for c in range(0x3001) if re.fullmatch(rf"[{_SPACE}]", chr(c)) is not None
} | {0xFEFF: None}
_LONG_RUN = re.compile(rf"\d[\d{_SPACE}{_DASH}]{{8,}}\d")
_MONTH_DAY = r"(?:0[1-9]|1[0-2])(?:[0-2][0-9]|3[01]|[6-8][0-9]|9[01])"
# Overlapping candidates (a lookahead) in a string of ASCII digits.
_DATE_AT_10 = re.compile(rf"(?=[0-9]{{2}}{_MONTH_DAY}[0-9]{{4}})")
_DATE_AT_12 = re.compile(rf"(?=(?:18|19|20)[0-9]{{2}}{_MONTH_DAY}[0-9]{{4}})")
_HEX_TOKEN_CHARS = frozenset("0123456789abcdefABCDEF-")
_UUID_PARTS = (8, 4, 4, 4, 12)
# Hex ids by length: a UUID without dashes or MD5 (32), SHA-1 or a git commit (40), SHA-256 (64).
_HEX_ID_LENGTHS = frozenset({32, 40, 64})
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


class IdentityNumber(NamedTuple):
    """Where one identity number sits in a text: ``text[start:end]`` (never log that slice)."""

    start: int
    end: int
    kind: Literal["personnummer", "samordningsnummer"]


def luhn_check_digit(nine_digits: str) -> int:
    """The Luhn check digit of YYMMDDNNN (weights 2,1,2,1,…)."""
    total = 0
    for i, ch in enumerate(nine_digits):
        product = int(ch) * (2 if i % 2 == 0 else 1)
        total += product - 9 if product > 9 else product
    return (10 - total % 10) % 10


_CENTURY_PREFIXES = frozenset(str(c) for c in CENTURIES)
_MONTH_DAYS = {f"{m:02d}": calendar.monthrange(2000, m)[1] for m in range(1, 13)}  # Feb: 29
_DAYS = {f"{d:02d}": d for d in range(1, 32)} | {
    f"{d + SAMORDNING_DAY_OFFSET:02d}": d for d in range(1, 32)
}
_DOUBLED = {str(d): 2 * d - 9 if 2 * d > 9 else 2 * d for d in range(10)}
# Luhn weights 2,1 over a pair of digits: one lookup per pair (the guard's hot path).
_PAIRS = {f"{a}{b}": _DOUBLED[str(a)] + b for a in range(10) for b in range(10)}


def _kind(digits: str) -> Literal["personnummer", "samordningsnummer"] | None:
    """The kind of identity number ``digits`` (10 or 12 ASCII digits) is, or None."""
    century = None
    if len(digits) == 12:
        if digits[:2] not in _CENTURY_PREFIXES:
            return None
        century = digits[:2]
        digits = digits[2:]
    month_days = _MONTH_DAYS.get(digits[2:4])
    day = _DAYS.get(digits[4:6])
    if month_days is None or day is None or day > month_days:
        return None
    total = (
        _PAIRS[digits[0:2]]
        + _PAIRS[digits[2:4]]
        + _PAIRS[digits[4:6]]
        + _PAIRS[digits[6:8]]
        + _DOUBLED[digits[8]]
    )
    if (10 - total % 10) % 10 != int(digits[9]):
        return None
    if day == 29 and month_days == 29:  # 29 February: only in a leap year (either century)
        yy = int(digits[0:2])
        years = [int(century) * 100 + yy] if century else [1900 + yy, 2000 + yy]
        if not any(calendar.isleap(year) for year in years):
            return None
    return "samordningsnummer" if digits[4] in "6789" else "personnummer"


def _inside_hex_id(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] lies inside a UUID (8-4-4-4-12 hex digits) or a run of exactly
    32, 40 or 64 hex digits (a UUID without dashes, a hash), also after a prefix like ``pub-``."""
    left, right = start, end
    while left > 0 and text[left - 1] in _HEX_TOKEN_CHARS:
        left -= 1
    while right < len(text) and text[right] in _HEX_TOKEN_CHARS:
        right += 1
    if right - left < 32:
        return False
    parts: list[tuple[int, int]] = []
    position = left
    for part in text[left:right].split("-"):
        parts.append((position, position + len(part)))
        position += len(part) + 1
    for part_start, part_end in parts:
        if part_end - part_start in _HEX_ID_LENGTHS and part_start <= start and end <= part_end:
            return True
    for i in range(len(parts) - 4):
        lengths = tuple(e - s for s, e in parts[i : i + 5])
        if lengths == _UUID_PARTS and parts[i][0] <= start and end <= parts[i + 4][1]:
            return True
    return False


def _ascii_digits(text: str) -> str:
    return text if text.isascii() else "".join(str(int(ch)) for ch in text)


def _windows(text: str, chain: re.Match[str]) -> Iterator[IdentityNumber]:
    """Identity numbers made of whole digit groups of one chain, in time linear in the chain
    (the per-group work is done by C-level splits and scans; Python only sees candidates with
    a plausible month and day at a group boundary)."""
    chain_start = chain.start()
    parts = _SEPARATOR.split(chain.group())  # digits, separator, digits, …
    if len(parts) == 1:  # no separators: the whole run is the only candidate
        start, end = chain.span()
        if end - start in (10, 12):
            kind = _kind(_ascii_digits(parts[0]))
            if kind is not None and not _inside_hex_id(text, start, end):
                yield IdentityNumber(start, end, kind)
        return
    groups, separators = parts[0::2], parts[1::2]
    digits = _ascii_digits("".join(groups))
    # Digit offsets where a group starts (0, …) and ends (…, len(digits)).
    boundaries = list(accumulate(map(len, groups), initial=0))
    starts, ends = set(boundaries[:-1]), set(boundaries[1:])
    # Digit offsets of the group boundaries whose separator holds a dash or plus.
    dashes = [
        boundaries[k + 1]
        for k, separator in enumerate(separators)
        if separator.translate(_DELETE_SPACES)
    ]
    for pattern, length in ((_DATE_AT_10, 10), (_DATE_AT_12, 12)):
        for candidate in pattern.finditer(digits):
            begin = candidate.start()
            end_offset = begin + length
            if begin not in starts or end_offset not in ends:
                continue
            if dashes:
                inside = dashes[bisect_right(dashes, begin) : bisect_left(dashes, end_offset)]
                if inside and inside != [end_offset - 4]:
                    continue
            kind = _kind(digits[begin:end_offset])
            if kind is None:
                continue
            start, end = _text_span(chain.group(), chain_start, begin, end_offset)
            if not _inside_hex_id(text, start, end):
                yield IdentityNumber(start, end, kind)


def _text_span(chain_text: str, chain_start: int, begin: int, end: int) -> tuple[int, int]:
    """The text positions of the digits ``begin`` … ``end - 1`` of a chain (only for a hit)."""
    positions = [m.start() for m in _ONE_DIGIT.finditer(chain_text)]
    return chain_start + positions[begin], chain_start + positions[end - 1] + 1


def _is_fraction(text: str, start: int) -> bool:
    """Whether the digits at ``start`` are a decimal fraction (``0.3403134004``). Only a point:
    a comma also separates list items (``1,19121212-1212``)."""
    return start >= 2 and text[start - 1] == "." and text[start - 2].isdigit()


def _matches(text: str) -> Iterator[IdentityNumber]:
    for chain in _CHAIN.finditer(text):
        if chain.end() - chain.start() >= 10 and not _is_fraction(text, chain.start()):
            yield from _windows(text, chain)


def has_digit_chain(text: str) -> bool:
    """Whether ``text`` has a run of digits and separators, from a digit to a digit, at least ten
    characters long: a cheap necessary condition for an identity number in it or in any
    substring of it."""
    return _LONG_RUN.search(text) is not None


def find_identity_numbers(text: str) -> list[IdentityNumber]:
    """Every identity number in ``text`` as a span (overlapping spans possible); never log
    ``text[span]``."""
    return list(_matches(text))


def contains_identity_number_in_text(text: str) -> bool:
    if len(text) < 10 or _LONG_RUN.search(text) is None:  # most keys and values
        return False
    return next(_matches(text), None) is not None


def number_text(value: int | float) -> str | None:
    """The digits of a JSON number that could hold an identity number: its whole part, when that
    has 10 to 13 digits. A fraction's digits (``0.1912121212``, a computed forecast's decimals)
    are not an identity number in any spelling, and counting them would drop ordinary figures."""
    if isinstance(value, float) and (value != value or value in (_INF, -_INF)):
        return None
    whole = abs(int(value))
    return str(whole) if 10**9 <= whole < 10**13 else None


_INF = float("inf")


def _leaf_has_identity_number(value: object) -> bool:
    if isinstance(value, str):
        return contains_identity_number_in_text(value)
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        text = number_text(value)
        return text is not None and contains_identity_number_in_text(text)
    if isinstance(value, bytes | bytearray | memoryview):
        return contains_identity_number_in_raw(bytes(value))
    return contains_identity_number_in_text(str(value))


def contains_identity_number(value: object) -> bool:
    """Whether ``value`` holds an identity number anywhere: a string, a number's digits, bytes
    (see :func:`contains_identity_number_in_raw`), every key and value of a mapping, every item
    of a list, tuple or set, a pydantic model's fields; other objects by their ``str()``."""
    stack: list[object] = [value]
    seen: set[int] = set()
    while stack:
        item = stack.pop()
        if hasattr(item, "model_dump") and callable(item.model_dump):
            item = item.model_dump(mode="json")
        if isinstance(item, Mapping):
            if id(item) in seen:
                continue
            seen.add(id(item))
            for key, child in item.items():
                stack.append(key)
                stack.append(child)
        elif isinstance(item, list | tuple | set | frozenset):
            if id(item) in seen:
                continue
            seen.add(id(item))
            stack.extend(item)
        elif _leaf_has_identity_number(item):
            return True
    return False


def decode_json_escapes(text: str) -> str:
    r"""``\u0031`` → ``1``: what a JSON decoder would make of the escapes, for text that is not
    valid JSON (and so is not decoded)."""
    if "\\u" not in text:
        return text
    return _JSON_ESCAPE.sub(lambda m: chr(int(m[1], 16)), text)


def contains_identity_number_in_raw(raw: bytes | str) -> bool:
    """The scan for input that is not (valid) JSON: raw bytes as UTF-8 (undecodable bytes
    replaced), JSON ``\\uXXXX`` escapes decoded."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return contains_identity_number_in_text(text) or (
        "\\u" in text and contains_identity_number_in_text(decode_json_escapes(text))
    )


def redact(text: str) -> str:
    """The text with every identity number (any spelling) replaced by ``[personnummer]``."""
    spans = sorted((m.start, m.end) for m in _matches(text))
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        if start < last:  # overlaps the previous one
            if end > last:
                last = end
            continue
        out.append(text[last:start])
        out.append(REDACTED)
        last = end
    out.append(text[last:])
    return "".join(out)


def redact_value(value: Any) -> Any:
    """A copy of ``value`` with every identity number redacted: strings and mapping keys by
    :func:`redact`, numbers whose digits form one by ``[personnummer]``, containers item by
    item (lists and tuples stay lists and tuples); anything else unchanged unless its ``str()``
    holds one, then its redacted ``str()``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_value(v) for v in value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | bytes | bytearray):
        return REDACTED if _leaf_has_identity_number(value) else value
    if _leaf_has_identity_number(value):
        return redact(str(value))
    return value


def quote_safely(text: str, limit: int = 40) -> str:
    """``text`` quoted for an error message a user reads: ``repr`` (control characters escaped),
    cut to ``limit`` characters, or ``(redacted)`` when it holds an identity number."""
    if contains_identity_number_in_raw(text):
        return "(redacted)"
    if len(text) > limit:
        return repr(text[:limit]) + "…"
    return repr(text)


# --- Positions in decoded JSON ----------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

PathStep = int | tuple[str, int]  # a list index, or (key, index of the key in its object)


def key_is_printable(key: str) -> bool:
    """Whether a key may appear in a message as it is: a short identifier, no identity number."""
    return _PLAIN_KEY.fullmatch(key) is not None and not contains_identity_number_in_text(key)


def json_path(steps: tuple[PathStep, ...] | list[PathStep]) -> str:
    """``$.source.note[2]``; a key that is not a short plain identifier (or holds an identity
    number) is shown by its place in its object, ``$[key 3]`` (1-based), never as text."""
    out = ["$"]
    for step in steps:
        if isinstance(step, int):
            out.append(f"[{step}]")
        else:
            key, index = step
            out.append(f".{key}" if key_is_printable(key) else f"[key {index + 1}]")
    return "".join(out)


def _pairs(value: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """A decoded object's key/value pairs, repeated keys included (``contract.strict_json``)."""
    pairs = getattr(value, "all_pairs", None)
    return list(pairs) if pairs is not None else list(value.items())


def identity_number_position(value: Any) -> str | None:
    """Where the first identity number in a decoded JSON value sits: ``a key at $.note[2]``
    (a key of the object at that path) or ``the value at $.org_unit``; None when there is none.
    Keys are scanned, strings, and the digits of numbers."""
    stack: list[tuple[Any, tuple[PathStep, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if isinstance(item, Mapping):
            pairs = _pairs(item)
            children = []
            for index, (key, child) in enumerate(pairs):
                if _leaf_has_identity_number(key):
                    return f"a key at {json_path(path)}"
                children.append((child, (*path, (str(key), index))))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend(reversed([(child, (*path, i)) for i, child in enumerate(item)]))
        elif _leaf_has_identity_number(item):
            return f"the value at {json_path(path)}"
    return None


# --- Names kept for existing callers ----------------------------------------------------------


def contains_personal_id(text: str) -> bool:
    """Old name of :func:`contains_identity_number` for text (and any value)."""
    return contains_identity_number(text)


def find_personal_ids(text: str) -> list[str]:
    """The matching substrings, for tests only; never log what this returns."""
    return [text[m.start : m.end] for m in _matches(text)]
