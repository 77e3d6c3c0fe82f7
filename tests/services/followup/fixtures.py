"""Fixtures of the follow-up tests: a snapshot store with one real snapshot of PERIOD."""

from __future__ import annotations

from typing import Any

import pytest

from services.snapshots import write_snapshot
from tests.services.snapshots.fixtures import DB_AS_OF, DB_YEAR, ForecastCase

PERIOD = f"{DB_YEAR}-{DB_AS_OF:02d}"


@pytest.fixture
def followup_engine(store_engine: Any, forecast_case: ForecastCase) -> Any:
    """The store (SQLite and PostgreSQL) with version 1 of PERIOD written by a period close."""
    write_snapshot(
        store_engine,
        forecast_case.forecast,
        period=PERIOD,
        trigger="period_close",
        checkpoint="mars",
        org=forecast_case.domain.org,
    )
    return store_engine


@pytest.fixture
def kommun_followup_engine(store_engine: Any, kommun_case: Any) -> Any:
    """The store (SQLite and PostgreSQL) with version 1 of PERIOD of both nämnder, VON and BUN."""
    for forecast in kommun_case.forecasts.values():
        write_snapshot(
            store_engine,
            forecast,
            period=PERIOD,
            trigger="period_close",
            checkpoint="mars",
            org=kommun_case.domain.org,
        )
    return store_engine
