"""The stream worker's snapshot database; the command is in :mod:`services.cli.worker`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.period import Period


class SnapshotStore:
    """The worker's database: a snapshot on period close, and late events.

    The embedded default (a SQLite file in the data dir) is migrated here, so the demo and a
    laptop need no extra step; a configured database must have been migrated with
    ``budgetvakt db upgrade`` (checked at start, so a wrong URL fails now, not at month end).
    """

    def __init__(self, settings: Any, domain: Any) -> None:
        from services.snapshots.checkpoints import load_checkpoints
        from services.snapshots.engine import make_engine
        from services.snapshots.migrate import ensure_at_head, upgrade

        url = settings.database_url_or_default()
        self.checkpoints = load_checkpoints(settings.config_dir)
        if not settings.database_configured:
            upgrade(url)
        self.engine = make_engine(url)
        ensure_at_head(self.engine)
        self.org = domain.org
        self.model = settings.forecast_model

    def write(self, forecast: Any, period: str) -> Any:
        """Store ``forecast`` (one owner's: the nämnd is its top node) as the next version of
        that nämnd's ``period``. A forecast of the whole organisation (several top nodes) is
        split and stored as one snapshot per owner; the list of them is returned."""
        from services.snapshots.store import forecast_owner, split_by_owner

        try:
            forecast_owner(forecast)
        except ValueError:
            return [
                self._write_one(part, period)
                for part in split_by_owner(forecast, self.org).values()
            ]
        return self._write_one(forecast, period)

    def _write_one(self, forecast: Any, period: str) -> Any:
        from services.snapshots.store import write_snapshot

        return write_snapshot(
            self.engine,
            forecast,
            period=period,
            trigger="period_close",
            checkpoint=self.checkpoints.get(Period.parse(period).month),
            org=self.org,
            model=self.model,
        )

    def periods(self, owner: str | None = None) -> set[str]:
        """Every period with a snapshot of ``owner`` (a nämnd id or ``omappad``; None: of any)."""
        from services.snapshots.store import snapshot_periods

        return snapshot_periods(self.engine, namnd=owner)

    def record_late_events(self, events: Sequence[Any]) -> None:
        from services.snapshots.store import record_late_event

        for event in events:
            org_unit = str(event.org_unit)
            record_late_event(
                self.engine,
                event_id=str(event.event_id),
                org_unit=org_unit,
                period=str(event.period),
                type=str(event.type),
                amount=getattr(event, "amount_sek", getattr(event, "value", None)),
                namnd=self.org.owner_of(org_unit),
            )
