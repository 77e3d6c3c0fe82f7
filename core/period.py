"""A calendar month, ``YYYY-MM``: the one period type and parser of budgetvakt (pure).

Everything that takes a period from outside (an event, a CSV row, a ``--period`` option, a
snapshot key) parses it here, so that every place accepts the same text and a bad one is told
in the same words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from core.errors import UserError

# Also the event contract's JSON Schema pattern (``contract.records``), so it stays as published.
PERIOD_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
# ASCII digits only: ``\d`` would also take other scripts' digits, which int() then reads.
_PERIOD = re.compile(PERIOD_PATTERN, re.ASCII)
EXPECTED = "expected YYYY-MM, e.g. 2024-08"


class PeriodError(ValueError):
    """Text that is not a period; ``str(err)`` is ``bad period '2024-13', expected YYYY-MM…``."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f"bad period {text!r}, {EXPECTED}")


@dataclass(frozen=True, order=True)
class Period:
    """``Period(2024, 8)``: ordered by time, ``str()`` is ``2024-08``, unpacks as (year, month)."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.year <= 9999:
            raise PeriodError(f"{self.year}-{self.month:02d}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """``"2024-08"`` (surrounding blanks ignored) → ``Period(2024, 8)``; PeriodError else."""
        return _parse(text)

    @classmethod
    def parse_exact(cls, text: str) -> Period:
        """Like :meth:`parse`, but only the canonical text (a stored key), no blanks around."""
        period = cls.parse(text)
        if str(period) != text:
            raise PeriodError(text)
        return period

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def __iter__(self) -> Iterator[int]:
        yield self.year
        yield self.month


# A forecast run parses the same few hundred period keys of every series: cache them.
@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Period:
    stripped = text.strip()
    if _PERIOD.match(stripped) is None:
        raise PeriodError(text)
    return Period(int(stripped[:4]), int(stripped[5:]))


def parse_period_option(option: str, text: str) -> Period:
    """A period given as a command-line option; a :class:`UserError` naming the option else."""
    try:
        return Period.parse(text)
    except PeriodError:
        raise UserError(f"{option} {text!r}: {EXPECTED}") from None
