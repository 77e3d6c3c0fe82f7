"""Late events: a cost or volume accepted for a period that is already closed.

They count like any other event (the books are what they are); they are also counted on
``budgetvakt_late_events_total`` and recorded in the snapshot database, so that the next
snapshot version of that period can show them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TypeGuard

import structlog

from contract.records import CostEvent, VolumeEvent
from contract.validation import AnyEvent
from core.hierarchy import OrgTree
from streams.aggregation import is_closed
from streams.metrics import WorkerMetrics
from streams.snapshot_store import SnapshotStore

log = structlog.get_logger(__name__)

LateEvent = CostEvent | VolumeEvent


def is_late(event: AnyEvent, org: OrgTree, closed: Mapping[str, set[str]]) -> TypeGuard[LateEvent]:
    """A cost or volume for a period closed for its org_unit (or one above it)."""
    return isinstance(event, LateEvent) and is_closed(
        event.period, org.path(event.org_unit), closed
    )


class LateEvents:
    def __init__(self, metrics: WorkerMetrics, store: SnapshotStore | None) -> None:
        self.metrics = metrics
        self.store = store

    async def record(self, late: Sequence[LateEvent]) -> None:
        if not late:
            return
        self.metrics.late_events.inc(len(late))
        log.info("late_events", count=len(late), periods=sorted({e.period for e in late}))
        if self.store is None:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.store.record_late_events, late)
        except Exception as err:  # a database outage must not stop ingest
            self.metrics.snapshot_failures.inc()
            log.error("late_events_not_recorded", error_type=type(err).__name__)
