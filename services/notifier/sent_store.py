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

The store also holds **deferred** alerts: an "improved" alert goes into the recipient's next
digest, never into a mail of its own (``services.notifier.engine``). It is kept here, with its
event, until that digest is sent; ``record_sent`` then records it as sent and forgets the
deferral in the same transaction. Keeping it here (not in memory) lets the notifier commit the
improved alert's offset at once, and a restart neither loses it nor sends it twice.

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
CREATE TABLE IF NOT EXISTS deferred (
    event_id    TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    event       TEXT NOT NULL,
    deferred_at TEXT NOT NULL,
    PRIMARY KEY (event_id, recipient, channel)
) WITHOUT ROWID;
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
        """Record one delivered notification (all its alerts) in one transaction; alerts of it
        that were deferred for this recipient and channel are deferred no more."""
        stamp = (at or datetime.now(UTC)).isoformat()
        rows = [(event_id, recipient, channel, stamp) for event_id in event_ids]
        with self._db:  # BEGIN … COMMIT
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO sent (event_id, recipient, channel, sent_at) "
                "VALUES (?, ?, ?, ?)",
                rows,
            )
            self._db.executemany(
                "DELETE FROM deferred WHERE event_id = ? AND recipient = ? AND channel = ?",
                [(event_id, recipient, channel) for event_id, *_ in rows],
            )

    def is_deferred(self, event_id: str, recipient: str, channel: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM deferred WHERE event_id = ? AND recipient = ? AND channel = ?",
            (event_id, recipient, channel),
        ).fetchone()
        return row is not None

    def defer(
        self,
        events: Iterable[tuple[str, str]],
        recipient: str,
        channel: str,
        at: datetime | None = None,
    ) -> None:
        """Keep ``(event_id, event JSON)`` pairs for the recipient's next digest on ``channel``."""
        stamp = (at or datetime.now(UTC)).isoformat()
        rows = [(event_id, recipient, channel, event, stamp) for event_id, event in events]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR IGNORE INTO deferred (event_id, recipient, channel, event, deferred_at) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    def deferred(self, recipient: str, channel: str) -> list[str]:
        """The event JSON of the alerts deferred for the recipient on ``channel``, oldest first."""
        rows = self._db.execute(
            "SELECT event FROM deferred WHERE recipient = ? AND channel = ? "
            "ORDER BY deferred_at, event_id",
            (recipient, channel),
        ).fetchall()
        return [str(row[0]) for row in rows]

    def prune(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Forget sends older than ``older_than`` (their alerts will not be replayed anymore)."""
        cutoff = ((now or datetime.now(UTC)) - older_than).isoformat()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute("DELETE FROM sent WHERE sent_at < ?", (cutoff,))
            # An improvement nobody was mailed about within the retention is stale news.
            self._db.execute("DELETE FROM deferred WHERE deferred_at < ?", (cutoff,))
        return cursor.rowcount

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM sent").fetchone()[0])

    def close(self) -> None:
        self._db.close()
