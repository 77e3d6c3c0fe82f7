"""Read the monthly follow-up of a period: comments, åtgärder, förvaltningens prognos, approvals.

This is the interface the reports (``services.reports``) and the web application read; the
writes are in :mod:`services.followup.write`. Only nodes with any follow-up data appear in
:attr:`PeriodFollowUp.nodes`; a period without any is empty, not an error.

Per nämnd. A snapshot is one nämnd's (``snapshot.namnd``), and so is the follow-up of its nodes:
every read takes the nämnd (``namnd``; None: the only nämnd with snapshots), and only the nodes
of that nämnd's snapshot of the period appear. Org unit ids are unique in the whole organisation,
so the rows themselves need no nämnd column: a node's nämnd is the one whose snapshot of the
period holds it (:func:`namnd_of_unit`).

An approval belongs to one snapshot version (``snapshot_version``). A change to an approved node
after its approval makes a new snapshot version (see :mod:`services.followup.write`), so
:attr:`NodeFollowUp.approval` is the node's approval *of the period's latest snapshot version*
and None when there is none or it was superseded; :func:`approval_history` lists them all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import sqlalchemy
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.followup.models import (
    AdjustmentRecord,
    ApprovalRecord,
    AuditRecord,
    CommentRecord,
    MeasureRecord,
)
from services.snapshots.migrate import ensure_at_head
from services.snapshots.models import SnapshotRecord, SnapshotRowRecord
from services.snapshots.store import default_namnd

MeasureStatus = Literal["planerad", "beslutad", "genomford"]

__all__ = [
    "Adjustment",
    "Approval",
    "AuditEntry",
    "Comment",
    "Measure",
    "MeasureStatus",
    "NodeFollowUp",
    "PeriodFollowUp",
    "adjustment_history",
    "approval_history",
    "audit_trail",
    "comment_history",
    "latest_snapshot_version",
    "load_follow_up",
]


@dataclass(frozen=True)
class Measure:
    text: str
    responsible: str
    amount_sek: float  # the saving the åtgärd is meant to bring, full year, SEK
    status: MeasureStatus
    decided: date | None
    realised_sek: float | None
    id: int = 0  # the row id (to change status or realised amount); 0 when built by hand


@dataclass(frozen=True)
class Approval:
    approved_by: str
    approved_at: datetime  # UTC
    snapshot_version: int
    comment: str | None


@dataclass(frozen=True)
class NodeFollowUp:
    org_unit: str
    comment: str | None
    comment_by: str | None
    measures: tuple[Measure, ...]
    adjusted_full_year_sek: float | None  # förvaltningens prognos; None = the model's stands
    adjustment_reason: str | None
    approval: Approval | None  # of the period's latest (or the asked) snapshot version only


@dataclass(frozen=True)
class PeriodFollowUp:
    period: str
    nodes: Mapping[str, NodeFollowUp] = field(default_factory=dict)  # only nodes with data


@dataclass(frozen=True)
class Comment:
    text: str
    author: str
    created_at: datetime
    snapshot_version: int | None


@dataclass(frozen=True)
class Adjustment:
    full_year_sek: float
    reason: str
    author: str
    created_at: datetime
    snapshot_version: int | None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    username: str
    action: str
    period: str | None
    org_unit: str | None
    before: Any
    after: Any


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def latest_snapshot_version(session: Session, period: str, namnd: str) -> SnapshotRecord | None:
    """The nämnd's latest snapshot of the period."""
    return session.scalar(
        select(SnapshotRecord)
        .where(SnapshotRecord.period == period, SnapshotRecord.namnd == namnd)
        .order_by(SnapshotRecord.version.desc())
        .limit(1)
    )


def namnd_of_unit(session: Session, period: str, org_unit: str) -> str | None:
    """The nämnd whose snapshot of the period holds ``org_unit``; None when none does."""
    return session.scalar(
        select(SnapshotRecord.namnd)
        .join(SnapshotRowRecord, SnapshotRowRecord.snapshot_id == SnapshotRecord.id)
        .where(SnapshotRecord.period == period, SnapshotRowRecord.org_unit == org_unit)
        .order_by(SnapshotRecord.id.desc())
        .limit(1)
    )


def _units(session: Session, snapshot_id: int) -> set[str]:
    return set(
        session.scalars(
            select(SnapshotRowRecord.org_unit)
            .where(SnapshotRowRecord.snapshot_id == snapshot_id)
            .distinct()
        )
    )


def measure_of(record: MeasureRecord) -> Measure:
    return Measure(
        text=record.text,
        responsible=record.responsible,
        amount_sek=record.amount_sek,
        status=record.status,  # type: ignore[arg-type]  # the check constraint holds it
        decided=record.decided,
        realised_sek=record.realised_sek,
        id=record.id,
    )


def _newest(records: list[Any]) -> dict[str, Any]:
    """org_unit → the newest record (records ordered by id ascending)."""
    out: dict[str, Any] = {}
    for record in records:
        out[record.org_unit] = record
    return out


def load_follow_up(
    engine: sqlalchemy.Engine,
    period: str,
    *,
    snapshot_version: int | None = None,
    namnd: str | None = None,
) -> PeriodFollowUp:
    """The nämnd's follow-up of ``period`` as it stands now; empty when the tables hold nothing
    (or the nämnd has no snapshot of the period). ``namnd`` None: the only nämnd.

    ``snapshot_version`` (for a report of an older, frozen version): the approvals of that
    version, and the comments and adjustments written up to it. Åtgärder are changed in place
    and are always the current ones (their history is in the audit trail).
    """
    ensure_at_head(engine)
    owner = default_namnd(engine, namnd)
    with Session(engine) as session:
        latest = latest_snapshot_version(session, period, owner) if owner else None
        if latest is None:
            return PeriodFollowUp(period=period)
        mine = _units(session, latest.id)
        comment_query = select(CommentRecord).where(CommentRecord.period == period)
        adjustment_query = select(AdjustmentRecord).where(AdjustmentRecord.period == period)
        if snapshot_version is not None:
            comment_query = comment_query.where(CommentRecord.snapshot_version <= snapshot_version)
            adjustment_query = adjustment_query.where(
                AdjustmentRecord.snapshot_version <= snapshot_version
            )
        comments = _newest(list(session.scalars(comment_query.order_by(CommentRecord.id))))
        adjustments = _newest(list(session.scalars(adjustment_query.order_by(AdjustmentRecord.id))))
        measures: dict[str, list[Measure]] = {}
        for record in session.scalars(
            select(MeasureRecord).where(MeasureRecord.period == period).order_by(MeasureRecord.id)
        ):
            measures.setdefault(record.org_unit, []).append(measure_of(record))
        version = latest.version if snapshot_version is None else snapshot_version
        approvals: dict[str, ApprovalRecord] = _newest(
            list(
                session.scalars(
                    select(ApprovalRecord)
                    .join(SnapshotRecord, SnapshotRecord.id == ApprovalRecord.snapshot_id)
                    .where(ApprovalRecord.period == period, SnapshotRecord.namnd == owner)
                    .where(ApprovalRecord.snapshot_version == version)
                    .order_by(ApprovalRecord.id)
                )
            )
        )
    units = sorted((set(comments) | set(adjustments) | set(measures) | set(approvals)) & mine)
    nodes: dict[str, NodeFollowUp] = {}
    for unit in units:
        comment, adjustment, approval = (
            comments.get(unit),
            adjustments.get(unit),
            approvals.get(unit),
        )
        nodes[unit] = NodeFollowUp(
            org_unit=unit,
            comment=comment.text if comment else None,
            comment_by=comment.author if comment else None,
            measures=tuple(measures.get(unit, ())),
            adjusted_full_year_sek=adjustment.full_year_sek if adjustment else None,
            adjustment_reason=adjustment.reason if adjustment else None,
            approval=(
                Approval(
                    approved_by=approval.approved_by,
                    approved_at=utc(approval.approved_at),
                    snapshot_version=approval.snapshot_version,
                    comment=approval.comment,
                )
                if approval
                else None
            ),
        )
    return PeriodFollowUp(period=period, nodes=nodes)


def comment_history(engine: sqlalchemy.Engine, period: str, org_unit: str) -> list[Comment]:
    """Every comment of the node, newest first (the first is the current one)."""
    ensure_at_head(engine)
    with Session(engine) as session:
        return [
            Comment(r.text, r.author, utc(r.created_at), r.snapshot_version)
            for r in session.scalars(
                select(CommentRecord)
                .where(CommentRecord.period == period, CommentRecord.org_unit == org_unit)
                .order_by(CommentRecord.id.desc())
            )
        ]


def adjustment_history(engine: sqlalchemy.Engine, period: str, org_unit: str) -> list[Adjustment]:
    """Every adjustment of the node, newest first (the first is förvaltningens prognos)."""
    ensure_at_head(engine)
    with Session(engine) as session:
        return [
            Adjustment(r.full_year_sek, r.reason, r.author, utc(r.created_at), r.snapshot_version)
            for r in session.scalars(
                select(AdjustmentRecord)
                .where(AdjustmentRecord.period == period, AdjustmentRecord.org_unit == org_unit)
                .order_by(AdjustmentRecord.id.desc())
            )
        ]


@dataclass(frozen=True)
class ApprovalEntry:
    org_unit: str
    approval: Approval
    frozen: Mapping[str, Any]  # the node's follow-up as it was approved
    current: bool  # of the period's latest snapshot version


def approval_history(
    engine: sqlalchemy.Engine,
    period: str,
    org_unit: str | None = None,
    *,
    namnd: str | None = None,
) -> list[ApprovalEntry]:
    """Every approval of the nämnd's period (or of one node, whose nämnd it is), newest first.
    ``namnd`` None and no ``org_unit``: the only nämnd."""
    ensure_at_head(engine)
    with Session(engine) as session:
        owner = namnd
        if owner is None and org_unit is not None:
            owner = namnd_of_unit(session, period, org_unit)
        owner = owner or default_namnd(engine, None)
        if owner is None:
            return []
        latest = latest_snapshot_version(session, period, owner)
        query = (
            select(ApprovalRecord)
            .join(SnapshotRecord, SnapshotRecord.id == ApprovalRecord.snapshot_id)
            .where(ApprovalRecord.period == period, SnapshotRecord.namnd == owner)
        )
        if org_unit is not None:
            query = query.where(ApprovalRecord.org_unit == org_unit)
        return [
            ApprovalEntry(
                org_unit=r.org_unit,
                approval=Approval(r.approved_by, utc(r.approved_at), r.snapshot_version, r.comment),
                frozen=r.frozen,
                current=latest is not None and r.snapshot_version == latest.version,
            )
            for r in session.scalars(query.order_by(ApprovalRecord.id.desc()))
        ]


def audit_trail(
    engine: sqlalchemy.Engine, period: str | None = None, org_unit: str | None = None
) -> list[AuditEntry]:
    """The audit rows (of a period, of one node), newest first."""
    ensure_at_head(engine)
    query = select(AuditRecord)
    if period is not None:
        query = query.where(AuditRecord.period == period)
    if org_unit is not None:
        query = query.where(AuditRecord.org_unit == org_unit)
    with Session(engine) as session:
        return [
            AuditEntry(utc(r.at), r.username, r.action, r.period, r.org_unit, r.before, r.after)
            for r in session.scalars(query.order_by(AuditRecord.id.desc()))
        ]


def snapshot_versions(
    engine: sqlalchemy.Engine, period: str, namnd: str | None = None
) -> list[tuple[int, datetime, str]]:
    """(version, created_at, trigger) of every snapshot of the nämnd's period, newest first
    (``namnd`` None: the only nämnd)."""
    ensure_at_head(engine)
    owner = default_namnd(engine, namnd)
    with Session(engine) as session:
        return [
            (r.version, utc(r.created_at), r.trigger)
            for r in session.scalars(
                select(SnapshotRecord)
                .where(SnapshotRecord.period == period, SnapshotRecord.namnd == owner)
                .order_by(SnapshotRecord.version.desc())
            )
        ]


def periods_with_snapshots(
    engine: sqlalchemy.Engine, namnder: Collection[str] | None = None
) -> list[str]:
    """Every period with a snapshot (of one of ``namnder``; None: of any), newest first."""
    ensure_at_head(engine)
    query = select(SnapshotRecord.period).group_by(SnapshotRecord.period)
    if namnder is not None:
        query = query.where(SnapshotRecord.namnd.in_(list(namnder)))
    with Session(engine) as session:
        return sorted(session.scalars(query), reverse=True)
