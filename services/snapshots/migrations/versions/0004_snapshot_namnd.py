"""snapshot.namnd: a snapshot is one nämnd's (or omappad's); versions count per nämnd and period.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

The nämnd is the unit of ownership: each worker snapshots the nämnder it owns, so two nämnder
closing the same month both get version 1. ``snapshot.namnd`` holds the owner id (a nämnd id of
``config/org.yaml`` or ``omappad``) and the unique key becomes ``(namnd, period, version)``
instead of ``(period, version)``.

Existing snapshots are back-filled with the root of their rows: the stored nämnd row (level
``namnd``, not ``omappad``; before the forest organisation there was exactly one), else the row
without a parent, else ``omappad``. For a one-nämnd deployment that is its one nämnd.

``late_event.namnd`` records the owner of a late event's cost centre, so that the next snapshot
of *that* nämnd takes it; null for events recorded before this revision (the next snapshot of
any nämnd takes those, as before).

``followup_user.org_unit`` is widened to 512 characters: a controller of a whole kommun may be
given several nodes (comma-separated ids, see ``services.followup.users``).

SQLite cannot drop a table constraint in place, so both tables are rebuilt there (Alembic's
batch mode; ``services.snapshots.migrate`` runs migrations with foreign keys off and checks them
before the commit). The snapshot table's immutability triggers are lifted for the back-fill
and put back afterwards (SQLite: re-created, since the rebuild drops them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UNMAPPED_ID = "omappad"  # core.hierarchy.UNMAPPED_ID, spelled out: a migration keeps its meaning

# The root of a snapshot's rows (see the module docstring), as an SQL expression.
_BACKFILL = f"""
UPDATE snapshot SET namnd = COALESCE(
    (SELECT MIN(r.org_unit) FROM snapshot_row r
      WHERE r.snapshot_id = snapshot.id AND r.level = 'namnd' AND r.org_unit <> '{UNMAPPED_ID}'),
    (SELECT MIN(r.org_unit) FROM snapshot_row r
      WHERE r.snapshot_id = snapshot.id AND r.parent_org_unit IS NULL),
    '{UNMAPPED_ID}')
"""


def _snapshot_table(unique: tuple[str, ...], unique_name: str, with_namnd: bool) -> sa.Table:
    """The snapshot table as batch mode must rebuild it on SQLite (every constraint named)."""
    columns: list[sa.schema.SchemaItem] = [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.String(32), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of_month", sa.Integer(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("late_event_count", sa.Integer(), nullable=False),
    ]
    if with_namnd:
        columns.append(sa.Column("namnd", sa.String(64), nullable=True))
    return sa.Table(
        "snapshot",
        sa.MetaData(),
        *columns,
        sa.PrimaryKeyConstraint("id", name="pk_snapshot"),
        sa.UniqueConstraint(*unique, name=unique_name),
        sa.CheckConstraint("version >= 1", name="ck_snapshot_version_positive"),
        sa.CheckConstraint("month BETWEEN 1 AND 12", name="ck_snapshot_month_range"),
        sa.CheckConstraint("as_of_month BETWEEN 1 AND 12", name="ck_snapshot_as_of_month_range"),
        sa.CheckConstraint("trigger IN ('period_close', 'cli')", name="ck_snapshot_trigger_known"),
        sa.CheckConstraint(
            "late_event_count >= 0", name="ck_snapshot_late_event_count_non_negative"
        ),
        sa.Index("ix_snapshot_year", "year"),
    )


def _user_table(org_unit_length: int) -> sa.Table:
    return sa.Table(
        "followup_user",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("org_unit", sa.String(org_unit_length), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_followup_user"),
        sa.UniqueConstraint("username", name="uq_followup_user_username"),
        sa.CheckConstraint(
            "role IN ('enhetschef', 'avdelningschef', 'controller', 'forvaltningschef')",
            name="ck_followup_user_role_known",
        ),
    )


def _sqlite_snapshot_triggers(create: bool) -> None:
    for operation in ("UPDATE", "DELETE"):
        name = f"snapshot_no_{operation.lower()}"
        if create:
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {operation} ON snapshot "
                "BEGIN SELECT RAISE(ABORT, 'budgetvakt: snapshot is immutable "
                f"({operation} rejected)'); END"
            )
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("late_event", sa.Column("namnd", sa.String(64), nullable=True))
    if dialect == "postgresql":
        op.execute("ALTER TABLE snapshot DISABLE TRIGGER snapshot_immutable")
        op.add_column("snapshot", sa.Column("namnd", sa.String(64), nullable=True))
        op.execute(_BACKFILL)
        op.execute("ALTER TABLE snapshot ENABLE TRIGGER snapshot_immutable")
        op.alter_column("snapshot", "namnd", nullable=False)
        op.drop_constraint("uq_snapshot_period_version", "snapshot", type_="unique")
        op.create_unique_constraint(
            "uq_snapshot_namnd_period_version", "snapshot", ["namnd", "period", "version"]
        )
        op.alter_column("followup_user", "org_unit", type_=sa.String(512))
        return
    _sqlite_snapshot_triggers(create=False)
    op.add_column("snapshot", sa.Column("namnd", sa.String(64), nullable=True))
    op.execute(_BACKFILL)
    old = _snapshot_table(("period", "version"), "uq_snapshot_period_version", with_namnd=True)
    with op.batch_alter_table("snapshot", copy_from=old, recreate="always") as batch:
        batch.alter_column("namnd", existing_type=sa.String(64), nullable=False)
        batch.drop_constraint("uq_snapshot_period_version", type_="unique")
        batch.create_unique_constraint(
            "uq_snapshot_namnd_period_version", ["namnd", "period", "version"]
        )
    _sqlite_snapshot_triggers(create=True)
    with op.batch_alter_table("followup_user", copy_from=_user_table(64)) as batch:
        batch.alter_column("org_unit", existing_type=sa.String(64), type_=sa.String(512))


def downgrade() -> None:
    """Only possible while no period has snapshots of two nämnder with the same version."""
    dialect = op.get_bind().dialect.name
    op.drop_column("late_event", "namnd")  # SQLite ≥ 3.35 drops a column in place
    if dialect == "postgresql":
        op.drop_constraint("uq_snapshot_namnd_period_version", "snapshot", type_="unique")
        op.create_unique_constraint("uq_snapshot_period_version", "snapshot", ["period", "version"])
        op.drop_column("snapshot", "namnd")
        op.alter_column("followup_user", "org_unit", type_=sa.String(64))
        return
    _sqlite_snapshot_triggers(create=False)
    new = _snapshot_table(
        ("namnd", "period", "version"), "uq_snapshot_namnd_period_version", with_namnd=True
    )
    with op.batch_alter_table("snapshot", copy_from=new, recreate="always") as batch:
        batch.drop_constraint("uq_snapshot_namnd_period_version", type_="unique")
        batch.create_unique_constraint("uq_snapshot_period_version", ["period", "version"])
        batch.drop_column("namnd")
    _sqlite_snapshot_triggers(create=True)
    with op.batch_alter_table("followup_user", copy_from=_user_table(512)) as batch:
        batch.alter_column("org_unit", existing_type=sa.String(512), type_=sa.String(64))
