"""SQLAlchemy 2 models of the snapshot store (the schema itself is created by the migrations).

Three tables:

* ``snapshot``: one frozen monthly forecast of one nämnd (``namnd``: its id, or ``omappad``;
  period ``YYYY-MM``; version 1..n within the nämnd's period: a re-closed period gets a new
  version, never an edit). Two nämnder closing the same month each get their own version 1.
* ``snapshot_row``: one node × category (or measure, or ``total``) of that forecast, with the
  monthly arrays the charts need. Roll-ups are stored as rows of their own, exactly as
  ``forecasts.live.forecast_organisation`` computed them.
* ``late_event``: an event for an already closed period, waiting for the next snapshot to take
  it (``included_in_snapshot_id``), so that a report can say how many arrived late.

Snapshots and their rows are immutable: database triggers reject UPDATE and DELETE (see the
initial migration). Monetary values are ``Double`` (IEEE double precision), not ``Numeric``: they
are forecasts computed in float64 (intervals, sigmas, model paths), the event contract carries
amounts as JSON numbers, and a double holds every whole krona exactly up to 9·10^15, far beyond
any municipal budget. Storing the float as computed makes a loaded snapshot *equal* to the
forecast that was written and keeps roll-up sums reconciling to the last bit; a fixed-scale
``Numeric`` would round every value and break both.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so that migrations can refer to them on every dialect.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TRIGGERS = ("period_close", "cli")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SnapshotRecord(Base):
    __tablename__ = "snapshot"
    __table_args__ = (
        UniqueConstraint("namnd", "period", "version", name="uq_snapshot_namnd_period_version"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("month BETWEEN 1 AND 12", name="month_range"),
        CheckConstraint("as_of_month BETWEEN 1 AND 12", name="as_of_month_range"),
        CheckConstraint("trigger IN ('period_close', 'cli')", name="trigger_known"),
        CheckConstraint("late_event_count >= 0", name="late_event_count_non_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    # the owner: a nämnd id of config/org.yaml or "omappad" (revision 0004)
    namnd: Mapped[str] = mapped_column(String(64))
    year: Mapped[int] = mapped_column(Integer, index=True)
    month: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    checkpoint: Mapped[str | None] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # UTC
    as_of_month: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(Text)  # the model asked for, e.g. "auto"
    late_event_count: Mapped[int] = mapped_column(Integer)


class SnapshotRowRecord(Base):
    __tablename__ = "snapshot_row"
    __table_args__ = (
        UniqueConstraint(
            "snapshot_id", "org_unit", "kind", "category", name="uq_snapshot_row_node"
        ),
        CheckConstraint("kind IN ('cost', 'measure')", name="kind_known"),
        CheckConstraint("as_of_month BETWEEN 1 AND 12", name="as_of_month_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("snapshot.id", ondelete="RESTRICT"), index=True
    )
    org_unit: Mapped[str] = mapped_column(String(64))
    org_unit_name: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(16))
    parent_org_unit: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    category: Mapped[str] = mapped_column(String(64))  # category id, measure id or "total"
    year: Mapped[int] = mapped_column(Integer)
    as_of_month: Mapped[int] = mapped_column(Integer)
    budget_full_year: Mapped[float | None] = mapped_column(Double)
    budget_ytd: Mapped[float | None] = mapped_column(Double)
    actual_ytd: Mapped[float] = mapped_column(Double)
    full_year: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    sigma: Mapped[float] = mapped_column(Double)
    deviation: Mapped[float | None] = mapped_column(Double)
    model: Mapped[str] = mapped_column(Text)
    volume_effect: Mapped[float | None] = mapped_column(Double)
    price_effect: Mapped[float | None] = mapped_column(Double)
    actual_monthly: Mapped[list[float]] = mapped_column(JSON)  # months 1 … as_of_month
    budget_monthly: Mapped[list[float] | None] = mapped_column(JSON)  # 12 months or null
    path: Mapped[list[float]] = mapped_column(JSON)  # months as_of_month+1 … 12
    # forecasts.calibration: how the interval's width was set, and how often such intervals
    # held on the calibration set (null in rows written before revision 0003)
    interval_method: Mapped[str | None] = mapped_column(String(16))
    interval_coverage: Mapped[float | None] = mapped_column(Double)


class LateEventRecord(Base):
    __tablename__ = "late_event"
    __table_args__ = (UniqueConstraint("event_id", name="uq_late_event_event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200))
    org_unit: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7))
    type: Mapped[str] = mapped_column(String(16))
    amount: Mapped[float | None] = mapped_column(Double)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # UTC
    # the owner of org_unit (revision 0004; null before): the snapshot of that nämnd takes it
    namnd: Mapped[str | None] = mapped_column(String(64))
    included_in_snapshot_id: Mapped[int | None] = mapped_column(
        ForeignKey("snapshot.id", ondelete="RESTRICT"), index=True
    )
