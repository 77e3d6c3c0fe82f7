"""When the worker's local table store (RocksDB in the data dir) can be trusted after a restart.

Faust's RocksDB store takes a table write at once, before its changelog record is produced, and
notes a changelog offset as "persisted" when the broker acknowledges that record. A worker
killed in the middle of a batch (SIGKILL, OOM, power cut) therefore leaves a local store that

* may hold values the changelog never got (their input offsets were not committed, so the
  successor reads those events again, finds their ids in the local values, counts them as
  duplicates and writes nothing: the changelog, and any later worker recovering from it, would
  miss them for good), and
* may have a persisted offset beyond what Tansu reports as the changelog's end (Tansu answers
  "first offset of the last record batch + 1", brief §5; the batch's one-record end marker was
  never written): Faust then refuses to start with ``ConsistencyError: The persisted offset for
  changelog topic partition … is higher than the last offset in that topic (highwater)``, and so
  does every successor on the same data dir, because the changelog does not grow meanwhile.

Between batches the local store equals the changelog. So :class:`BatchMarker` writes a small file
naming the partitions a batch is about to write before its first table write, and removes it
once the batch's changelog writes (and end markers) are acknowledged. At start,
:func:`discard_untrusted_partitions` deletes the local store of every partition a leftover marker
names; Faust then recovers those partitions from the changelog (from offset 0), and the input
not yet committed is read again and de-duplicated, exactly as for a worker on an empty data dir.
The other partitions keep their local store. What the marker cannot see (its write lost in a
power cut, a broker that lost its topics) shows as a persisted offset beyond the changelog's end
and is handled at recovery time (``streams.faust_compat.rebuild_stores_ahead_of_changelog``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

MARKER_NAME = "batch-in-progress.json"


class BatchMarker:
    """The file that says "a batch is writing these partitions" while it does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: set[int] = set()

    def begin(self, partitions: Iterable[int]) -> None:
        """Before the batch's first table write. A retried batch keeps the partitions its
        failed attempt may have written."""
        wanted = self._pending | set(partitions)
        if wanted == self._pending and self.path.exists():
            return
        self._pending = wanted
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"partitions": sorted(wanted)}), encoding="utf-8")
        os.replace(tmp, self.path)  # never a half-written marker under the real name

    def end(self) -> None:
        """After the batch's changelog writes are acknowledged: the local store is whole."""
        if self._pending:
            self._pending = set()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def leftover(self) -> set[int] | None:
        """Partitions a previous process left unfinished; None if it left no marker. An
        unreadable marker (should not happen: it is replaced atomically) means every partition."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return {int(p) for p in json.loads(text)["partitions"]}
        except (ValueError, KeyError, TypeError):
            return {-1}  # unknown: the caller discards every partition


def discard_untrusted_partitions(
    marker: BatchMarker,
    partition_dirs: Callable[[], dict[int, Path]],
    on_rebuild: Callable[[str, int], None],
) -> set[int]:
    """Delete the local store of the partitions a crashed batch left half written (see module
    doc); Faust recovers them from the changelog. Returns the partitions discarded."""
    leftover = marker.leftover()
    if leftover is None:
        return set()
    existing = partition_dirs()
    doomed = set(existing) if -1 in leftover else leftover & set(existing)
    for partition in sorted(doomed):
        shutil.rmtree(existing[partition], ignore_errors=True)
        on_rebuild("interrupted_batch", partition)
    log.warning(
        "table_store_rebuild",
        reason="interrupted_batch",
        partitions=sorted(doomed),
        detail="the previous worker on this data dir stopped in the middle of a batch; these "
        "partitions are recovered from the changelog",
    )
    with contextlib.suppress(FileNotFoundError):
        marker.path.unlink()
    return doomed
