"""The notifier's memory of what it has sent: SQLite, keyed by (event_id, recipient, channel).

Why it exists: Kafka gives the notifier each alert at least once (a restart replays everything
after the last committed offset, and a duplicate alert event can sit on the topic), but a
manager must get each notification once. So before sending, the notifier asks ``was_sent``;
after a send succeeded it calls ``record_sent``; it commits the Kafka offsets only after that.

The remaining at-least-once window: the relay or webhook has accepted the message, and the
process dies (SIGKILL, power loss) before ``record_sent`` has committed its transaction. The
restarted notifier finds no record, the offsets were not committed either, and it sends that
notification again. The window is the time of one SQLite commit (well under a millisecond to a
few ms with ``synchronous=FULL``); closing it entirely would need the receiving side to
de-duplicate (webhooks get an ``Idempotency-Key`` header for that; SMTP has no such thing).
A crash before the relay accepted is not a loss: nothing was recorded, the send is retried.

One notifier process owns one store. Several notifier processes in one consumer group would
need a shared store (e.g. PostgreSQL) — not built here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    event_id  TEXT NOT NULL,
    recipient TEXT NOT NULL,
    channel   TEXT NOT NULL,
    sent_at   TEXT NOT NULL,
    PRIMARY KEY (event_id, recipient, channel)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sent_by_time ON sent (sent_at);
"""


class SentStore:
    """Used from the notifier's event loop thread only (calls are short and synchronous)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)  # explicit transactions below
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a recorded send survives a power cut too, not only a process kill.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def was_sent(self, event_id: str, recipient: str, channel: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sent WHERE event_id = ? AND recipient = ? AND channel = ?",
            (event_id, recipient, channel),
        ).fetchone()
        return row is not None

    def record_sent(
        self, event_ids: Iterable[str], recipient: str, channel: str, at: datetime | None = None
    ) -> None:
        """Record one delivered notification (all its alerts) in one transaction."""
        stamp = (at or datetime.now(UTC)).isoformat()
        rows = [(event_id, recipient, channel, stamp) for event_id in event_ids]
        with self._db:  # BEGIN … COMMIT
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO sent (event_id, recipient, channel, sent_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )

    def prune(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Forget sends older than ``older_than`` (their alerts will not be replayed anymore)."""
        cutoff = ((now or datetime.now(UTC)) - older_than).isoformat()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute("DELETE FROM sent WHERE sent_at < ?", (cutoff,))
        return cursor.rowcount

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM sent").fetchone()[0])

    def close(self) -> None:
        self._db.close()
