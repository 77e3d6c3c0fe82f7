"""The snapshot store: write a frozen monthly forecast, record late events, load snapshots back.

Used by the stream worker (on ``period_close``), ``budgetvakt snapshot`` and the reports. Every
function checks once per engine that the schema is at head (:func:`ensure_at_head`), so a
forgotten ``budgetvakt db upgrade`` is a clear message, not an SQL error.

A snapshot is one nämnd's (its ``namnd``: a nämnd id of ``config/org.yaml`` or ``omappad``, the
owner the worker forecasts as a whole). It is written in one transaction: the next version of the
nämnd's period (versions count per nämnd and period), its rows, and the taking of the nämnd's
pending late events. Rows are never updated; a period that is closed again gets
a new version (the triggers in the initial migration reject UPDATE and DELETE).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import UserError
from core.hierarchy import LEVELS, UNMAPPED_ID, OrgTree
from core.period import Period
from forecasts.live import FailedSeries, NodeForecast, OrganisationForecast
from services.snapshots.engine import make_engine, write_connection
from services.snapshots.migrate import ensure_at_head, upgrade
from services.snapshots.models import (
    TRIGGERS,
    LateEventRecord,
    SnapshotRecord,
    SnapshotRowRecord,
)

__all__ = [
    "LateEvent",
    "StoredSnapshot",
    "forecast_owner",
    "load_late_events",
    "load_snapshot",
    "load_snapshots",
    "make_engine",
    "record_late_event",
    "snapshot_namnder",
    "snapshot_periods",
    "split_by_owner",
    "upgrade",
    "write_snapshot",
]

log = structlog.get_logger(__name__)

CHECKPOINT_MAX_LENGTH = 32
# Concurrent writers of the same period on PostgreSQL both compute version n; the unique
# constraint rejects the second, which then retries with n + 1.
VERSION_CONFLICT_ATTEMPTS = 5


@dataclass(frozen=True)
class StoredSnapshot:
    id: int
    namnd: str  # the owner: a nämnd id or "omappad"
    period: str
    version: int
    checkpoint: str | None
    trigger: str
    created_at: datetime  # UTC
    late_event_count: int
    forecast: OrganisationForecast  # rebuilt NodeForecasts, in the order they were written


@dataclass(frozen=True)
class LateEvent:
    event_id: str
    org_unit: str
    period: str
    type: str
    amount: float | None
    received_at: datetime  # UTC
    included_in_snapshot_id: int | None
    namnd: str | None = None  # the owner of org_unit; None when recorded before revision 0004


def _check_period(period: str) -> tuple[int, int]:
    """(year, month) of a period key; PeriodError (a ValueError) unless it is ``YYYY-MM``."""
    year, month = Period.parse_exact(period)
    return year, month


def _finite(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} is not a finite number: {number!r}")
    return number


def _finite_list(values: Sequence[float], what: str) -> list[float]:
    numbers = [float(v) for v in values]
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{what} holds a value that is not a finite number")
    return numbers


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _row_record(
    node: NodeForecast,
    snapshot_id: int,
    names: Mapping[str, str],
    org: OrgTree | None,
) -> SnapshotRowRecord:
    where = f"{node.org_unit}/{node.category}"
    parent: str | None = None
    if org is not None:
        path = org.path(node.org_unit)
        parent = path[1] if len(path) > 1 else None
    return SnapshotRowRecord(
        snapshot_id=snapshot_id,
        org_unit=node.org_unit,
        org_unit_name=names.get(node.org_unit),
        level=node.level,
        parent_org_unit=parent,
        kind=node.kind,
        category=node.category,
        year=node.year,
        as_of_month=node.as_of_month,
        budget_full_year=_finite(node.budget_full_year, f"{where} budget_full_year"),
        budget_ytd=_finite(node.budget_ytd, f"{where} budget_ytd"),
        actual_ytd=_finite(node.actual_ytd, f"{where} actual_ytd"),
        full_year=_finite(node.full_year, f"{where} full_year"),
        low=_finite(node.low, f"{where} low"),
        high=_finite(node.high, f"{where} high"),
        sigma=_finite(node.sigma, f"{where} sigma"),
        deviation=_finite(node.deviation, f"{where} deviation"),
        model=node.model,
        volume_effect=_finite(node.volume_effect, f"{where} volume_effect"),
        price_effect=_finite(node.price_effect, f"{where} price_effect"),
        actual_monthly=_finite_list(node.actual_monthly, f"{where} actual_monthly"),
        budget_monthly=(
            _finite_list(node.budget_monthly, f"{where} budget_monthly")
            if node.budget_monthly is not None
            else None
        ),
        path=_finite_list(node.path, f"{where} path"),
        interval_method=node.interval_method,
        interval_coverage=_finite(node.interval_coverage, f"{where} interval_coverage"),
    )


def _org_names(org: OrgTree | None, org_names: Mapping[str, str] | None) -> dict[str, str]:
    names = {node_id: node.name for node_id, node in org.nodes.items()} if org else {}
    names.update(org_names or {})
    return names


def _is_version_conflict(err: IntegrityError) -> bool:
    text = str(err.orig)
    return (
        "uq_snapshot_namnd_period_version" in text
        or "snapshot.namnd, snapshot.period, snapshot.version" in text
    )


class SeveralNamnder(UserError):
    """A read that needs one nämnd, on a database holding snapshots of several."""


def forecast_owner(forecast: OrganisationForecast) -> str:
    """The nämnd (or ``omappad``) whose forecast this is: its one top node (level ``namnd``).

    ValueError for a forecast of several owners (split it with :func:`split_by_owner`) or of
    none (no nämnd row at all)."""
    tops = sorted({n.org_unit for n in forecast.nodes if n.level == LEVELS[0]})
    if len(tops) != 1:
        found = ", ".join(tops) if tops else "none"
        raise ValueError(
            f"a snapshot is one nämnd's forecast, this one has {len(tops)} top nodes ({found}); "
            "write one owner's forecast at a time (split_by_owner)"
        )
    return tops[0]


def split_by_owner(forecast: OrganisationForecast, org: OrgTree) -> dict[str, OrganisationForecast]:
    """A forecast of the whole organisation as one forecast per owner (nämnd or ``omappad``),
    in configuration order; an owner without rows is left out."""
    nodes: dict[str, list[NodeForecast]] = {owner: [] for owner in org.owners}
    for node in forecast.nodes:
        nodes.setdefault(org.owner_of(node.org_unit), []).append(node)
    failed: dict[str, list[FailedSeries]] = {}
    for series in forecast.failed:
        failed.setdefault(org.owner_of(series.org_unit), []).append(series)
    return {
        owner: OrganisationForecast(
            forecast.year, forecast.as_of_month, owned, failed.get(owner, [])
        )
        for owner, owned in nodes.items()
        if owned
    }


_T = TypeVar("_T")


def retry_on_version_conflict(write: Callable[[], _T], event: str, **context: object) -> _T:
    """Run ``write`` again when a concurrent writer took version n + 1 of the period first
    (the unique constraint on period and version rejects the second); other errors propagate.
    Each retry is logged as ``event`` with ``context``."""
    for attempt in range(1, VERSION_CONFLICT_ATTEMPTS + 1):
        try:
            return write()
        except IntegrityError as err:
            if not _is_version_conflict(err) or attempt == VERSION_CONFLICT_ATTEMPTS:
                raise
            log.info(event, attempt=attempt, **context)
    raise AssertionError("unreachable")


def write_snapshot(
    engine: Engine,
    forecast: OrganisationForecast,
    *,
    period: str,
    trigger: str,
    checkpoint: str | None = None,
    org_names: Mapping[str, str] | None = None,
    org: OrgTree | None = None,
    model: str = "auto",
) -> StoredSnapshot:
    """Freeze ``forecast`` as the next version of its nämnd's ``period``; it takes the nämnd's
    pending late events.

    ``forecast`` is one owner's (:func:`forecast_owner` finds the nämnd from its top node).
    ``org`` (the organisation tree) fills each row's name and parent; ``org_names`` adds or
    overrides names. ``model`` records the model that was asked for
    (``Settings.forecast_model``); each row keeps the model its node actually used.
    """
    year, _month = _check_period(period)
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}, got {trigger!r}")
    if checkpoint is not None and not 0 < len(checkpoint) <= CHECKPOINT_MAX_LENGTH:
        raise ValueError(f"checkpoint must be 1..{CHECKPOINT_MAX_LENGTH} characters")
    if forecast.year != year:
        raise ValueError(f"forecast is for {forecast.year}, the period {period} is in {year}")
    if not 1 <= forecast.as_of_month <= 12:
        raise ValueError(f"forecast as_of_month must be 1..12, got {forecast.as_of_month}")
    namnd = forecast_owner(forecast)
    ensure_at_head(engine)
    names = _org_names(org, org_names)
    stored = retry_on_version_conflict(
        lambda: _write_once(
            engine,
            forecast,
            namnd=namnd,
            period=period,
            trigger=trigger,
            checkpoint=checkpoint,
            names=names,
            org=org,
            model=model,
        ),
        "snapshot_version_conflict",
        namnd=namnd,
        period=period,
    )
    log.info(
        "snapshot_written",
        snapshot_id=stored.id,
        namnd=namnd,
        period=period,
        version=stored.version,
        checkpoint=checkpoint,
        trigger=trigger,
        rows=len(forecast.nodes),
        late_events=stored.late_event_count,
    )
    return stored


def _write_once(
    engine: Engine,
    forecast: OrganisationForecast,
    *,
    namnd: str,
    period: str,
    trigger: str,
    checkpoint: str | None,
    names: Mapping[str, str],
    org: OrgTree | None,
    model: str,
) -> StoredSnapshot:
    year, month = _check_period(period)
    with write_connection(engine) as connection, Session(bind=connection) as session:
        # Lock the pending late events (PostgreSQL; SQLite's write lock is already held): a
        # concurrent snapshot waits, then finds them taken and skips them.
        pending = list(
            session.scalars(
                select(LateEventRecord.id)
                .where(LateEventRecord.included_in_snapshot_id.is_(None))
                .where((LateEventRecord.namnd == namnd) | LateEventRecord.namnd.is_(None))
                .order_by(LateEventRecord.id)
                .with_for_update()
            )
        )
        latest = session.scalar(
            select(func.max(SnapshotRecord.version)).where(
                SnapshotRecord.namnd == namnd, SnapshotRecord.period == period
            )
        )
        version = (latest or 0) + 1
        created_at = datetime.now(UTC)
        snapshot = SnapshotRecord(
            namnd=namnd,
            period=period,
            year=year,
            month=month,
            version=version,
            checkpoint=checkpoint,
            trigger=trigger,
            created_at=created_at,
            as_of_month=forecast.as_of_month,
            model=model,
            late_event_count=len(pending),
        )
        session.add(snapshot)
        session.flush()
        session.add_all([_row_record(n, snapshot.id, names, org) for n in forecast.nodes])
        if pending:
            session.execute(
                update(LateEventRecord)
                .where(LateEventRecord.id.in_(pending))
                .where(LateEventRecord.included_in_snapshot_id.is_(None))
                .values(included_in_snapshot_id=snapshot.id)
            )
        session.flush()
        return StoredSnapshot(
            id=snapshot.id,
            namnd=namnd,
            period=period,
            version=version,
            checkpoint=checkpoint,
            trigger=trigger,
            created_at=created_at,
            late_event_count=len(pending),
            forecast=forecast,
        )


def record_late_event(
    engine: Engine,
    *,
    event_id: str,
    org_unit: str,
    period: str,
    type: str,
    amount: float | None,
    namnd: str | None = None,
) -> bool:
    """Record an event that arrived for an already closed period; False if already recorded.

    ``namnd``: the owner of ``org_unit``; the next snapshot of that nämnd takes the event (None:
    the next snapshot of any nämnd)."""
    _check_period(period)
    if not event_id:
        raise ValueError("event_id must not be empty")
    ensure_at_head(engine)
    values: dict[str, Any] = {
        "event_id": event_id,
        "org_unit": org_unit,
        "period": period,
        "type": type,
        "amount": _finite(amount, "amount"),
        "received_at": datetime.now(UTC),
        "namnd": namnd,
    }
    dialect = engine.dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(LateEventRecord).values(values)
    elif dialect == "sqlite":
        statement = sqlite.insert(LateEventRecord).values(values)
    else:  # pragma: no cover - upgrade() refuses other databases
        raise ValueError(f"unsupported database {dialect!r}")
    statement = statement.on_conflict_do_nothing(index_elements=["event_id"])
    with write_connection(engine) as connection:
        inserted = connection.execute(statement).rowcount == 1
    if inserted:
        log.info("late_event_recorded", org_unit=org_unit, period=period, type=type)
    return inserted


def _node(row: SnapshotRowRecord) -> NodeForecast:
    return NodeForecast(
        org_unit=row.org_unit,
        level=row.level,
        kind=row.kind,  # type: ignore[arg-type]  # the check constraint allows cost|measure
        category=row.category,
        year=row.year,
        as_of_month=row.as_of_month,
        actual_monthly=tuple(float(v) for v in row.actual_monthly),
        budget_monthly=(
            tuple(float(v) for v in row.budget_monthly) if row.budget_monthly is not None else None
        ),
        path=tuple(float(v) for v in row.path),
        full_year=row.full_year,
        low=row.low,
        high=row.high,
        sigma=row.sigma,
        model=row.model,
        volume_effect=row.volume_effect,
        price_effect=row.price_effect,
        interval_method=row.interval_method or "fallback",
        interval_coverage=row.interval_coverage,
    )


def _stored(session: Session, records: Iterable[SnapshotRecord]) -> list[StoredSnapshot]:
    snapshots = list(records)
    nodes: dict[int, list[NodeForecast]] = {s.id: [] for s in snapshots}
    if snapshots:
        rows = session.scalars(
            select(SnapshotRowRecord)
            .where(SnapshotRowRecord.snapshot_id.in_(list(nodes)))
            .order_by(SnapshotRowRecord.snapshot_id, SnapshotRowRecord.id)
        )
        for row in rows:
            nodes[row.snapshot_id].append(_node(row))
    return [
        StoredSnapshot(
            id=s.id,
            namnd=s.namnd,
            period=s.period,
            version=s.version,
            checkpoint=s.checkpoint,
            trigger=s.trigger,
            created_at=_utc(s.created_at),
            late_event_count=s.late_event_count,
            forecast=OrganisationForecast(s.year, s.as_of_month, nodes[s.id]),
        )
        for s in snapshots
    ]


def snapshot_namnder(engine: Engine) -> list[str]:
    """Every owner (nämnd id or ``omappad``) with at least one snapshot, sorted."""
    ensure_at_head(engine)
    with Session(engine) as session:
        return sorted(session.scalars(select(SnapshotRecord.namnd).distinct()))


def default_namnd(engine: Engine, namnd: str | None) -> str | None:
    """``namnd`` itself, or (None) the only nämnd with snapshots (``omappad`` aside); None for a
    database without snapshots. :class:`SeveralNamnder` when several nämnder have snapshots."""
    if namnd is not None:
        return namnd
    owners = snapshot_namnder(engine)
    namnder = [o for o in owners if o != UNMAPPED_ID]
    if len(namnder) > 1:
        raise SeveralNamnder(
            f"the database holds snapshots of {len(namnder)} nämnder ({', '.join(namnder)}): "
            "name one (--namnd)"
        )
    if namnder:
        return namnder[0]
    return owners[0] if owners else None


def load_snapshots(
    engine: Engine, year: int, latest_version_only: bool = True, *, namnd: str | None = None
) -> list[StoredSnapshot]:
    """The nämnd's snapshots of the year ordered by period and version (only each period's
    latest version unless ``latest_version_only`` is False). ``namnd`` None: the only nämnd."""
    ensure_at_head(engine)
    owner = default_namnd(engine, namnd)
    if owner is None:
        return []
    mine = (SnapshotRecord.year == year) & (SnapshotRecord.namnd == owner)
    query = select(SnapshotRecord).where(mine)
    if latest_version_only:
        latest = (
            select(SnapshotRecord.period, func.max(SnapshotRecord.version).label("version"))
            .where(mine)
            .group_by(SnapshotRecord.period)
            .subquery()
        )
        query = query.join(
            latest,
            (SnapshotRecord.period == latest.c.period)
            & (SnapshotRecord.version == latest.c.version),
        )
    query = query.order_by(SnapshotRecord.period, SnapshotRecord.version)
    with Session(engine) as session:
        return _stored(session, session.scalars(query))


def snapshot_periods(engine: Engine, namnd: str | None = None) -> set[str]:
    """Every period with at least one snapshot of ``namnd`` (None: of any nämnd)."""
    ensure_at_head(engine)
    query = select(SnapshotRecord.period).distinct()
    if namnd is not None:
        query = query.where(SnapshotRecord.namnd == namnd)
    with Session(engine) as session:
        return set(session.scalars(query))


def load_snapshot(
    engine: Engine, period: str, version: int | None = None, *, namnd: str | None = None
) -> StoredSnapshot | None:
    """One snapshot of the nämnd's ``period``: the given version, or the latest if None; None if
    absent. ``namnd`` None: the only nämnd with snapshots (:func:`default_namnd`)."""
    _check_period(period)
    ensure_at_head(engine)
    owner = default_namnd(engine, namnd)
    if owner is None:
        return None
    query = select(SnapshotRecord).where(
        SnapshotRecord.period == period, SnapshotRecord.namnd == owner
    )
    if version is None:
        query = query.order_by(SnapshotRecord.version.desc()).limit(1)
    else:
        query = query.where(SnapshotRecord.version == version)
    with Session(engine) as session:
        found = _stored(session, session.scalars(query))
    return found[0] if found else None


def load_late_events(engine: Engine, snapshot_id: int | None = None) -> list[LateEvent]:
    """The late events a snapshot took, or the pending ones (``snapshot_id`` None)."""
    ensure_at_head(engine)
    column = LateEventRecord.included_in_snapshot_id
    condition = column.is_(None) if snapshot_id is None else column == snapshot_id
    with Session(engine) as session:
        records = session.scalars(
            select(LateEventRecord).where(condition).order_by(LateEventRecord.id)
        )
        return [
            LateEvent(
                event_id=r.event_id,
                org_unit=r.org_unit,
                period=r.period,
                type=r.type,
                amount=r.amount,
                received_at=_utc(r.received_at),
                included_in_snapshot_id=r.included_in_snapshot_id,
                namnd=r.namnd,
            )
            for r in records
        ]
