"""What the worker needs from the snapshot database (``services.worker.SnapshotStore``).

A Protocol, so that streams/ does not import services/ (layers only point down) and mypy still
checks both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from contract.records import CostEvent, VolumeEvent
from forecasts.live import OrganisationForecast


class SnapshotStore(Protocol):
    def write(self, forecast: OrganisationForecast, period: str) -> object:
        """Store the snapshot of ``period``; returns what was stored (logged)."""
        ...

    def periods(self) -> set[str]:
        """Every period with a snapshot."""
        ...

    def record_late_events(self, events: Sequence[CostEvent | VolumeEvent]) -> None:
        """Record events that arrived for an already closed period."""
        ...
