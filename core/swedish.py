"""Swedish number and month formatting for everything a controller reads (pure).

``−1 086,4``: the minus sign U+2212, a space as thousands separator and a decimal comma.
"""

from __future__ import annotations

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
