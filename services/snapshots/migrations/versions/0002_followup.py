"""Monthly follow-up: users, sessions, comments, åtgärder, adjustments, approvals, audit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05

See services/followup/models.py for what each table holds. Comments, adjustments, approvals and
the audit trail are append-only by convention of the code (the history *is* the rows); the audit
table is additionally guarded by triggers that reject UPDATE and DELETE, whatever client writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PG_AUDIT_TRIGGER = (
    "CREATE TRIGGER followup_audit_immutable BEFORE UPDATE OR DELETE ON followup_audit "
    "FOR EACH ROW EXECUTE FUNCTION budgetvakt_reject_change()"
)


def _key(table: str) -> list[sa.SchemaItem]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "followup_user",
        *_key("followup_user"),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("org_unit", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("username", name="uq_followup_user_username"),
        sa.CheckConstraint(
            "role IN ('enhetschef', 'avdelningschef', 'controller', 'forvaltningschef')",
            name="ck_followup_user_role_known",
        ),
    )
    op.create_table(
        "followup_session",
        *_key("followup_session"),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("token_hash", name="uq_followup_session_token_hash"),
    )
    op.create_index("ix_followup_session_username", "followup_session", ["username"])
    op.create_table(
        "followup_comment",
        *_key("followup_comment"),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("org_unit", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot_version", sa.Integer(), nullable=True),
    )
    op.create_index("ix_followup_comment_period", "followup_comment", ["period"])
    op.create_table(
        "followup_measure",
        *_key("followup_measure"),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("org_unit", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("responsible", sa.Text(), nullable=False),
        sa.Column("amount_sek", sa.Double(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided", sa.Date(), nullable=True),
        sa.Column("realised_sek", sa.Double(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('planerad', 'beslutad', 'genomford')",
            name="ck_followup_measure_status_known",
        ),
    )
    op.create_index("ix_followup_measure_period", "followup_measure", ["period"])
    op.create_table(
        "followup_adjustment",
        *_key("followup_adjustment"),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("org_unit", sa.String(64), nullable=False),
        sa.Column("full_year_sek", sa.Double(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot_version", sa.Integer(), nullable=True),
        sa.CheckConstraint("length(trim(reason)) > 0", name="ck_followup_adjustment_reason"),
    )
    op.create_index("ix_followup_adjustment_period", "followup_adjustment", ["period"])
    op.create_table(
        "followup_approval",
        *_key("followup_approval"),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("org_unit", sa.String(64), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_version", sa.Integer(), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("frozen", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
            name="fk_followup_approval_snapshot_id_snapshot",
            ondelete="RESTRICT",
        ),
    )
    op.create_index("ix_followup_approval_period", "followup_approval", ["period"])
    op.create_table(
        "followup_audit",
        *_key("followup_audit"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7), nullable=True),
        sa.Column("org_unit", sa.String(64), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
    )
    op.create_index("ix_followup_audit_period", "followup_audit", ["period"])
    if dialect == "postgresql":
        op.execute(_PG_AUDIT_TRIGGER)
    else:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER followup_audit_no_{operation.lower()} BEFORE {operation} "
                "ON followup_audit BEGIN SELECT RAISE(ABORT, 'budgetvakt: followup_audit is "
                f"immutable ({operation} rejected)'); END"
            )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS followup_audit_immutable ON followup_audit")
    else:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS followup_audit_no_{operation}")
    for table in (
        "followup_audit",
        "followup_approval",
        "followup_adjustment",
        "followup_measure",
        "followup_comment",
        "followup_session",
        "followup_user",
    ):
        op.drop_table(table)
