"""Write the monthly follow-up: comments, åtgärder, förvaltningens prognos, approvals.

Every function takes ``by`` (the username that acts) and writes, in one transaction, its row and
one audit row (who, when, what, before and after). Permissions are checked by the caller (the web
layer, :mod:`services.followup.access`); these functions check the input and the state.

Versions. An approval freezes the node for the period's latest snapshot version: it records the
approver, the time, an optional comment and the node's follow-up as it was (``frozen``). A later
change to an approved node (or to a node below an approved one) makes a new snapshot version: the
latest version's rows are copied unchanged into version n + 1 (trigger ``cli``: made by a person,
not by a period close), the approvals of the nodes the change does not touch are carried over to
it, and the touched nodes must be approved again. The frozen version n keeps its approvals.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any, ParamSpec, TypeVar

import sqlalchemy
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.followup.errors import Conflict, InvalidInput, NotFound
from services.followup.models import (
    MEASURE_STATUSES,
    AdjustmentRecord,
    ApprovalRecord,
    AuditRecord,
    CommentRecord,
    MeasureRecord,
)
from services.followup.read import (
    Approval,
    latest_snapshot_version,
    measure_of,
    namnd_of_unit,
    utc,
)
from services.snapshots.engine import write_connection
from services.snapshots.migrate import ensure_at_head
from services.snapshots.models import SnapshotRecord, SnapshotRowRecord
from services.snapshots.store import retry_on_version_conflict

__all__ = ["add_measure", "approve", "set_adjustment", "set_comment", "update_measure"]

log = structlog.get_logger(__name__)

TEXT_MAX_LENGTH = 4000
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _retry_on_version_conflict(write: Callable[_P, _T]) -> Callable[_P, _T]:
    """Two writers that both start version n + 1 on PostgreSQL: the second runs again and finds
    version n + 1 (the snapshot store's retry)."""

    @functools.wraps(write)
    def attempt(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return retry_on_version_conflict(
            lambda: write(*args, **kwargs), "followup_version_conflict"
        )

    return attempt


APPROVABLE_LEVELS = ("avdelning", "forvaltning", "namnd")


def _text(value: Any, field: str, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput(field, "is required and must not be empty")
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a text, got {type(value).__name__}")
    text = value.strip()
    if len(text) > TEXT_MAX_LENGTH:
        raise InvalidInput(field, f"is {len(text)} characters, at most {TEXT_MAX_LENGTH}")
    return text


def _amount(value: Any, field: str, *, required: bool = True) -> float | None:
    if value is None:
        if required:
            raise InvalidInput(field, "is required (an amount in SEK)")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(field, f"must be a number of SEK, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInput(field, f"must be a finite number, got {value!r}")
    return number


def _status(value: Any) -> str:
    if value not in MEASURE_STATUSES:
        raise InvalidInput("status", f"must be one of {', '.join(MEASURE_STATUSES)}, got {value!r}")
    return str(value)


def _date(value: Any, field: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(field, f"must be a date YYYY-MM-DD, got {value!r}") from None


class _Context:
    """The latest snapshot of the node's nämnd and period and its org structure, inside a write
    transaction (the nämnd is the one whose snapshot of the period holds the node)."""

    def __init__(self, session: Session, period: str, org_unit: str) -> None:
        self.session, self.period, self.org_unit = session, period, org_unit
        namnd = namnd_of_unit(session, period, org_unit)
        snapshot = latest_snapshot_version(session, period, namnd) if namnd else None
        if snapshot is None:
            if session.scalar(select(SnapshotRecord.id).where(SnapshotRecord.period == period)):
                raise NotFound(f"the org unit {org_unit} is not in the snapshot of {period}")
            raise NotFound(f"no snapshot for the period {period}")
        self.snapshot = snapshot
        rows = session.execute(
            select(
                SnapshotRowRecord.org_unit,
                SnapshotRowRecord.parent_org_unit,
                SnapshotRowRecord.level,
            )
            .where(SnapshotRowRecord.snapshot_id == snapshot.id)
            .where(SnapshotRowRecord.kind == "cost", SnapshotRowRecord.category == "total")
        ).all()
        self.parent = {r.org_unit: r.parent_org_unit for r in rows}
        self.level = {r.org_unit: r.level for r in rows}
        if org_unit not in self.parent:
            raise NotFound(f"the org unit {org_unit} is not in the snapshot of {period}")

    def ancestors_and_self(self, org_unit: str) -> list[str]:
        path = [org_unit]
        while (parent := self.parent.get(path[-1])) is not None and parent not in path:
            path.append(parent)
        return path

    def avdelningar_below(self, org_unit: str) -> list[str]:
        return sorted(
            unit
            for unit, level in self.level.items()
            if level == "avdelning" and org_unit in self.ancestors_and_self(unit)[1:]
        )

    def current_approvals(self) -> list[ApprovalRecord]:
        return list(
            self.session.scalars(
                select(ApprovalRecord)
                .where(ApprovalRecord.snapshot_id == self.snapshot.id)
                .order_by(ApprovalRecord.id)
            )
        )

    def before_change(self, by: str) -> None:
        """A change to an approved node (or below one) starts a new snapshot version."""
        touched = set(self.ancestors_and_self(self.org_unit))
        approvals = self.current_approvals()
        if not any(a.org_unit in touched for a in approvals):
            return
        old = self.snapshot
        new = SnapshotRecord(
            namnd=old.namnd,
            period=old.period,
            year=old.year,
            month=old.month,
            version=old.version + 1,
            checkpoint=old.checkpoint,
            trigger="cli",
            created_at=datetime.now(UTC),
            as_of_month=old.as_of_month,
            model=old.model,
            late_event_count=0,
        )
        self.session.add(new)
        self.session.flush()
        columns = [
            c.key for c in SnapshotRowRecord.__table__.columns if c.key not in ("id", "snapshot_id")
        ]
        for row in self.session.scalars(
            select(SnapshotRowRecord)
            .where(SnapshotRowRecord.snapshot_id == old.id)
            .order_by(SnapshotRowRecord.id)
        ):
            values = {key: getattr(row, key) for key in columns}
            self.session.add(SnapshotRowRecord(snapshot_id=new.id, **values))
        carried = [a for a in approvals if a.org_unit not in touched]
        for approval in carried:
            self.session.add(
                ApprovalRecord(
                    period=approval.period,
                    org_unit=approval.org_unit,
                    snapshot_id=new.id,
                    snapshot_version=new.version,
                    approved_by=approval.approved_by,
                    approved_at=approval.approved_at,
                    comment=approval.comment,
                    frozen={**approval.frozen, "carried_from_version": old.version},
                )
            )
        self.session.flush()
        _audit(
            self.session,
            by=by,
            action="new_version",
            period=self.period,
            org_unit=self.org_unit,
            before={"snapshot_version": old.version},
            after={
                "snapshot_version": new.version,
                "reapproval_needed": sorted(a.org_unit for a in approvals if a.org_unit in touched),
                "approvals_carried_over": sorted(a.org_unit for a in carried),
            },
        )
        log.info(
            "followup_new_snapshot_version",
            period=self.period,
            org_unit=self.org_unit,
            version=new.version,
        )
        self.snapshot = new


def _audit(
    session: Session,
    *,
    by: str,
    action: str,
    period: str | None,
    org_unit: str | None,
    before: Any,
    after: Any,
) -> None:
    session.add(
        AuditRecord(
            at=datetime.now(UTC),
            username=by,
            action=action,
            period=period,
            org_unit=org_unit,
            before=before,
            after=after,
        )
    )


def _measure_json(record: MeasureRecord) -> dict[str, Any]:
    data = asdict(measure_of(record))
    data["decided"] = record.decided.isoformat() if record.decided else None
    return data


def _node_state(session: Session, period: str, org_unit: str) -> dict[str, Any]:
    comment = session.scalar(
        select(CommentRecord)
        .where(CommentRecord.period == period, CommentRecord.org_unit == org_unit)
        .order_by(CommentRecord.id.desc())
        .limit(1)
    )
    adjustment = session.scalar(
        select(AdjustmentRecord)
        .where(AdjustmentRecord.period == period, AdjustmentRecord.org_unit == org_unit)
        .order_by(AdjustmentRecord.id.desc())
        .limit(1)
    )
    measures = session.scalars(
        select(MeasureRecord)
        .where(MeasureRecord.period == period, MeasureRecord.org_unit == org_unit)
        .order_by(MeasureRecord.id)
    )
    return {
        "comment": comment.text if comment else None,
        "comment_by": comment.author if comment else None,
        "adjusted_full_year_sek": adjustment.full_year_sek if adjustment else None,
        "adjustment_reason": adjustment.reason if adjustment else None,
        "measures": [_measure_json(m) for m in measures],
    }


@_retry_on_version_conflict
def set_comment(
    engine: sqlalchemy.Engine, *, period: str, org_unit: str, text: str, by: str
) -> None:
    """The node's comment (analys av avvikelsen); the previous one stays in the history."""
    clean = _text(text, "text")
    ensure_at_head(engine)
    with write_connection(engine) as connection, Session(bind=connection) as session:
        context = _Context(session, period, org_unit)
        context.before_change(by)
        previous = _node_state(session, period, org_unit)["comment"]
        session.add(
            CommentRecord(
                period=period,
                org_unit=org_unit,
                text=clean,
                author=by,
                created_at=datetime.now(UTC),
                snapshot_version=context.snapshot.version,
            )
        )
        _audit(
            session,
            by=by,
            action="comment",
            period=period,
            org_unit=org_unit,
            before={"text": previous},
            after={"text": clean},
        )
        session.flush()
    log.info("followup_comment", period=period, org_unit=org_unit, by=by)


@_retry_on_version_conflict
def add_measure(
    engine: sqlalchemy.Engine,
    *,
    period: str,
    org_unit: str,
    text: str,
    responsible: str,
    amount_sek: float,
    status: str = "planerad",
    decided: date | str | None = None,
    realised_sek: float | None = None,
    by: str,
) -> int:
    """A new åtgärd of the node; returns its id."""
    values = {
        "text": _text(text, "text"),
        "responsible": _text(responsible, "responsible"),
        "amount_sek": _amount(amount_sek, "amount_sek"),
        "status": _status(status),
        "decided": _date(decided, "decided"),
        "realised_sek": _amount(realised_sek, "realised_sek", required=False),
    }
    ensure_at_head(engine)
    with write_connection(engine) as connection, Session(bind=connection) as session:
        context = _Context(session, period, org_unit)
        context.before_change(by)
        now = datetime.now(UTC)
        record = MeasureRecord(
            period=period,
            org_unit=org_unit,
            created_by=by,
            created_at=now,
            updated_at=now,
            **values,
        )
        session.add(record)
        session.flush()
        _audit(
            session,
            by=by,
            action="measure_add",
            period=period,
            org_unit=org_unit,
            before=None,
            after=_measure_json(record),
        )
        session.flush()
        measure_id = record.id
    log.info("followup_measure_added", period=period, org_unit=org_unit, by=by, id=measure_id)
    return measure_id


_UNSET: Any = object()


@_retry_on_version_conflict
def update_measure(
    engine: sqlalchemy.Engine,
    *,
    period: str,
    org_unit: str,
    measure_id: int,
    by: str,
    status: str | None = None,
    realised_sek: float | None = _UNSET,
    decided: date | str | None = _UNSET,
) -> None:
    """Change an åtgärd's status, realised amount or decided date (only the given ones)."""
    changes: dict[str, Any] = {}
    if status is not None:
        changes["status"] = _status(status)
    if realised_sek is not _UNSET:
        changes["realised_sek"] = _amount(realised_sek, "realised_sek", required=False)
    if decided is not _UNSET:
        changes["decided"] = _date(decided, "decided")
    if not changes:
        raise InvalidInput("status", "nothing to change: give status, realised_sek or decided")
    ensure_at_head(engine)
    with write_connection(engine) as connection, Session(bind=connection) as session:
        record = session.get(MeasureRecord, measure_id)
        if record is None or record.period != period or record.org_unit != org_unit:
            raise NotFound(f"no åtgärd {measure_id} for {org_unit} in {period}")
        context = _Context(session, period, org_unit)
        context.before_change(by)
        before = _measure_json(record)
        for key, value in changes.items():
            setattr(record, key, value)
        record.updated_at = datetime.now(UTC)
        session.flush()
        _audit(
            session,
            by=by,
            action="measure_update",
            period=period,
            org_unit=org_unit,
            before=before,
            after=_measure_json(record),
        )
        session.flush()
    log.info("followup_measure_updated", period=period, org_unit=org_unit, by=by, id=measure_id)


@_retry_on_version_conflict
def set_adjustment(
    engine: sqlalchemy.Engine,
    *,
    period: str,
    org_unit: str,
    full_year_sek: float,
    reason: str,
    by: str,
) -> None:
    """Förvaltningens prognos for the node (full year, SEK); the reason is mandatory."""
    amount = _amount(full_year_sek, "full_year_sek")
    why = _text(reason, "reason")
    ensure_at_head(engine)
    with write_connection(engine) as connection, Session(bind=connection) as session:
        context = _Context(session, period, org_unit)
        context.before_change(by)
        state = _node_state(session, period, org_unit)
        session.add(
            AdjustmentRecord(
                period=period,
                org_unit=org_unit,
                full_year_sek=amount,
                reason=why,
                author=by,
                created_at=datetime.now(UTC),
                snapshot_version=context.snapshot.version,
            )
        )
        _audit(
            session,
            by=by,
            action="forecast",
            period=period,
            org_unit=org_unit,
            before={
                "full_year_sek": state["adjusted_full_year_sek"],
                "reason": state["adjustment_reason"],
            },
            after={"full_year_sek": amount, "reason": why},
        )
        session.flush()
    log.info("followup_adjustment", period=period, org_unit=org_unit, by=by)


def approve(
    engine: sqlalchemy.Engine,
    *,
    period: str,
    org_unit: str,
    by: str,
    comment: str | None = None,
) -> Approval:
    """Approve the node's forecast for the period's latest snapshot version.

    Per avdelning first: a förvaltning or the nämnd can be approved only when every avdelning
    below it is approved for the same version (else :class:`Conflict`). An enhet is not approved
    on its own (its avdelning's approval covers it).
    """
    note = _text(comment, "comment", required=False)
    ensure_at_head(engine)
    with write_connection(engine) as connection, Session(bind=connection) as session:
        context = _Context(session, period, org_unit)
        level = context.level.get(org_unit)
        if level not in APPROVABLE_LEVELS:
            raise InvalidInput(
                "org_unit",
                f"{org_unit} is an {level}; approval is per avdelning, then förvaltning and nämnd",
            )
        approved = {a.org_unit for a in context.current_approvals()}
        missing = [a for a in context.avdelningar_below(org_unit) if a not in approved]
        if missing:
            raise Conflict(
                f"approve the avdelningar first: {', '.join(missing)} "
                f"(version {context.snapshot.version} of {period})"
            )
        now = datetime.now(UTC)
        frozen = _node_state(session, period, org_unit)
        session.add(
            ApprovalRecord(
                period=period,
                org_unit=org_unit,
                snapshot_id=context.snapshot.id,
                snapshot_version=context.snapshot.version,
                approved_by=by,
                approved_at=now,
                comment=note,
                frozen=frozen,
            )
        )
        _audit(
            session,
            by=by,
            action="approve",
            period=period,
            org_unit=org_unit,
            before=None,
            after={
                "snapshot_version": context.snapshot.version,
                "approval_comment": note,
                **frozen,
            },
        )
        session.flush()
        version = context.snapshot.version
    log.info("followup_approved", period=period, org_unit=org_unit, by=by, version=version)
    return Approval(approved_by=by, approved_at=utc(now), snapshot_version=version, comment=note)
