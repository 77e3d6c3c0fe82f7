"""Alembic, configured in code: ``budgetvakt db upgrade`` and the at-head check of every command.

No alembic.ini: the script location is this package's ``migrations`` directory and the
connection is handed to ``migrations/env.py`` through ``Config.attributes``.
"""

from __future__ import annotations

import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from core.errors import UserError
from services.snapshots.engine import _BEGIN_OPTION, describe_url, make_engine, write_connection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SUPPORTED_DIALECTS = ("postgresql", "sqlite")

# Engines whose schema was found at head: checked once per engine, not once per call.
_AT_HEAD: weakref.WeakSet[Engine] = weakref.WeakSet()


class SchemaNotAtHead(UserError):
    """The database schema is missing or older (or newer) than this code's migrations."""


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations in services/snapshots/migrations/versions"
    return head


def _unreachable(engine: Engine, err: SQLAlchemyError) -> UserError:
    detail = str(getattr(err, "orig", err)).strip().splitlines()
    return UserError(
        f"cannot connect to the database {describe_url(str(engine.url))}: "
        f"{detail[0] if detail else type(err).__name__}"
    )


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision; None for an empty database."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as err:
        raise _unreachable(engine, err) from None


def upgrade(url: str, revision: str = "head") -> str:
    """Migrate the database at ``url`` to head (or to ``revision``, for the migration tests);
    returns the revision it is at afterwards."""
    engine = make_engine(url)
    try:
        if engine.dialect.name not in SUPPORTED_DIALECTS:
            raise UserError(
                f"the database {describe_url(url)} is not supported: use PostgreSQL "
                "(postgresql+psycopg2://) or SQLite (sqlite:///file)"
            )
        config = alembic_config(url)
        try:
            _run_upgrade(engine, config, revision)
        except OperationalError as err:
            raise _unreachable(engine, err) from None
        except CommandError as err:
            # E.g. a database migrated by a newer budgetvakt: its revision is unknown here.
            raise UserError(
                f"the database {describe_url(url)} cannot be upgraded by this version of "
                f"budgetvakt: {err}"
            ) from None
        reached = current_revision(engine)
        assert reached is not None
        return reached
    finally:
        engine.dispose()


def _run_upgrade(engine: Engine, config: Config, revision: str) -> None:
    """Alembic's upgrade in one transaction. On SQLite with foreign keys off (a migration that
    rebuilds a referenced table, as 0004 does, would otherwise fail on the drop) and a
    ``foreign_key_check`` before the commit, so that no reference is left dangling."""
    if engine.dialect.name != "sqlite":
        with write_connection(engine) as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys = OFF")  # outside a transaction, or it is ignored
        try:
            connection.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if dangling:
                    raise RuntimeError(f"migration left dangling references: {dangling[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys = ON")


def ensure_at_head(engine: Engine) -> None:
    """Raise :class:`SchemaNotAtHead` unless the schema is at this code's head revision."""
    if engine in _AT_HEAD:
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        found = "empty (no tables)" if current is None else f"at revision {current}"
        raise SchemaNotAtHead(
            f"the database {describe_url(str(engine.url))} is {found}, but this code needs "
            f"revision {head}. Run `budgetvakt db upgrade` first."
        )
    _AT_HEAD.add(engine)
