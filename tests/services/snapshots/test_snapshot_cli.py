"""``budgetvakt snapshot --period`` as a subprocess against the embedded broker and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from forecasts.live import forecast_organisation
from services.processes.supervised import free_port
from services.snapshots import load_snapshot, load_snapshots, make_engine
from services.snapshots.migrate import head_revision
from streams.aggregation import leaf_series
from testing.cli import run_cli
from tests.services.snapshots.fixtures import ForecastCase, aggregate_events
from tests.streams.fixtures import StreamCase

YEAR = 2024
THROUGH_MONTH = 4  # events of the year published up to April


def events_through(case: ForecastCase, month: int) -> dict[str, list[dict[str, Any]]]:
    """The scenario's events of the previous year and of YEAR up to ``month``, by topic."""

    def keep(event: dict[str, Any]) -> bool:
        period = event.get("period")
        return period is None or period <= f"{YEAR}-{month:02d}"

    scenario = case.scenario
    return {
        "budget": scenario.budgets,
        "cost": [e for e in scenario.costs if keep(e)],
        "volume": [e for e in scenario.volumes if keep(e)],
        "period_close": [e for e in scenario.period_closes if keep(e)],
    }


@pytest.mark.integration
def test_snapshot_command_replays_forecasts_and_stores_a_new_version(
    stream_case: StreamCase, postgres_url: str, forecast_case: ForecastCase
) -> None:
    by_topic = events_through(forecast_case, THROUGH_MONTH)
    for topic, events in by_topic.items():
        stream_case.publish(topic, events)
    stream_case.publish("cost", by_topic["cost"][:25])  # re-sent copies: counted once
    stream_case.publish("cost", [b"{broken", json.dumps({"type": "cost"}).encode()])
    env = {**stream_case.env, "BUDGETVAKT_DATABASE_URL": postgres_url}

    upgraded = run_cli("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"revision {head_revision()}" in upgraded.stdout

    done = run_cli("snapshot", "--period", f"{YEAR}-03", env=env)
    assert done.returncode == 0, done.stderr
    assert f"period {YEAR}-03, version 1, checkpoint mars" in done.stdout
    assert "Vård- och omsorgsnämnden (VON) 2024 as of mars: budget " in done.stdout
    assert "2 invalid, 25 duplicates" in done.stdout
    assert "closed periods" in done.stdout

    # What was stored is what the worker's aggregation of the same events forecasts.
    all_events = [e for events in by_topic.values() for e in events]
    items = aggregate_events(all_events, forecast_case.domain)
    leaves, latest = leaf_series(items.items(), YEAR)
    assert latest == THROUGH_MONTH
    expected = forecast_organisation(leaves, forecast_case.domain, YEAR, 3, model="auto")
    engine = make_engine(postgres_url)
    try:
        stored = load_snapshot(engine, f"{YEAR}-03")
        assert stored is not None
        assert (stored.version, stored.trigger, stored.checkpoint) == (1, "cli", "mars")
        assert stored.forecast == expected
        assert f"Snapshot {stored.id} stored" in done.stdout
        total = expected.get("VON", "total")
        assert total is not None and total.deviation is not None
        from core.swedish import format_mnkr

        assert f"deviation {format_mnkr(total.deviation)} mnkr" in done.stdout
        with engine.connect() as connection:
            names: dict[str, str] = dict(
                connection.execute(
                    text("SELECT org_unit, org_unit_name FROM snapshot_row WHERE snapshot_id = :i"),
                    {"i": stored.id},
                ).all()
            )
        assert names["3130"] == "Ekonomiskt bistånd"

        # Again, with a checkpoint of its own: version 2; version 1 stays as it was.
        again = run_cli("snapshot", "--period", f"{YEAR}-03", "--checkpoint", "extra", env=env)
        assert again.returncode == 0, again.stderr
        assert "version 2, checkpoint extra" in again.stdout
        versions = load_snapshots(engine, YEAR, latest_version_only=False)
        assert [(s.version, s.checkpoint) for s in versions] == [(1, "mars"), (2, "extra")]
        assert versions[0].forecast == expected and versions[0].created_at == stored.created_at

        # A month without costs yet is refused.
        early = run_cli("snapshot", "--period", f"{YEAR}-06", env=env)
        assert early.returncode == 2
        assert f"the latest month with costs is {YEAR}-04" in early.stderr
        assert len(load_snapshots(engine, YEAR, latest_version_only=False)) == 2
    finally:
        engine.dispose()


def test_snapshot_command_refuses_a_database_that_is_not_upgraded(tmp_path: Path) -> None:
    env = {
        "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "BUDGETVAKT_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite'}",
    }
    done = run_cli("snapshot", "--period", "2024-03", env=env)
    assert done.returncode == 2
    assert "budgetvakt db upgrade" in done.stderr
    assert "Traceback" not in done.stderr


def test_snapshot_command_needs_a_broker_address_and_a_valid_period(tmp_path: Path) -> None:
    env = {"BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": ""}
    missing = run_cli("snapshot", "--period", "2024-03", env=env)
    assert missing.returncode == 2
    assert "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS is not set" in missing.stderr
    bad = run_cli("snapshot", "--period", "mars", env=env)
    assert bad.returncode == 2
    assert "--period 'mars'" in bad.stderr


def test_snapshot_command_reports_an_unreachable_broker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    env = {
        "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "BUDGETVAKT_DATABASE_URL": url,
    }
    assert run_cli("db", "upgrade", env=env).returncode == 0
    done = run_cli("snapshot", "--period", "2024-03", "--timeout", "2", env=env)
    assert done.returncode == 2
    assert "cannot reach Kafka" in done.stderr
    assert "Traceback" not in done.stderr
