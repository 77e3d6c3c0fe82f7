"""Event contract v1 (brief §3): one JSON event per Kafka message, key = org_unit.

Unknown fields are rejected (``extra="forbid"``): a misspelt field must not be silently dropped.
Numbers are numbers: ``true``/``false`` are refused where a number is expected, and every
amount and volume has a finite bound (:data:`MAX_AMOUNT_SEK`, :data:`MAX_VOLUME`), so that no
single event can overflow a sum. ``contract.validation.parse_event`` adds what the models
cannot see: strict JSON (no repeated keys, no NaN/Infinity) and the identity-number guard.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
)

from core.period import PERIOD_PATTERN

MEASURE_PATTERN = r"^[a-z_]+$"
MONTHLY_SUM_TOLERANCE_SEK = 1.0
#: |amount| ≤ 10¹³ kr (ten million mnkr, ten thousand times Sweden's largest municipal budget):
#: far above any real posting, far below where sums of many could overflow a float.
MAX_AMOUNT_SEK = 1e13
#: 0 ≤ volume ≤ 10⁹ units (hours, days, places, cases) per event or budget.
MAX_VOLUME = 1e9


def not_a_bool(value: object) -> object:
    """JSON ``true``/``false`` is not a number (pydantic's lax mode would read 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


#: An amount in SEK: a finite number, |amount| ≤ MAX_AMOUNT_SEK, not a boolean.
AmountSek = Annotated[
    float,
    Field(ge=-MAX_AMOUNT_SEK, le=MAX_AMOUNT_SEK, allow_inf_nan=False),
    BeforeValidator(not_a_bool),
]
#: A volume: a finite number, 0 ≤ volume ≤ MAX_VOLUME, not a boolean.
Volume = Annotated[
    float, Field(ge=0, le=MAX_VOLUME, allow_inf_nan=False), BeforeValidator(not_a_bool)
]


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    event_id: str = Field(min_length=1, max_length=200)
    org_unit: str = Field(min_length=1, max_length=64, pattern=r"^\S+$")
    emitted_at: datetime | None = None
    source: str | None = Field(default=None, max_length=200)


class _MonthlyEvent(_EventBase):
    """An event about one calendar month (``period`` = YYYY-MM)."""

    period: str = Field(pattern=PERIOD_PATTERN)

    @property
    def year(self) -> int:
        return int(self.period[:4])

    @property
    def month(self) -> int:
        return int(self.period[5:7])


class CostEvent(_MonthlyEvent):
    """A ledger posting: debit/cost positive, credit/revenue negative; a correction is a posting."""

    type: Literal["cost"] = "cost"
    category: str | None = Field(default=None, pattern=MEASURE_PATTERN, max_length=64)
    account: Annotated[int, Field(ge=0, le=99_999_999), BeforeValidator(not_a_bool)] | None = None
    amount_sek: AmountSek
    corrects: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _category_or_account(self) -> CostEvent:
        if (self.category is None) == (self.account is None):
            raise ValueError("exactly one of 'category' and 'account' is required")
        return self


class VolumeEvent(_MonthlyEvent):
    type: Literal["volume"] = "volume"
    measure: str = Field(pattern=MEASURE_PATTERN, max_length=64)
    value: Volume
    unit: str = Field(min_length=1, max_length=32)


class BudgetEvent(_EventBase):
    """An annual budget for one category (SEK) or measure (volume), optionally split by month.

    Without ``monthly`` the category's periodisation profile from config splits ``annual``.
    With it, the 12 months must add up to ``annual`` (within 1 SEK / 1 unit). A category's
    budget is an amount (|annual| ≤ MAX_AMOUNT_SEK, revenue budgets are negative); a measure's
    is a volume (0 ≤ annual ≤ MAX_VOLUME, every month too).
    """

    type: Literal["budget"] = "budget"
    year: Annotated[int, Field(ge=2000, le=2100), BeforeValidator(not_a_bool)]
    category: str | None = Field(default=None, pattern=MEASURE_PATTERN, max_length=64)
    measure: str | None = Field(default=None, pattern=MEASURE_PATTERN, max_length=64)
    annual: AmountSek
    monthly: list[AmountSek] | None = Field(default=None, min_length=12, max_length=12)
    version: str = Field(default="KF", min_length=1, max_length=32)

    @model_validator(mode="after")
    def _target_and_split(self) -> BudgetEvent:
        if (self.category is None) == (self.measure is None):
            raise ValueError("exactly one of 'category' and 'measure' is required")
        if self.measure is not None:
            figures = [self.annual, *(self.monthly or [])]
            if not all(0 <= figure <= MAX_VOLUME for figure in figures):
                raise ValueError(
                    f"a measure's budget is a volume: 'annual' and every month must be between "
                    f"0 and {MAX_VOLUME:.0f}"
                )
        if self.monthly is not None:
            total = sum(self.monthly)
            if abs(total - self.annual) > MONTHLY_SUM_TOLERANCE_SEK:
                raise ValueError(
                    f"'monthly' adds up to {total:.2f}, not to 'annual' {self.annual:.2f}"
                )
        return self

    @property
    def target(self) -> str:
        return self.category or self.measure or ""


class PeriodCloseEvent(_MonthlyEvent):
    """The month is closed in the ledger: the worker freezes the period's forecast snapshot."""

    type: Literal["period_close"] = "period_close"


Event = Annotated[
    CostEvent | VolumeEvent | BudgetEvent | PeriodCloseEvent, Field(discriminator="type")
]
EVENT_ADAPTER: TypeAdapter[CostEvent | VolumeEvent | BudgetEvent | PeriodCloseEvent] = TypeAdapter(
    Event
)
EVENT_TYPES: dict[str, type[_EventBase]] = {
    "cost": CostEvent,
    "volume": VolumeEvent,
    "budget": BudgetEvent,
    "period_close": PeriodCloseEvent,
}
__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "MAX_AMOUNT_SEK",
    "MAX_VOLUME",
    "BudgetEvent",
    "CostEvent",
    "Event",
    "PeriodCloseEvent",
    "VolumeEvent",
]
