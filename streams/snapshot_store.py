"""What the worker needs from the snapshot database (``services.worker.SnapshotStore``).

A Protocol, so that streams/ does not import services/ (layers only point down) and mypy still
checks both sides. Snapshots are per owner (nämnd, or ``omappad`` when it holds money): the
forecast written is one owner's, its top node is the owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from contract.records import CostEvent, VolumeEvent
from forecasts.live import OrganisationForecast


class SnapshotStore(Protocol):
    def write(self, forecast: OrganisationForecast, period: str) -> object:
        """Store the snapshot of ``period`` of ONE owner's forecast (its top node is the nämnd,
        or ``omappad``); returns what was stored (logged)."""
        ...

    def periods(self, owner: str) -> set[str]:
        """Every period ``owner`` has a snapshot of."""
        ...

    def record_late_events(self, events: Sequence[CostEvent | VolumeEvent]) -> None:
        """Record events that arrived for an already closed period."""
        ...
