"""Alembic environment: configured in code (``services.snapshots.migrate``), no alembic.ini.

``services.snapshots.migrate`` passes an open connection in ``config.attributes["connection"]``; the
offline mode (SQL script output) uses the URL in the config's ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context

from services.snapshots.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "services.snapshots.migrate passes the connection; run `budgetvakt db upgrade`"
        )
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
