"""Snapshot rows: the method behind each forecast's interval and its measured coverage.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

Two nullable columns of ``snapshot_row``: ``interval_method`` (how the row's 80 % interval was
made, e.g. the series' own backtest or a width learnt from the panel) and ``interval_coverage``
(the share 0..1 of earlier intervals of that method that held the outcome), as the forecasts
report them. Rows written before this revision, or by a forecast that does not report them, hold
NULL; the reports then count the hit rate from the previous year's snapshots themselves. Adding
columns changes no existing row, so the immutability triggers of 0001 stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("snapshot_row", sa.Column("interval_method", sa.Text(), nullable=True))
    op.add_column("snapshot_row", sa.Column("interval_coverage", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("snapshot_row") as batch:
        batch.drop_column("interval_coverage")
        batch.drop_column("interval_method")
