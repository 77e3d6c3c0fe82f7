"""Generated hostile input for the fuzz tests and ``bench/fuzz.py``: seeded, no hypothesis needed.

:func:`messages` yields :class:`FuzzInput` values: valid contract events, the same events mutated
(bit flips, truncation, duplicated keys, booleans for numbers, NaN/Infinity/1e400, bounds,
nesting, escapes, lone surrogates, control characters, bytes that are not UTF-8, unknown keys),
and events carrying a valid personnummer or samordningsnummer in one of many spellings, anywhere
(a value, a key, a number, JSON-escaped, as raw bytes in broken input). Every input says which
identity number it carries, so that a check can assert that it was rejected and never echoed.

:func:`check_message` is the property every input must have: accepted as a valid event or
rejected with a reason; no other exception; a carried identity number is rejected; no reason
contains one.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from contract.pii import contains_identity_number, luhn_check_digit
from contract.validation import InvalidEvent, parse_event
from core.domain import DomainConfig

Outcome = Literal["accepted", "rejected"]

UNITS = ("1110", "1120", "1210", "2110", "3130", "VON", "9999", "omappad-x")
CATEGORIES = ("salaries", "substitutes", "overtime", "revenue_fees", "coffee")
MEASURES = ("home_care_hours", "placement_days", "nope")
HOSTILE_NUMBERS: tuple[Any, ...] = (
    True,
    False,
    None,
    "12",
    "NaN",
    1.7e308,
    -1.7e308,
    1e13,
    1e13 + 2,
    -1e13,
    1e9,
    2e9,
    -0.0,
    5e-324,
    10**20,
    [],
    {},
)
RAW_NUMBERS = (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1" * 5000, b"0x10")
TOKENS = (
    b"\\u0000",
    b"\\ud800",
    b"\\udfff\\ud800",
    b"\x00",
    b"\x1b[31m",
    b"\xff",
    b"\xc3\x28",
    b"\xef\xbb\xbf",
    b"\\",
    b'"',
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"\r\n",
    "\u2028".encode(),
)


@dataclass(frozen=True)
class IdentityNumber:
    """A generated identity number: its 12 digits and the spelling used in the input."""

    twelve: str
    spelled: str

    @property
    def echoes(self) -> tuple[str, ...]:
        """Texts a reason must not contain."""
        return (self.twelve, self.twelve[2:], self.spelled.strip())


@dataclass(frozen=True)
class FuzzInput:
    raw: bytes
    kind: str  # valid, mutated, personal_id
    identity: IdentityNumber | None = None


def identity_number(rng: random.Random) -> str:
    """12 digits: a valid personnummer (or samordningsnummer, day + 60) with its Luhn digit."""
    year = rng.randint(1900, 2024)
    month = rng.randint(1, 12)
    day = rng.randint(1, 28)
    if rng.random() < 0.3:
        day += 60
    serial = f"{rng.randint(0, 999):03d}"
    nine = f"{year % 100:02d}{month:02d}{day:02d}{serial}"
    return f"{year // 100}{nine}{luhn_check_digit(nine)}"


def spell(twelve: str, rng: random.Random) -> str:
    ten = twelve[2:]
    forms = [
        twelve,
        ten,
        f"{twelve[:8]}-{twelve[8:]}",
        f"{ten[:6]}-{ten[6:]}",
        f"{ten[:6]}+{ten[6:]}",
        f"{twelve[:8]} {twelve[8:]}",
        f"{ten[:6]} - {ten[6:]}",
        " ".join(ten),
        f"{twelve[:4]} {twelve[4:8]} {twelve[8:]}",
        f"{twelve[:8]}\u00a0{twelve[8:]}",
        f"{twelve[:8]}\u2013{twelve[8:]}",
        f"{ten[:3]}\u200b{ten[3:]}",
        twelve.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    ]
    return rng.choice(forms)


def event(rng: random.Random, i: int) -> dict[str, Any]:
    kind = rng.choice(("cost", "cost", "cost", "volume", "budget", "period_close"))
    unit = rng.choice(UNITS)
    period = f"{rng.randint(2023, 2025)}-{rng.randint(1, 12):02d}"
    base: dict[str, Any] = {"type": kind, "event_id": f"fz-{i}-{rng.getrandbits(32):08x}"}
    base["org_unit"] = unit
    if kind == "cost":
        base |= {"period": period, "amount_sek": round(rng.uniform(-1e6, 1e7), 2)}
        if rng.random() < 0.8:
            base["category"] = rng.choice(CATEGORIES)
        else:
            base["account"] = rng.choice((5010, 5031, 9500, 4010))
    elif kind == "volume":
        base |= {
            "period": period,
            "measure": rng.choice(MEASURES),
            "value": round(rng.uniform(0, 1e5), 1),
            "unit": "h",
        }
    elif kind == "budget":
        base |= {"year": rng.randint(2023, 2025), "annual": 1_200_000.0}
        if rng.random() < 0.5:
            base["category"] = rng.choice(CATEGORIES)
        else:
            base["measure"] = rng.choice(MEASURES)
            base["annual"] = 12_000.0
        if rng.random() < 0.3:
            base["monthly"] = [base["annual"] / 12] * 12
    else:
        base["period"] = period
    if rng.random() < 0.2:
        base["emitted_at"] = "2024-08-31T12:34:56.123456+00:00"
    if rng.random() < 0.2:
        base["source"] = rng.choice(("ERP 2024-08-31", "lön", "erp-2024-08-31-0042"))
    return base


def _structured_mutation(doc: dict[str, Any], rng: random.Random) -> bytes:
    """A mutation that keeps JSON syntax (or breaks it in a chosen way)."""
    keys = list(doc)
    choice = rng.randrange(9)
    if choice == 0 and keys:  # a field's value replaced by something hostile
        doc[rng.choice(keys)] = rng.choice(HOSTILE_NUMBERS)
    elif choice == 1 and keys:  # a field removed
        del doc[rng.choice(keys)]
    elif choice == 2:  # an unknown key
        doc[rng.choice(("amout_sek", "x y", "\x1b[2J", "k" * 300, "é"))] = 1
    elif choice == 3 and keys:  # a repeated key with another value
        key = rng.choice(keys)
        body = json.dumps(doc)[:-1]
        return f'{body}, "{key}": {json.dumps(rng.choice(HOSTILE_NUMBERS))}}}'.encode()
    elif choice == 4:  # a raw non-JSON number
        key = rng.choice(["amount_sek", "value", "annual", *keys])
        body = json.dumps({k: v for k, v in doc.items() if k != key})[:-1]
        sep = ", " if len(body) > 1 else ""
        return (body + f'{sep}"{key}": ').encode() + rng.choice(RAW_NUMBERS) + b"}"
    elif choice == 5:  # deep nesting
        depth = rng.choice((31, 33, 200, 5000))
        doc["note"] = "x"
        return json.dumps(doc)[:-1].encode() + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    elif choice == 6:  # a long string
        doc[rng.choice(["category", "org_unit", "source", "event_id"])] = "a" * rng.choice(
            (65, 201, 100_000)
        )
    elif choice == 7:  # not an object
        return json.dumps(rng.choice([list(doc.values()), "cost", 5, None])).encode()
    else:  # escaped text
        doc["source"] = "".join(f"\\u{ord(c):04x}" for c in "lön 2024")
        return json.dumps(doc).replace("\\\\u", "\\u").encode()
    return json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()


def _byte_mutation(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:  # flip a bit
            pos = min(pos, len(data) - 1)
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:  # truncate
            del data[pos:]
        elif op == 2:  # insert a token
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 3 and data:  # delete a span
            del data[pos : pos + rng.randint(1, 8)]
        else:  # duplicate a span
            data[pos:pos] = data[max(0, pos - 8) : pos]
    return bytes(data)


def _with_identity_number(doc: dict[str, Any], rng: random.Random, i: int) -> FuzzInput:
    number = IdentityNumber(identity_number(rng), "")
    spelled = spell(number.twelve, rng)
    number = IdentityNumber(number.twelve, spelled)
    where = rng.randrange(7)
    if where == 0:  # inside a value, with text around it
        field = rng.choice(["source", "org_unit", "event_id", "corrects", "note"])
        doc[field] = rng.choice(("", "pnr ", "id:")) + spelled + rng.choice(("", " x", "."))
        raw = json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()
    elif where == 1:  # as a key, perhaps nested
        if rng.random() < 0.5:
            doc[spelled] = 1
        else:
            doc["note"] = [1, 2, {f"a {spelled}": True}]
        raw = json.dumps(doc, ensure_ascii=False).encode()
    elif where == 2:  # as a number
        # As a JSON number a leading zero would vanish: then only the 12-digit form.
        digits = rng.choice((number.twelve, number.twelve[2:].lstrip("0") or "0"))
        if len(digits) != 10:
            digits = number.twelve
        doc[rng.choice(["amount_sek", "value", "annual", "extra"])] = int(digits)
        raw = json.dumps(doc).encode()
    elif where == 3:  # every digit escaped
        escaped = "".join(f"\\u{ord(c):04x}" for c in spelled)
        body = json.dumps({k: v for k, v in doc.items() if k != "org_unit"})[:-1]
        raw = (body + f', "org_unit": "{escaped}"}}').encode()
    elif where == 4:  # into the bytes of broken input
        base = _byte_mutation(json.dumps(doc).encode(), rng)
        pos = rng.randrange(len(base) + 1)
        raw = base[:pos] + b" " + spelled.encode() + b" " + base[pos:]
    elif where == 5:  # the overwritten value of a repeated key
        body = json.dumps(doc)[:-1]
        raw = f'{body}, "source": "{spelled}", "source": "ok"}}'.encode()
    else:  # split across a JSON string's escaped whitespace
        twelve = number.twelve
        spelled = f"{twelve[:8]}\\t{twelve[8:]}"
        number = IdentityNumber(twelve, f"{twelve[:8]}\t{twelve[8:]}")
        body = json.dumps(doc)[:-1]
        raw = f'{body}, "source": "{spelled}"}}'.encode()
    return FuzzInput(raw, "personal_id", number)


def messages(seed: int, count: int) -> Iterator[FuzzInput]:
    """``count`` generated inputs, the same for the same seed."""
    rng = random.Random(seed)
    for i in range(count):
        doc = event(rng, i)
        roll = rng.random()
        if roll < 0.25:
            yield FuzzInput(json.dumps(doc).encode(), "valid")
        elif roll < 0.5:
            yield FuzzInput(_structured_mutation(doc, rng), "mutated")
        elif roll < 0.75:
            yield FuzzInput(_byte_mutation(json.dumps(doc).encode(), rng), "mutated")
        else:
            yield _with_identity_number(doc, rng, i)


CSV_CELLS = (
    "1110",
    "VON",
    "2024-03",
    "2024-13",
    "salaries",
    "home_care_hours",
    "2024",
    "1 234,50",
    "-98765,4",
    "1e400",
    "nan",
    "5e13",
    "",
    " ",
    '"',
    ";",
    ",",
    "\x00",
    "\x1b[31m",
    "x" * 300,
)


def _csv_cell(column: str, row: int, rng: random.Random) -> str:
    if column == "org_unit":
        return f"{1000 + row}"
    if column in ("category", "measure"):
        return "salaries" if column == "category" else "home_care_hours"
    if column == "period":
        return f"2024-{1 + row % 12:02d}"
    if column == "year":
        return "2024"
    return f"{rng.uniform(0, 1e6):.2f}"


def csv_text(rng: random.Random, header: list[str], rows: int) -> tuple[str, IdentityNumber | None]:
    """A CSV file: the header, then ``rows`` ordinary rows in which a cell is now and then
    replaced by a hostile one or an identity number (which the result names)."""
    carried: IdentityNumber | None = None
    delimiter = rng.choice((",", ";"))
    lines = [delimiter.join(header)]
    for row in range(rows):
        cells = [
            _csv_cell(column, row, rng).replace(".", "," if delimiter == ";" else ".")
            for column in header
        ]
        if rng.random() < 0.05:
            cells.append("extra")
        for i in range(len(cells)):
            if rng.random() < 0.03:
                cells[i] = rng.choice(CSV_CELLS)
        if carried is None and rng.random() < 0.05:
            twelve = identity_number(rng)
            carried = IdentityNumber(twelve, spell(twelve, rng))
            cells[rng.randrange(len(cells))] = carried.spelled
        lines.append(delimiter.join(cells))
    return "\n".join(lines) + "\n", carried


class FuzzFailure(AssertionError):
    pass


def check_reason(reason: str, carried: IdentityNumber | None) -> None:
    if not reason:
        raise FuzzFailure("a rejection without a reason")
    if contains_identity_number(reason):
        raise FuzzFailure(f"a reason holds an identity number: {reason[:200]!r}")
    if carried is not None:
        for text in carried.echoes:
            if text and text in reason:
                raise FuzzFailure("a reason echoes the carried identity number")


def check_message(item: FuzzInput, domain: DomainConfig) -> Outcome:
    """The property: accepted or rejected with a clean reason; an identity number is rejected."""
    try:
        parse_event(item.raw, domain)
    except InvalidEvent as err:
        check_reason(err.reason, item.identity)
        if item.kind == "valid" and err.kind == "personal_id":
            raise FuzzFailure(
                f"an ordinary event was taken for personal data: {item.raw[:200]!r}"
            ) from None
        return "rejected"
    except Exception as err:
        raise FuzzFailure(
            f"{type(err).__name__} escaped parse_event for {item.raw[:200]!r}"
        ) from err
    if item.identity is not None:
        raise FuzzFailure(f"an event with an identity number was accepted: {item.kind}")
    return "accepted"
