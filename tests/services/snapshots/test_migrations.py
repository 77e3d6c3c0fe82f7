"""Migrations from an empty database, the at-head check, and ``budgetvakt db upgrade``."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from core.errors import UserError
from services.processes.supervised import free_port
from services.snapshots import make_engine, upgrade
from services.snapshots.migrate import (
    SchemaNotAtHead,
    current_revision,
    ensure_at_head,
    head_revision,
)
from services.snapshots.models import Base
from services.snapshots.store import load_snapshot, load_snapshots, record_late_event
from testing.cli import run_cli


def test_upgrade_from_empty_creates_the_schema_at_head(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        assert upgrade(database_url) == head_revision() == "0004"
        assert current_revision(engine) == "0004"
        tables = set(inspect(engine).get_table_names())
        assert {"snapshot", "snapshot_row", "late_event", "alembic_version"} <= tables
        assert upgrade(database_url) == "0004"  # a second upgrade is a no-op
    finally:
        engine.dispose()


def test_models_match_the_migrated_schema(migrated_url: str) -> None:
    """The typed models and the hand-written migration describe the same tables."""
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_store_refuses_a_database_that_is_not_at_head(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with pytest.raises(SchemaNotAtHead) as caught:
            ensure_at_head(engine)
        assert "budgetvakt db upgrade" in str(caught.value)
        assert "empty" in str(caught.value)
        with pytest.raises(SchemaNotAtHead):
            load_snapshots(engine, 2024)
        with pytest.raises(SchemaNotAtHead):
            load_snapshot(engine, "2024-03")
        with pytest.raises(SchemaNotAtHead):
            record_late_event(
                engine, event_id="e1", org_unit="1110", period="2024-03", type="cost", amount=1.0
            )
    finally:
        engine.dispose()


def test_a_database_at_an_unknown_revision_is_refused(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0000_older'")
        with pytest.raises(SchemaNotAtHead, match="revision 0000_older"):
            ensure_at_head(engine)
        with pytest.raises(UserError, match=r"cannot be upgraded.*0000_older"):
            upgrade(migrated_url)
    finally:
        engine.dispose()


@pytest.mark.integration
def test_db_upgrade_command_migrates_and_names_the_revision(postgres_url: str) -> None:
    done = run_cli("db", "upgrade", env={"BUDGETVAKT_DATABASE_URL": postgres_url})
    assert done.returncode == 0, done.stderr
    assert "revision 0004" in done.stdout
    engine = make_engine(postgres_url)
    try:
        assert current_revision(engine) == "0004"
    finally:
        engine.dispose()


def test_db_upgrade_default_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data" / "nested"
    env = {"BUDGETVAKT_DATA_DIR": str(data_dir), "BUDGETVAKT_DATABASE_URL": ""}
    done = run_cli("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    database = data_dir / "budgetvakt.sqlite"
    assert database.is_file()
    assert str(database.resolve()) in done.stdout
    engine = make_engine(f"sqlite:///{database}")
    try:
        assert current_revision(engine) == "0004"
    finally:
        engine.dispose()


def test_unreachable_database_is_a_clear_error_without_traceback() -> None:
    url = f"postgresql+psycopg2://nobody:hemligt@127.0.0.1:{free_port()}/saknas"
    done = run_cli("db", "upgrade", env={"BUDGETVAKT_DATABASE_URL": url})
    assert done.returncode == 2
    assert "cannot connect to the database" in done.stderr
    assert "hemligt" not in done.stderr + done.stdout  # the password is masked
    assert "Traceback" not in done.stderr


def test_malformed_url_is_a_user_error() -> None:
    with pytest.raises(UserError, match="BUDGETVAKT_DATABASE_URL"):
        make_engine("inte en url")
