"""snapshot_row: how the 80 % interval's width was set, and how often such intervals held.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

``interval_method`` (backtest, panel, fallback, actual) and ``interval_coverage`` (the share of
the calibration set's outcomes inside such an interval) of ``forecasts.calibration``, so that a
report can say which method produced a figure and how often its intervals have held. Nullable:
rows written before this revision did not record them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("snapshot_row", sa.Column("interval_method", sa.String(16), nullable=True))
    op.add_column("snapshot_row", sa.Column("interval_coverage", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshot_row") as batch:
        batch.drop_column("interval_coverage")
        batch.drop_column("interval_method")
