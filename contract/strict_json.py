"""Strict JSON for everything budgetvakt reads from outside: one decoder, one set of rules.

``json.loads`` alone accepts what a contract must not: a key twice in one object (the last
value silently wins, so ``"amount_sek": 58650.6, "amount_sek": 58650601.0`` counts the second),
``NaN``/``Infinity`` and numbers that overflow to infinity (``1e400``), and nesting deep enough
to exhaust the stack. :func:`decode_strict` decodes, then checks the decoded value in one pass:

1. identity numbers anywhere (keys, strings, the digits of numbers: ``contract.pii``), first,
   so that a message with a personnummer is always classified as such;
2. nesting deeper than :data:`MAX_DEPTH`;
3. a key repeated in one object;
4. a number that is not finite.

Every reason names a *position* (``$.monthly[3]``, ``a key at $.source``), never the text of a
key or value that could hold personal data.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from contract.pii import (
    PathStep,
    contains_identity_number_in_raw,
    contains_identity_number_in_text,
    has_digit_chain,
    identity_number_position,
    json_path,
    number_text,
)

#: Events are flat (a budget's ``monthly`` list is the deepest part); deeper is not an event.
MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")
ProblemKind = Literal["personal_id", "bad_json"]


class StrictJsonError(ValueError):
    """Why a text is not acceptable strict JSON; ``kind`` is ``personal_id`` or ``bad_json``."""

    def __init__(self, reason: str, kind: ProblemKind) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def pii_reason(place: str) -> str:
    """The rejection reason for an identity number at ``place`` (a position, never the text)."""
    return (
        f"{place} contains a Swedish personal identity number (redacted); "
        "events must not carry personal data"
    )


class ObjectWithRepeatedKeys(dict[str, Any]):
    """A decoded JSON object in which a key appeared more than once: the dict keeps the last
    value (as ``json.loads`` would); ``all_pairs`` keeps every pair, so that the identity-number
    scan sees the values that were overwritten too."""

    all_pairs: list[tuple[str, Any]]
    repeated_key: str


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    repeated = ObjectWithRepeatedKeys(obj)
    repeated.all_pairs = pairs
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            repeated.repeated_key = key
            break
        seen.add(key)
    return repeated


def _quick_scan(value: Any) -> tuple[bool, bool]:
    """(an identity number somewhere, some structural problem somewhere), without building
    positions: the common case (a clean event) pays for one pass and nothing else."""
    problem = False
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            problem = True
        kind = type(item)
        if kind is str:
            if contains_identity_number_in_text(item):
                return True, problem
            if not item.isascii() and _SURROGATE.search(item):
                problem = True
        elif kind is dict or kind is ObjectWithRepeatedKeys:
            pairs = item.items() if kind is dict else item.all_pairs
            if kind is not dict:
                problem = True
            for key, child in pairs:
                if contains_identity_number_in_text(key):
                    return True, problem
                if not key.isascii() and _SURROGATE.search(key):
                    problem = True
                stack.append((child, depth + 1))
        elif kind is list:
            stack.extend((child, depth + 1) for child in item)
        elif kind is float or kind is int:
            text = number_text(item)
            if text is not None and contains_identity_number_in_text(text):
                return True, problem
            if kind is float and not math.isfinite(item):
                problem = True
    return False, problem


def _structure_problem(value: Any) -> str | None:
    """Depth, repeated keys and non-finite numbers, in document order: the first problem."""
    stack: list[tuple[Any, tuple[PathStep, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, dict):
            keys = list(item)
            for key in keys:
                if not key.isascii() and _SURROGATE.search(key):
                    return f"a key at {json_path(path)}: not valid Unicode (a lone surrogate)"
            if isinstance(item, ObjectWithRepeatedKeys):
                where = json_path((*path, (item.repeated_key, keys.index(item.repeated_key))))
                return f"duplicate key at {where}: a key may appear only once in an object"
            stack.extend(reversed([(item[k], (*path, (k, i))) for i, k in enumerate(keys)]))
        elif isinstance(item, list):
            stack.extend(reversed([(child, (*path, i)) for i, child in enumerate(item)]))
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{field_name(path)}: must be a finite number"
        elif isinstance(item, str) and not item.isascii() and _SURROGATE.search(item):
            return f"{field_name(path)}: not valid Unicode (a lone surrogate)"
    return None


def field_name(path: tuple[PathStep, ...] | list[PathStep]) -> str:
    """``field 'monthly[3]'`` when every key on the path is printable, else ``the field at
    $[key 2]`` (see ``contract.pii.json_path``)."""
    text = json_path(path)
    if "[key " in text:
        return f"the field at {text}"
    return f"field '{text.removeprefix('$').removeprefix('.')}'" if path else "the message"


def _nonfinite_constant(name: str) -> float:
    # NaN, Infinity and -Infinity are not JSON; read them as the non-finite floats they name so
    # that the position check can say which field held one.
    return float(name.replace("Infinity", "inf"))


class _CloserLook(Exception):
    """Raised by the fast decoder's hooks: something needs the full, slower check."""


def _fast_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _CloserLook
    return obj


def _fast_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _CloserLook
    # 1.212121212e9 shows no ten-digit run in the text, but its value's digits do.
    digits = number_text(value)
    if digits is not None and contains_identity_number_in_text(digits):
        raise _CloserLook
    return value


def _fast_constant(name: str) -> float:
    raise _CloserLook


# The common case (a clean event) is decoded once by the fast decoder, whose hooks raise on the
# rare things (a repeated key, NaN/Infinity, a float whose digits form an identity number) that
# then get the full decode and position search. Strings are scanned only when the raw text could
# hold an identity number in one: it has a chain of ten digits or more, or an escape.
_FAST = json.JSONDecoder(
    object_pairs_hook=_fast_pairs, parse_float=_fast_float, parse_constant=_fast_constant
)
_FULL = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_nonfinite_constant)


def _may_hide_something(text: str) -> bool:
    return "\\" in text or has_digit_chain(text) or text.count("[") + text.count("{") > MAX_DEPTH


def _bad_json(err: json.JSONDecodeError, text: str) -> StrictJsonError:
    if contains_identity_number_in_raw(text):
        return StrictJsonError(pii_reason("the message"), "personal_id")
    return StrictJsonError(
        f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}", "bad_json"
    )


def decode_strict(text: str) -> Any:
    """The decoded value of ``text``; :class:`StrictJsonError` when it is not strict JSON or
    carries an identity number (then checked before anything else, also in invalid JSON)."""
    try:
        try:
            value = _FAST.decode(text)
            closer_look = _may_hide_something(text)
        except _CloserLook:
            value = _FULL.decode(text)
            closer_look = True
    except json.JSONDecodeError as err:
        raise _bad_json(err, text) from None
    except (RecursionError, ValueError) as err:
        # Nesting that exhausts the stack; an integer longer than Python reads
        # (sys.get_int_max_str_digits).
        if contains_identity_number_in_raw(text):
            raise StrictJsonError(pii_reason("the message"), "personal_id") from None
        problem = (
            f"nested deeper than {MAX_DEPTH} levels"
            if isinstance(err, RecursionError)
            else "not valid JSON: a number with too many digits"
        )
        raise StrictJsonError(problem, "bad_json") from None
    if not closer_look:
        return value
    has_identity_number, has_problem = _quick_scan(value)
    if has_identity_number:
        place = identity_number_position(value) or "the message"
        raise StrictJsonError(pii_reason(place), "personal_id")
    if has_problem:
        problem = _structure_problem(value) or "not valid JSON"
        raise StrictJsonError(problem, "bad_json")
    return value


def decode_strict_bytes(raw: bytes) -> Any:
    """:func:`decode_strict` of UTF-8 bytes; bytes that are not UTF-8 are rejected (after the
    raw scan for identity numbers)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        if contains_identity_number_in_raw(raw):
            raise StrictJsonError(pii_reason("the message"), "personal_id") from None
        raise StrictJsonError(f"not UTF-8 text (byte {err.start})", "bad_json") from None
    return decode_strict(text)


def decode_strict_object(raw: bytes | str) -> dict[str, Any]:
    """A strict JSON object (not an array, string or number)."""
    value = decode_strict_bytes(raw) if isinstance(raw, bytes) else decode_strict(raw)
    if not isinstance(value, dict):
        raise StrictJsonError("not a JSON object", "bad_json")
    return value
