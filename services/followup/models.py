"""SQLAlchemy models of the monthly follow-up (created by migration 0002 of the snapshot store).

The follow-up lives in the snapshot database (one ``BUDGETVAKT_DATABASE_URL``), beside the frozen
forecasts it comments on:

* ``followup_user``: who may log in to ``budgetvakt web`` (argon2 hash, role, org node);
* ``followup_session``: server-side sessions (only a hash of the cookie's token is stored);
* ``followup_comment``: the chef's analysis of a node's deviation; append-only, so the newest row
  is the comment and the older rows are its history;
* ``followup_measure``: åtgärder; changed in place, every change is in the audit table;
* ``followup_adjustment``: förvaltningens prognos (full year, mandatory reason); append-only;
* ``followup_approval``: a controller's approval of one node for one snapshot version, with the
  node's follow-up as it was at that moment (``frozen``);
* ``followup_audit``: every write: who, when, what, before and after.

Periods are ``YYYY-MM`` keys as in ``snapshot.period``; org units are ids of ``config/org.yaml``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, DateTime, Double, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.snapshots.models import Base

ROLES = ("enhetschef", "avdelningschef", "controller", "forvaltningschef")
MEASURE_STATUSES = ("planerad", "beslutad", "genomford")
#: How a Swedish reader sees each status (lower case, as inside a sentence).
MEASURE_STATUS_SV = {"planerad": "planerad", "beslutad": "beslutad", "genomford": "genomförd"}


class UserRecord(Base):
    __tablename__ = "followup_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    # the user's node, or several comma-separated (a kommun's controller: its nämnder; 0004)
    org_unit: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SessionRecord(Base):
    __tablename__ = "followup_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the cookie
    username: Mapped[str] = mapped_column(String(64), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CommentRecord(Base):
    __tablename__ = "followup_comment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    org_unit: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    snapshot_version: Mapped[int | None] = mapped_column(Integer)


class MeasureRecord(Base):
    __tablename__ = "followup_measure"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    org_unit: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    responsible: Mapped[str] = mapped_column(Text)
    amount_sek: Mapped[float] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(16))
    decided: Mapped[date | None] = mapped_column(Date)
    realised_sek: Mapped[float | None] = mapped_column(Double)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AdjustmentRecord(Base):
    __tablename__ = "followup_adjustment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    org_unit: Mapped[str] = mapped_column(String(64))
    full_year_sek: Mapped[float] = mapped_column(Double)
    reason: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    snapshot_version: Mapped[int | None] = mapped_column(Integer)


class ApprovalRecord(Base):
    __tablename__ = "followup_approval"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    org_unit: Mapped[str] = mapped_column(String(64))
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshot.id", ondelete="RESTRICT"))
    snapshot_version: Mapped[int] = mapped_column(Integer)
    approved_by: Mapped[str] = mapped_column(String(64))
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    comment: Mapped[str | None] = mapped_column(Text)
    frozen: Mapped[dict[str, Any]] = mapped_column(JSON)


class AuditRecord(Base):
    __tablename__ = "followup_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    period: Mapped[str | None] = mapped_column(String(7), index=True)
    org_unit: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
