"""The snapshot store (SQLAlchemy 2 + Alembic): frozen monthly forecasts in a database.

The API lives in :mod:`services.snapshots.store`; it is re-exported here.
"""

from services.snapshots.checkpoints import load_checkpoints
from services.snapshots.store import (
    LateEvent,
    StoredSnapshot,
    load_late_events,
    load_snapshot,
    load_snapshots,
    make_engine,
    record_late_event,
    upgrade,
    write_snapshot,
)

__all__ = [
    "LateEvent",
    "StoredSnapshot",
    "load_checkpoints",
    "load_late_events",
    "load_snapshot",
    "load_snapshots",
    "make_engine",
    "record_late_event",
    "upgrade",
    "write_snapshot",
]
