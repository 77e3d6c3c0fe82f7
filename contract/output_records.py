"""What the worker publishes: ``forecast.v1`` and ``alert.v1`` events (JSON, key = org_unit).

Consumers (the notifier, Grafana via Prometheus, a data warehouse) read these; like the input
contract they reject unknown fields, so a misspelt field fails loudly instead of vanishing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from contract.records import PERIOD_PATTERN, not_a_bool

#: A number in an output event: ``true``/``false`` is not one.
Number = Annotated[float, BeforeValidator(not_a_bool)]

Severity = Literal["info", "warning", "critical"]
# firing: the alert started or its severity changed; worsened: it still fires and its measured
# excess grew by at least the rule's step since this alert's previous event; improved: it fell by
# a step but still fires (the notifier puts it in digests only); resolved: the measured quantity
# is back within its limits, or the year is closed (``resolution`` says which).
AlertStatus = Literal["firing", "worsened", "improved", "resolved"]
Resolution = Literal["within_limits", "year_closed"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ForecastEvent(_Output):
    """A node's full-year forecast of one category (or ``total``, or a measure)."""

    type: Literal["forecast"] = "forecast"
    event_id: str = Field(min_length=1)
    org_unit: str
    level: str
    kind: Literal["cost", "measure"]
    category: str
    year: int
    as_of: str = Field(pattern=PERIOD_PATTERN)  # the last month with actuals in the forecast
    preliminary: bool  # as_of is not a closed period yet
    actual_ytd: float
    budget_full_year: float | None
    full_year: float
    low: float
    high: float
    deviation: float | None  # budget − forecast
    model: str
    volume_effect: float | None = None
    price_effect: float | None = None
    computed_at: datetime


class AlertEvent(_Output):
    """A deviation rule's state change for one series: it started, changed severity, got
    materially worse or better, or stopped firing."""

    type: Literal["alert"] = "alert"
    event_id: str = Field(min_length=1)  # unique per transition: f"{alert_id}@{sequence}"
    alert_id: str = Field(min_length=1)  # stable per rule and series
    sequence: Annotated[
        int, Field(ge=1), BeforeValidator(not_a_bool)
    ]  # 1, 2, … per alert_id: firing, worsened, resolved, firing, …
    rule: str
    severity: Severity
    status: AlertStatus
    org_unit: str
    org_unit_name: str
    level: str
    category: str | None = None  # category or measure the rule looked at
    period: str = Field(pattern=PERIOD_PATTERN)  # the month the evaluation was as of
    values: dict[str, Number] = Field(default_factory=dict)  # the numbers the message quotes
    message: str  # Swedish, for the recipient
    emitted_at: datetime
    # Swedish subject-ready line: node, what, period, amount and direction.
    title: str | None = None
    # Swedish: what changed since this alert's previous event (worsened, improved, step down).
    change: str | None = None
    # The evaluation is as of December's close: the texts say "utfall", not "prognos".
    year_closed: bool = False
    # Why a resolved alert resolved (None unless status is "resolved").
    resolution: Resolution | None = None
    # The forecast model of the node the rule read (NodeForecast.model), e.g. "auto:ets".
    method: str | None = None
