"""Fixtures of the report tests: stored snapshots of the demo scenario's overrun year.

The snapshots are built the way the worker builds them: the scenario's events are applied with
``streams.aggregation.apply_events`` into table values keyed by ``state_key(0, event)``, the
leaves come from ``leaf_series`` and the forecast from ``forecast_organisation``; only events of
periods up to the snapshot's month are applied (budgets are known from the start).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.domain import DomainConfig
from forecasts.live import OrganisationForecast, forecast_organisation
from services.demo.scenario import Scenario, generate_scenario
from services.followup.read import Approval, Measure, NodeFollowUp, PeriodFollowUp
from services.reports.tables import Report, build_report
from services.reports.writer import report_files
from services.snapshots.checkpoints import DEFAULT_CHECKPOINTS
from services.snapshots.store import StoredSnapshot, make_engine, upgrade, write_snapshot
from streams.aggregation import apply_events, leaf_series, state_key
from testing.cli import run_cli

REPORT_YEAR = 2024
#: Snapshot months of the year and their checkpoint names, as config/checkpoints.yaml names them.
SNAPSHOT_MONTHS: dict[int, str | None] = dict(DEFAULT_CHECKPOINTS)


def forecasts_by_month(
    scenario: Scenario, domain: DomainConfig, year: int, months: Sequence[int]
) -> dict[int, OrganisationForecast]:
    """The organisation forecast as of each month, from the scenario's events up to it."""
    values: dict[str, dict[str, Any]] = {}
    budgets = [e for e in scenario.budgets if e["year"] <= year]
    for event in budgets:
        ns = SimpleNamespace(**event)
        key = state_key(0, ns)
        values[key] = apply_events(values.get(key), [ns], domain).value
    flows = sorted(
        (e for e in [*scenario.costs, *scenario.volumes] if e["period"] <= f"{year}-12"),
        key=lambda e: e["period"],
    )
    out: dict[int, OrganisationForecast] = {}
    position = 0
    for month in sorted(months):
        cutoff = f"{year:04d}-{month:02d}"
        while position < len(flows) and flows[position]["period"] <= cutoff:
            ns = SimpleNamespace(**flows[position])
            key = state_key(0, ns)
            values[key] = apply_events(values.get(key), [ns], domain).value
            position += 1
        leaves, as_of = leaf_series(values.items(), year)
        assert as_of == month
        out[month] = forecast_organisation(leaves, domain, year, as_of)
    return out


def stored(
    forecast: OrganisationForecast,
    *,
    snapshot_id: int,
    checkpoint: str | None = None,
    version: int = 1,
    late_event_count: int = 0,
) -> StoredSnapshot:
    month = forecast.as_of_month
    return StoredSnapshot(
        id=snapshot_id,
        namnd="VON",
        period=f"{forecast.year:04d}-{month:02d}",
        version=version,
        checkpoint=checkpoint,
        trigger="period_close",
        created_at=datetime(forecast.year + (month == 12), month % 12 + 1, 5, 8, 0, tzinfo=UTC),
        late_event_count=late_event_count,
        forecast=forecast,
    )


@dataclass(frozen=True)
class ReportCase:
    domain: DomainConfig
    scenario: Scenario
    year: int
    forecasts: dict[int, OrganisationForecast]
    snapshots: dict[int, StoredSnapshot]  # by month

    def before(self, month: int) -> list[StoredSnapshot]:
        return [s for m, s in self.snapshots.items() if m < month]


@pytest.fixture(scope="session")
def report_case(domain: DomainConfig) -> ReportCase:
    scenario = generate_scenario(
        seed=2024, start_year=REPORT_YEAR - 1, years=2, overrun=True, domain=domain
    )
    forecasts = forecasts_by_month(scenario, domain, REPORT_YEAR, list(SNAPSHOT_MONTHS))
    snapshots = {
        month: stored(forecasts[month], snapshot_id=i, checkpoint=SNAPSHOT_MONTHS[month])
        for i, month in enumerate(sorted(forecasts), start=1)
    }
    return ReportCase(domain, scenario, REPORT_YEAR, forecasts, snapshots)


@pytest.fixture(scope="session")
def august_report(report_case: ReportCase) -> Report:
    """The delårsrapport after August, compared with the March and April snapshots."""
    return build_report(report_case.snapshots[8], report_case.before(8), report_case.domain)


@pytest.fixture(scope="session")
def august_files(august_report: Report) -> dict[str, bytes]:
    return report_files(august_report)


def chromium_binary() -> str:
    """The Chromium the HTML tests drive; a missing one fails the test (never skipped)."""
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("chromium is not installed: run scripts/test-deps.sh to install it")


def run_chromium(
    *args: str, profile: Path, timeout_s: float = 90.0
) -> subprocess.CompletedProcess[str]:
    command = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.fixture(scope="session")
def report_db_template(tmp_path_factory: pytest.TempPathFactory, report_case: ReportCase) -> Path:
    """A migrated SQLite snapshot store holding the report case's snapshots (as the worker
    writes them: version 1 of each period, with the checkpoint names), built once."""
    path = tmp_path_factory.mktemp("report-db") / "budgetvakt.sqlite"
    url = f"sqlite:///{path}"
    upgrade(url)
    engine = make_engine(url)
    try:
        for month in sorted(report_case.snapshots):
            write_snapshot(
                engine,
                report_case.forecasts[month],
                period=f"{report_case.year}-{month:02d}",
                trigger="period_close",
                checkpoint=SNAPSHOT_MONTHS[month],
                org=report_case.domain.org,
            )
    finally:
        engine.dispose()
    return path


@pytest.fixture
def report_db_url(tmp_path: Path, report_db_template: Path) -> str:
    """This test's own copy of the report store (tests must not see each other's writes)."""
    path = tmp_path / "store" / "budgetvakt.sqlite"
    path.parent.mkdir()
    shutil.copyfile(report_db_template, path)
    return f"sqlite:///{path}"


def budgetvakt_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout_s: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run ``budgetvakt`` as a user would."""
    return run_cli(*args, env=env, cwd=cwd, timeout_s=timeout_s)


@pytest.fixture(scope="session")
def previous_year_snapshots(report_case: ReportCase) -> list[StoredSnapshot]:
    """The year before the report year at its checkpoints, December (the bokslut) included."""
    year = report_case.year - 1
    forecasts = forecasts_by_month(report_case.scenario, report_case.domain, year, [3, 8, 12])
    return [
        stored(forecasts[month], snapshot_id=100 + month, checkpoint=SNAPSHOT_MONTHS[month])
        for month in sorted(forecasts)
    ]


def august_follow_up(*, approved_version: int | None = 1) -> PeriodFollowUp:
    """The follow-up of 2024-08 as an enhetschef, the avdelningschef and a controller leave it:
    an analysis and two åtgärder for äldreomsorg, an adjusted forecast for Ekbacken (−2 mnkr
    against the model, a unit that closes in October) and the nämnd's approval."""
    approval = (
        Approval("controller.eva", datetime(2024, 9, 12, 9, 30, tzinfo=UTC), approved_version, None)
        if approved_version is not None
        else None
    )
    return PeriodFollowUp(
        "2024-08",
        {
            "AO": NodeFollowUp(
                "AO",
                "Vikarier och övertid över budget: hög sjukfrånvaro och vakanser på boendena.",
                "avdelningschef.anna",
                (
                    Measure(
                        "Samordnad bemanningsplanering",
                        "Anna Avdelningschef",
                        6_000_000.0,
                        "beslutad",
                        date(2024, 4, 23),
                        1_500_000.0,
                    ),
                    Measure(
                        "Övertidsstopp",
                        "Anna Avdelningschef",
                        2_000_000.0,
                        "planerad",
                        None,
                        None,
                    ),
                ),
                None,
                None,
                approval,
            ),
            "1210": NodeFollowUp(
                "1210",
                None,
                None,
                (),
                ADJUSTED_1210_DELTA,  # replaced below with the model's figure − 2 mnkr
                "En avdelning stänger i oktober.",
                None,
            ),
            "VON": NodeFollowUp("VON", None, None, (), None, None, approval),
        },
    )


ADJUSTED_1210_DELTA = -2_000_000.0


def with_adjustment(follow_up: PeriodFollowUp, forecast: OrganisationForecast) -> PeriodFollowUp:
    """``august_follow_up`` with Ekbacken's förvaltningens prognos = the model's − 2 mnkr."""
    model = forecast.get("1210", "total")
    assert model is not None
    node = follow_up.nodes["1210"]
    adjusted = replace(node, adjusted_full_year_sek=model.full_year + ADJUSTED_1210_DELTA)
    return PeriodFollowUp(follow_up.period, {**follow_up.nodes, "1210": adjusted})
