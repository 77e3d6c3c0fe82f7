"""Every place the worker reaches into Faust's or aiokafka's internals, in one module.

The worker's exactness (docs/architecture.md, "Why every event counts exactly once") depends on
a few things Faust does not offer as public API. Each is wrapped here, and each has a unit test
in ``tests/streams/test_faust_compat.py`` that fails when Faust stops behaving as assumed:

* :func:`event_context`: Faust tables take the changelog partition (and the RocksDB shard) from
  the "current event" context variable ``faust.streams._current_event``; a batch worker writes
  outside Faust's per-event iteration, so it sets the variable itself.
* :func:`disable_read_offset_filter`: Faust's fetch loop drops a message whose offset lies below
  the last one it delivered (``Consumer._read_offset``); replays after a seek must get through.
* :func:`seek_after_recovery`: wraps ``Consumer.perform_seek`` (called by the table recovery
  when it is done) to seek input back that was handed over too early or never committed.
* :func:`replay_cleared_input`: wraps ``app.flow_control.clear`` (Faust empties its topic queues
  on every flow resume) to seek back to input it drops, and ``Consumer._new_offset`` to hold the
  commit below it until it is read again.
* :func:`committed_offset`: the consumer's last committed offset (``Consumer._committed_offset``).
* :func:`recovery_completed`: whether the table recovery has finished
  (``app.tables.recovery.completed``, not on the ``TableManagerT`` interface).
* :func:`take_events` and :func:`connect_async_receiver`: public Faust behaviour that its type
  stubs do not declare.
* :func:`local_partition_dirs` and :func:`rebuild_stores_ahead_of_changelog`: where Faust's RocksDB
  store keeps each partition, and a wrapper of the table recovery's ``_build_offsets`` that
  discards a partition's local store whose persisted changelog offset lies beyond the
  changelog's end (which Faust would refuse with ``ConsistencyError``), see
  ``streams.local_store``.

These were verified on faust-streaming :data:`SUPPORTED_FAUST_VERSION`;
:func:`check_faust_version` refuses to start the worker on any other version.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import shutil
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import faust
import structlog
from aiokafka.errors import IllegalStateError
from faust.exceptions import ConsumerNotStarted
from faust.streams import _current_event
from faust.transport.consumer import Consumer
from faust.types import TP, EventT, StreamT

from core.errors import UserError

log = structlog.get_logger(__name__)

SUPPORTED_FAUST_VERSION = "0.15.3"
FAUST_DISTRIBUTION = "faust-streaming"


def installed_faust_version() -> str:
    return importlib.metadata.version(FAUST_DISTRIBUTION)


def check_faust_version(installed: str | None = None) -> None:
    """Refuse to run on a Faust other than the one the patches below were verified on."""
    installed = installed if installed is not None else installed_faust_version()
    if installed != SUPPORTED_FAUST_VERSION:
        raise UserError(
            f"{FAUST_DISTRIBUTION} {installed} is installed, but the stream worker patches "
            f"Faust internals (streams/faust_compat.py) that were verified on "
            f"{FAUST_DISTRIBUTION} {SUPPORTED_FAUST_VERSION} only. Install "
            f"{FAUST_DISTRIBUTION}=={SUPPORTED_FAUST_VERSION} (pinned in constraints.txt), or "
            f"re-verify the patches and their tests (tests/streams/test_faust_compat.py) on "
            f"{installed} and raise SUPPORTED_FAUST_VERSION."
        )


@contextlib.contextmanager
def event_context(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event, as its own stream iteration would.

    A table write reads the changelog partition from it, so every write of a state key must be
    made in the context of an event from the key's own partition.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class _NoReadOffsets(dict[TP, int | None]):
    """Faust's per-partition "read offset", always unknown."""

    def __getitem__(self, tp: TP) -> None:
        return None


def disable_read_offset_filter(consumer: Consumer) -> None:
    """Let every fetched message through Faust's fetch loop, also one below the last delivered.

    Faust drops such a message to hide re-reads after a seek; its delivery loop can move that
    mark past a seek we just made, and our replay would be dropped. Replays are harmless here
    (applying is idempotent). Must run before the fetch loop starts: it binds the mapping once.
    """
    consumer._read_offset = _NoReadOffsets()


def committed_offset(consumer: Consumer, tp: TP) -> int | None:
    """The offset this consumer last committed (or found committed) for ``tp``; None if none."""
    return consumer._committed_offset.get(tp)


def recovery_completed(app: faust.App) -> bool:
    """Whether the table recovery has finished (Faust hands over input before it has)."""
    return cast(bool, app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]


def reading_changelog(app: faust.App) -> bool:
    """Whether a table recovery is reading the changelog right now.

    Faust resumes the input flow while it does (``Recovery._restart_recovery``), so input can
    be handed over while a key's value is still an older one, or missing."""
    return bool(app.in_recovery)


class RecoveryReplay:
    """Input handed over around a table recovery, to be read again once the table is whole.

    ``lowest``: the lowest input offset per partition handed over before the recovery had
    completed; :func:`seek_after_recovery` seeks back to it. ``deferred``: the highest offset per
    partition handed over *while the changelog was read* and not applied at all
    (:meth:`defer`): applying an event to a key not recovered yet would write a value without
    the key's earlier events to the changelog, and a successor rebuilding from the changelog
    after a crash would lose those for good. Their commit is held until they are applied
    (:func:`hold_commits_until_applied`).
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.lowest: dict[TP, int] = {}
        self.deferred: dict[TP, int] = {}

    def note(self, events: Sequence[EventT]) -> None:
        if recovery_completed(self.app) and not reading_changelog(self.app):
            return
        self._note_lowest(events)

    def defer(self, events: Sequence[EventT]) -> bool:
        """True (and the events noted for replay) when they must not be applied now."""
        if not reading_changelog(self.app):
            return False
        self._note_lowest(events)
        for event in events:
            tp, offset = event.message.tp, event.message.offset
            self.deferred[tp] = max(self.deferred.get(tp, offset), offset)
        return True

    def applied(self, events: Sequence[EventT]) -> None:
        """``events`` are applied: a partition's deferred input is done once it is passed."""
        if not self.deferred:
            return
        for event in events:
            tp = event.message.tp
            if self.deferred.get(tp, event.message.offset + 1) <= event.message.offset:
                del self.deferred[tp]

    def _note_lowest(self, events: Sequence[EventT]) -> None:
        for event in events:
            tp, offset = event.message.tp, event.message.offset
            self.lowest[tp] = min(self.lowest.get(tp, offset), offset)


def seek_after_recovery(consumer: Consumer, topics: set[str], replay: RecoveryReplay) -> None:
    """Wrap Faust's post-recovery seek so that no input is skipped or left half applied.

    Faust calls ``perform_seek`` when a table recovery has finished, to go back to the committed
    offsets; by then it has already fetched input, cleared some of it from its queues, and
    handed some to the agent while the table was still being recovered. Two cases are left
    over, and both are fixed by seeking back (replays are harmless: applying is idempotent):

    * aiokafka only seeks when the committed offset is > 0, so a partition never committed (a
      group's first worker killed before its first commit) stayed past the cleared messages:
      seek it to its earliest offset;
    * events applied during the recovery may have been overwritten by older changelog values,
      and their offsets may be committed by now: seek back to the lowest such offset
      (``replay``, filled by the agent).

    Also switches off the read-offset filter, which would drop exactly these replays, and
    installs :func:`replay_cleared_input` for the input Faust drops right after this seek.
    """
    disable_read_offset_filter(consumer)
    cleared = replay_cleared_input(consumer, topics)
    hold_commits_until_applied(consumer, replay)
    seek_to_committed = consumer.perform_seek

    async def perform_seek() -> None:
        await seek_to_committed()
        assigned = [tp for tp in consumer.assignment() if tp.topic in topics]
        uncommitted = [tp for tp in assigned if not committed_offset(consumer, tp)]
        targets = (await consumer.earliest_offsets(*uncommitted)) if uncommitted else {}
        targets = dict(targets)
        for tp in assigned:
            replay_from = replay.lowest.get(tp)
            start = targets.get(tp, committed_offset(consumer, tp) or 0)
            if replay_from is not None and replay_from < start:
                targets[tp] = replay_from
        replay.lowest.clear()
        # From the committed offsets, which the hold kept at or below it, a cleared offset is
        # read again anyway.
        cleared.lowest.clear()
        for tp, offset in targets.items():
            await consumer.seek(tp, offset)
        if targets:
            log.info(
                "input_sought_back",
                partitions={f"{tp.topic}/{tp.partition}": offset for tp, offset in targets.items()},
            )

    consumer.perform_seek = perform_seek  # type: ignore[method-assign]


class ClearedInput:
    """The lowest input offset per partition that Faust dropped from its queues and that has
    not been acknowledged since (see :func:`replay_cleared_input`)."""

    def __init__(self) -> None:
        self.lowest: dict[TP, int] = {}

    def note(self, tp: TP, offset: int) -> None:
        self.lowest[tp] = min(self.lowest.get(tp, offset), offset)


def queued_input(flow_control: Any, topics: set[str]) -> dict[TP, int]:
    """The lowest offset per input partition of the events waiting in Faust's topic queues
    (those that ``flow_control`` empties when it is cleared or resumed)."""
    lowest: dict[TP, int] = {}
    for queue in list(flow_control._queues):
        for item in list(queue._queue):
            message = getattr(item, "message", None)
            if message is None or message.topic not in topics:
                continue
            tp = TP(message.topic, message.partition)
            lowest[tp] = min(lowest.get(tp, message.offset), message.offset)
    return lowest


def replay_cleared_input(consumer: Consumer, topics: set[str]) -> ClearedInput:
    """Read again the input that Faust drops from its queues when it resumes the flow.

    Faust's topic queues are cleared on every ``app.flow_control.resume()``. When a table
    recovery ends (``Recovery.on_recovery_completed``), Faust resumes the input partitions,
    seeks them to the committed offsets (``perform_seek``) and only *then* resumes the flow:
    whatever the fetcher delivered in between waits in a topic queue and is thrown away,
    although the fetch position is already past it. Such a record was never processed nor
    acknowledged, and ``Consumer._new_offset`` then commits over it when it is a single gap
    right after the committed offset (it tests ``min(acked) - committed > 1``, as if the
    committed offset were the last one read; Kafka's is the next one to read), so it was never
    read again: the record of a partition lost in about 1 start in 4 over waiting input
    (``tests/streams/test_restart_with_waiting_input.py``; logged: the dropped offset sat in the
    queue at that clear, and was the only one missing from the batches and the commits).

    This wraps the clear to seek every input partition back to the lowest offset it drops
    (replays are harmless: applying is idempotent), and ``_new_offset`` to commit nothing for
    that partition until the dropped offset is acknowledged again, so that a crash before the
    re-read cannot lose it either. Faust's own clear at the start of a rebalance is followed by
    ``perform_seek`` anyway; a partition no longer assigned is left to it.
    """
    app = consumer.app
    flow_control = app.flow_control
    clear_queues = flow_control.clear
    new_offset = consumer._new_offset
    cleared = ClearedInput()

    def clear() -> None:
        dropped = queued_input(flow_control, topics)
        clear_queues()
        if not dropped:
            return
        assigned = consumer.assignment()
        sought: dict[str, int] = {}
        for tp, offset in dropped.items():
            if tp not in assigned:
                continue
            position = fetch_position(consumer, tp)
            if position is not None and position <= offset:
                # Fetched before a seek further back (perform_seek's replay of input handed over
                # during the recovery): read again from there anyway, and seeking to it would
                # skip everything in between.
                cleared.note(tp, offset)
                continue
            try:
                seek_now(consumer, tp, offset)
            except IllegalStateError:
                continue  # revoked meanwhile: the next assignment seeks to the committed offset
            cleared.note(tp, offset)
            sought[f"{tp.topic}/{tp.partition}"] = offset
        if sought:
            log.info("input_sought_back", reason="dropped_from_queue", partitions=sought)

    def _new_offset(tp: TP) -> int | None:
        pending = cleared.lowest.get(tp)
        if pending is not None:
            committed = committed_offset(consumer, tp)
            if pending in consumer._acked_index.get(tp, ()) or (
                committed is not None and committed > pending
            ):
                del cleared.lowest[tp]  # read again and acknowledged (or committed by another)
            else:
                return None  # hold the commit: it could pass over the dropped offset
        return new_offset(tp)

    flow_control.clear = clear  # type: ignore[method-assign]
    consumer._new_offset = _new_offset  # type: ignore[method-assign]
    return cleared


def hold_commits_until_applied(consumer: Consumer, replay: RecoveryReplay) -> None:
    """Commit nothing for a partition whose deferred input (:meth:`RecoveryReplay.defer`) is
    not applied yet.

    Deferred events are acknowledged (Faust's ``take_events`` acknowledges every batch), and an
    acknowledgement is not repeated when the same offset is read again, so Faust would commit
    over them: a crash before they are read again would lose them.
    """
    new_offset = consumer._new_offset

    def _new_offset(tp: TP) -> int | None:
        pending = replay.deferred.get(tp)
        if pending is not None:
            committed = committed_offset(consumer, tp)
            if committed is not None and committed > pending:
                del replay.deferred[tp]  # applied and committed by another worker meanwhile
            else:
                return None
        return new_offset(tp)

    consumer._new_offset = _new_offset  # type: ignore[method-assign]


def fetch_position(consumer: Consumer, tp: TP) -> int | None:
    """The offset the consumer fetches next for ``tp``; None when it has none (yet)."""
    try:
        subscription = consumer._thread._ensure_consumer()._subscription.subscription  # type: ignore[attr-defined]
        state = subscription.assignment.state_value(tp)
    except (AttributeError, ConsumerNotStarted):
        return None
    if state is None or not state.has_valid_position:
        return None
    return cast(int, state.position)


def seek_now(consumer: Consumer, tp: TP, offset: int) -> None:
    """Seek at once, from synchronous code (``Consumer.seek`` is a coroutine around this call;
    the read-offset filter it also sets is switched off here)."""
    consumer._thread.seek(tp, offset)  # type: ignore[attr-defined]


def take_events(
    stream: StreamT[Any], max_events: int, within: float
) -> AsyncIterator[Sequence[EventT]]:
    """``Stream.take_events`` (public, but missing from ``StreamT``)."""
    return cast(
        AsyncIterator[Sequence[EventT]],
        stream.take_events(max_events, within=within),  # type: ignore[attr-defined]
    )


def connect_async_receiver(signal: Any, receiver: Callable[..., Awaitable[None]]) -> None:
    """Connect a coroutine receiver to a Faust app signal (Faust awaits it; its stubs say sync)."""
    signal.connect(receiver)


def local_partition_dirs(app: faust.App, table_name: str) -> dict[int, Path]:
    """partition → the directory of the table's local RocksDB store for it (those that exist).

    Faust's RocksDB store names them ``<tabledir>/<table>-<partition>.db``
    (``faust.stores.rocksdb.Store.partition_path``)."""
    tabledir = Path(app.conf.tabledir)
    out: dict[int, Path] = {}
    for path in tabledir.glob(f"{table_name}-*.db"):
        suffix = path.name[len(table_name) + 1 : -len(".db")]
        if suffix.isdigit():
            out[int(suffix)] = path
    return out


def reset_local_partition(store: Any, partition: int) -> None:
    """Close and delete one partition of a RocksDB table store; it reopens empty on next use."""
    db = store._dbs.pop(partition, None)
    if db is not None and hasattr(db, "close"):
        db.close()
    del db
    gc.collect()  # Faust itself relies on this to release RocksDB's lock (stores/rocksdb.py)
    store._key_index.clear()
    shutil.rmtree(store.partition_path(partition), ignore_errors=True)


def rebuild_stores_ahead_of_changelog(
    app: faust.App, on_rebuild: Callable[[str, int], None]
) -> None:
    """Recover from the changelog a partition whose local store is ahead of it, instead of
    refusing to start.

    Faust's recovery compares each active changelog partition's persisted offset (from the local
    RocksDB store) with the changelog's highwater and raises ``ConsistencyError`` when the
    persisted one is higher: the process exits, and every successor on the same data dir does
    the same. That happens when the store saw writes the broker no longer has or never reported
    (a crash before a batch's one-record end marker on Tansu, brief §5, with the marker of
    ``streams.local_store`` lost in a power cut; a broker that lost its topics). The local store
    cannot be trusted then: this wraps ``Recovery._build_offsets`` (called just before the
    check) to delete that partition's local store and read the changelog from its start.
    """
    recovery = app.tables.recovery  # type: ignore[attr-defined]
    build_offsets = recovery._build_offsets

    async def _build_offsets(consumer: Any, tps: set[TP], destination: Any, title: str) -> None:
        await build_offsets(consumer, tps, destination, title)
        if destination is not recovery.active_offsets:
            return  # standbys: none configured (table_standby_replicas=0)
        highwaters = recovery.active_highwaters
        ahead = [
            tp
            for tp in tps
            if destination.get(tp) is not None
            and highwaters.get(tp) is not None
            and destination[tp] >= 0
            and destination[tp] > highwaters[tp]
        ]
        if not ahead:
            return
        earliest = await consumer.earliest_offsets(*ahead)
        for tp in ahead:
            table = recovery.tp_to_table[tp]
            log.warning(
                "table_store_rebuild",
                reason="ahead_of_changelog",
                partition=tp.partition,
                persisted_offset=destination[tp],
                changelog_end=highwaters[tp],
                detail="the local store has changelog offsets the broker does not report; the "
                "partition is recovered from the changelog",
            )
            reset_local_partition(table.data, tp.partition)
            start = earliest.get(tp)
            # Faust's convention: the offset already read, so -1 reads from offset 0.
            destination[tp] = start - 1 if start is not None else -1
            on_rebuild("ahead_of_changelog", tp.partition)

    recovery._build_offsets = _build_offsets
