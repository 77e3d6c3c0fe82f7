"""Event contract v1 (brief §3): one JSON event per Kafka message, key = org_unit.

Unknown fields are rejected (``extra="forbid"``): a misspelt field must not be silently dropped.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from core.period import PERIOD_PATTERN

MEASURE_PATTERN = r"^[a-z_]+$"
MONTHLY_SUM_TOLERANCE_SEK = 1.0


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


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
    category: str | None = Field(default=None, pattern=MEASURE_PATTERN)
    account: int | None = Field(default=None, ge=0, le=99_999_999)
    amount_sek: float
    corrects: str | None = Field(default=None, min_length=1, max_length=200)

    _amount_finite = field_validator("amount_sek")(_finite)

    @model_validator(mode="after")
    def _category_or_account(self) -> CostEvent:
        if (self.category is None) == (self.account is None):
            raise ValueError("exactly one of 'category' and 'account' is required")
        return self


class VolumeEvent(_MonthlyEvent):
    type: Literal["volume"] = "volume"
    measure: str = Field(pattern=MEASURE_PATTERN, max_length=64)
    value: float = Field(ge=0)
    unit: str = Field(min_length=1, max_length=32)

    _value_finite = field_validator("value")(_finite)


class BudgetEvent(_EventBase):
    """An annual budget for one category (SEK) or measure (volume), optionally split by month.

    Without ``monthly`` the category's periodisation profile from config splits ``annual``.
    With it, the 12 months must add up to ``annual`` (within 1 SEK / 1 unit).
    """

    type: Literal["budget"] = "budget"
    year: int = Field(ge=2000, le=2100)
    category: str | None = Field(default=None, pattern=MEASURE_PATTERN)
    measure: str | None = Field(default=None, pattern=MEASURE_PATTERN, max_length=64)
    annual: float
    monthly: list[float] | None = Field(default=None, min_length=12, max_length=12)
    version: str = Field(default="KF", min_length=1, max_length=32)

    _annual_finite = field_validator("annual")(_finite)

    @field_validator("monthly")
    @classmethod
    def _months_finite(cls, value: list[float] | None) -> list[float] | None:
        if value is not None:
            for i, month in enumerate(value, start=1):
                if not math.isfinite(month):
                    raise ValueError(f"month {i} must be a finite number")
        return value

    @model_validator(mode="after")
    def _target_and_split(self) -> BudgetEvent:
        if (self.category is None) == (self.measure is None):
            raise ValueError("exactly one of 'category' and 'measure' is required")
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
    "BudgetEvent",
    "CostEvent",
    "Event",
    "PeriodCloseEvent",
    "VolumeEvent",
]
