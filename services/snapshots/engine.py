"""Engines for the snapshot store: PostgreSQL in production, a SQLite file by default.

SQLite gets three connection settings that the store relies on: foreign keys on (off by default
in SQLite), a busy timeout (the worker and a report command may use the file at once), and
transactions begun by SQLAlchemy rather than by the sqlite3 module, so that a writer can take
the write lock at BEGIN (``BEGIN IMMEDIATE``, see :func:`write_connection`) instead of failing
with "database is locked" when two writers upgrade their read locks at the same time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from core.errors import UserError

SQLITE_BUSY_TIMEOUT_S = 30.0
_BEGIN_OPTION = "budgetvakt_begin"


def describe_url(url: str) -> str:
    """The URL with its password masked: safe to print and log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<ogiltig databas-URL>"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a malformed URL or a missing driver is a :class:`UserError`.

    For a SQLite file the parent directory is created, so the default (a file in the data dir)
    works on a fresh checkout.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(
            f"BUDGETVAKT_DATABASE_URL is not a valid database URL: {describe_url(url)} "
            "(e.g. postgresql+psycopg2://user@host/database or sqlite:///path.sqlite)"
        ) from None
    is_sqlite = parsed.get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            try:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UserError(
                    f"cannot create the directory of the SQLite file {database}: {err.strerror}"
                ) from None
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as err:
        raise UserError(
            f"the database driver for {describe_url(url)} is missing: {err} "
            "(PostgreSQL: use postgresql+psycopg2://)"
        ) from None
    if is_sqlite:
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # None: the sqlite3 module issues no BEGIN of its own; _on_begin below does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that will write (committed on success, else rolled back).

    On SQLite the transaction takes the write lock at once (``BEGIN IMMEDIATE``): concurrent
    writers queue on the busy timeout instead of deadlocking on a lock upgrade.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        with connection.begin():
            yield connection
