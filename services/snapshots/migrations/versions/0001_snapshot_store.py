"""Snapshot store: snapshot, snapshot_row, late_event; immutability triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

The tables are spelled out here rather than created from the models, so that this revision keeps
meaning what it meant when later revisions change the models. Immutability lives in the database:
UPDATE and DELETE (and TRUNCATE on PostgreSQL) of ``snapshot`` and ``snapshot_row`` are rejected
by triggers, whatever client writes; a ``late_event`` that a snapshot has taken can no longer be
changed or deleted, so it is never counted twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

IMMUTABLE_TABLES = ("snapshot", "snapshot_row")

_PG_REJECT_FUNCTION = """
CREATE FUNCTION budgetvakt_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'budgetvakt: % is immutable (% rejected)', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$
"""

_PG_LATE_EVENT_FUNCTION = """
CREATE FUNCTION budgetvakt_guard_late_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.included_in_snapshot_id IS NOT NULL THEN
        RAISE EXCEPTION 'budgetvakt: late_event % is included in snapshot % (% rejected)',
            OLD.id, OLD.included_in_snapshot_id, TG_OP
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$
"""


def _create_tables() -> None:
    op.create_table(
        "snapshot",
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
        sa.PrimaryKeyConstraint("id", name="pk_snapshot"),
        sa.UniqueConstraint("period", "version", name="uq_snapshot_period_version"),
        sa.CheckConstraint("version >= 1", name="ck_snapshot_version_positive"),
        sa.CheckConstraint("month BETWEEN 1 AND 12", name="ck_snapshot_month_range"),
        sa.CheckConstraint("as_of_month BETWEEN 1 AND 12", name="ck_snapshot_as_of_month_range"),
        sa.CheckConstraint("trigger IN ('period_close', 'cli')", name="ck_snapshot_trigger_known"),
        sa.CheckConstraint(
            "late_event_count >= 0", name="ck_snapshot_late_event_count_non_negative"
        ),
    )
    op.create_index("ix_snapshot_year", "snapshot", ["year"])

    op.create_table(
        "snapshot_row",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("org_unit", sa.String(64), nullable=False),
        sa.Column("org_unit_name", sa.Text(), nullable=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent_org_unit", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("as_of_month", sa.Integer(), nullable=False),
        sa.Column("budget_full_year", sa.Double(), nullable=True),
        sa.Column("budget_ytd", sa.Double(), nullable=True),
        sa.Column("actual_ytd", sa.Double(), nullable=False),
        sa.Column("full_year", sa.Double(), nullable=False),
        sa.Column("low", sa.Double(), nullable=False),
        sa.Column("high", sa.Double(), nullable=False),
        sa.Column("sigma", sa.Double(), nullable=False),
        sa.Column("deviation", sa.Double(), nullable=True),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("volume_effect", sa.Double(), nullable=True),
        sa.Column("price_effect", sa.Double(), nullable=True),
        sa.Column("actual_monthly", sa.JSON(), nullable=False),
        sa.Column("budget_monthly", sa.JSON(), nullable=True),
        sa.Column("path", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_snapshot_row"),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
            name="fk_snapshot_row_snapshot_id_snapshot",
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint(
            "snapshot_id", "org_unit", "kind", "category", name="uq_snapshot_row_node"
        ),
        sa.CheckConstraint("kind IN ('cost', 'measure')", name="ck_snapshot_row_kind_known"),
        sa.CheckConstraint(
            "as_of_month BETWEEN 1 AND 12", name="ck_snapshot_row_as_of_month_range"
        ),
    )
    op.create_index("ix_snapshot_row_snapshot_id", "snapshot_row", ["snapshot_id"])

    op.create_table(
        "late_event",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("org_unit", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("amount", sa.Double(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("included_in_snapshot_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_late_event"),
        sa.ForeignKeyConstraint(
            ["included_in_snapshot_id"],
            ["snapshot.id"],
            name="fk_late_event_included_in_snapshot_id_snapshot",
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("event_id", name="uq_late_event_event_id"),
    )
    op.create_index(
        "ix_late_event_included_in_snapshot_id", "late_event", ["included_in_snapshot_id"]
    )


def _create_postgresql_triggers() -> None:
    op.execute(_PG_REJECT_FUNCTION)
    for table in IMMUTABLE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION budgetvakt_reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION budgetvakt_reject_change()"
        )
    op.execute(_PG_LATE_EVENT_FUNCTION)
    op.execute(
        "CREATE TRIGGER late_event_included_frozen BEFORE UPDATE OR DELETE ON late_event "
        "FOR EACH ROW EXECUTE FUNCTION budgetvakt_guard_late_event()"
    )


def _create_sqlite_triggers() -> None:
    for table in IMMUTABLE_TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'budgetvakt: {table} is immutable "
                f"({operation} rejected)'); END"
            )
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER late_event_included_no_{operation.lower()} BEFORE {operation} "
            "ON late_event WHEN OLD.included_in_snapshot_id IS NOT NULL "
            "BEGIN SELECT RAISE(ABORT, 'budgetvakt: late_event is included in a snapshot "
            f"({operation} rejected)'); END"
        )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise RuntimeError(f"unsupported database {dialect!r}: PostgreSQL or SQLite")
    _create_tables()
    if dialect == "postgresql":
        _create_postgresql_triggers()
    else:
        _create_sqlite_triggers()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS late_event_included_frozen ON late_event")
        for table in IMMUTABLE_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_immutable ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS budgetvakt_guard_late_event()")
        op.execute("DROP FUNCTION IF EXISTS budgetvakt_reject_change()")
    else:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS late_event_included_no_{operation}")
            for table in IMMUTABLE_TABLES:
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
    op.drop_table("late_event")
    op.drop_table("snapshot_row")
    op.drop_table("snapshot")
