"""streams.faust_compat: one test per Faust/aiokafka behaviour the worker's patches rely on.

Each test fails when Faust changes what the patch assumes (no broker: the app is never started).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from core.domain import DomainConfig
from core.errors import UserError
from streams.faust_compat import (
    SUPPORTED_FAUST_VERSION,
    RecoveryReplay,
    check_faust_version,
    committed_offset,
    disable_read_offset_filter,
    event_context,
    hold_commits_until_applied,
    installed_faust_version,
    recovery_completed,
    replay_cleared_input,
    seek_after_recovery,
)
from tests.streams.inprocess import event

INPUT = "budgetvakt.cost.v1"


@pytest.fixture
def app() -> Iterator[faust.App]:
    app = faust.App("budgetvakt-compat-test", broker="kafka://127.0.0.1:9", store="memory://")
    app.finalize()
    yield app


def consumer_of(app: faust.App) -> Consumer:
    return cast(Consumer, app.consumer)


# --- the version check ---------------------------------------------------------------------------


def test_the_installed_faust_is_the_version_the_patches_were_verified_on() -> None:
    assert installed_faust_version() == SUPPORTED_FAUST_VERSION
    check_faust_version()  # does not raise


def test_another_faust_version_is_refused_naming_both_versions() -> None:
    with pytest.raises(UserError) as raised:
        check_faust_version("0.16.0")
    message = str(raised.value)
    assert "faust-streaming 0.16.0 is installed" in message
    assert f"faust-streaming=={SUPPORTED_FAUST_VERSION}" in message
    assert raised.value.exit_code == 2


# --- faust.streams._current_event: where a table write's changelog partition comes from ----------


def test_a_table_write_goes_to_the_partition_of_the_event_in_context(app: faust.App) -> None:
    table = app.Table("compat", default=None, key_type=str, partitions=8)
    sent: list[tuple[int | None, str, Any]] = []

    def send_changelog(partition: int | None, key: str, value: Any, *_: Any, **__: Any) -> Any:
        sent.append((partition, key, value))
        return SimpleNamespace(message=SimpleNamespace(partition=partition))

    table.send_changelog = send_changelog  # type: ignore[method-assign]
    with event_context(event(app, b"{}", topic=INPUT, partition=5)):
        table["p5|1110|2025-03"] = {"ids": ["a"]}
    assert sent == [(5, "p5|1110|2025-03", {"ids": ["a"]})]
    assert table["p5|1110|2025-03"] == {"ids": ["a"]}


def test_a_table_write_outside_an_event_context_is_refused(app: faust.App) -> None:
    """Faust has no other source for the partition: the context variable is what it reads."""
    table = app.Table("compat", default=None, key_type=str, partitions=8)
    with pytest.raises(TypeError, match="outside of stream iteration"):
        table["key"] = {"ids": []}


# --- Consumer._read_offset: the fetch loop's filter of messages below the last delivered ---------


async def drain(read_offset: int, offsets: list[int], filter_on: bool = True) -> list[int]:
    """Run Faust's own fetch loop over messages at ``offsets``; the offsets it delivered."""
    app = faust.App("budgetvakt-compat-drain", broker="kafka://127.0.0.1:9", store="memory://")
    app.finalize()  # in the running loop: the consumer's events belong to it
    consumer = consumer_of(app)
    if not filter_on:
        disable_read_offset_filter(consumer)
    tp = TP(INPUT, 0)
    consumer._read_offset[tp] = read_offset
    delivered: list[int] = []
    stopped = asyncio.Event()

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        for offset in offsets:
            yield tp, SimpleNamespace(offset=offset, topic=INPUT, key=None, value=b"")
        stopped.set()

    async def callback(message: Any) -> None:
        delivered.append(message.offset)

    consumer.getmany = getmany  # type: ignore[method-assign]
    consumer.callback = callback
    consumer._stopped = stopped  # type: ignore[assignment]  # the loop runs until it is set
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)  # type: ignore[arg-type]
    return delivered


def test_faust_drops_a_message_below_the_read_offset() -> None:
    assert asyncio.run(drain(read_offset=5, offsets=[3, 5, 6])) == [5, 6]


def test_without_the_read_offset_filter_every_message_gets_through() -> None:
    assert asyncio.run(drain(read_offset=5, offsets=[3, 5, 6], filter_on=False)) == [3, 5, 6]


# --- Consumer.perform_seek and Consumer._committed_offset ----------------------------------------


def test_faust_seeks_to_committed_through_the_consumer_s_perform_seek_coroutine() -> None:
    """The table recovery calls ``consumer.perform_seek()`` on the app's consumer (an instance
    attribute replaces it) before it marks the recovery completed."""
    from faust.tables.recovery import Recovery

    assert inspect.iscoroutinefunction(Consumer.perform_seek)
    source = inspect.getsource(Recovery)
    assert source.count("consumer.perform_seek()") >= 2
    assert source.index("consumer.perform_seek()") < source.index("self.completed.set()")


def test_perform_seek_records_the_committed_offsets_by_tp(app: faust.App) -> None:
    consumer = consumer_of(app)
    tp = TP(INPUT, 2)
    assert committed_offset(consumer, tp) is None

    async def seek_to_committed() -> dict[TP, int]:
        return {tp: 17}

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    asyncio.run(consumer.perform_seek())
    assert committed_offset(consumer, tp) == 17
    assert consumer._committed_offset == {tp: 17}


def test_the_seek_after_recovery_replays_uncommitted_and_recovered_input(app: faust.App) -> None:
    consumer = consumer_of(app)
    never_committed, replayed, committed, other = (
        TP(INPUT, 0),
        TP(INPUT, 1),
        TP(INPUT, 2),
        TP("some.changelog", 0),
    )
    sought: dict[TP, int] = {}

    async def seek_to_committed() -> dict[TP, int]:
        return {replayed: 40, committed: 30}

    async def earliest_offsets(*partitions: TP) -> dict[TP, int]:
        return dict.fromkeys(partitions, 0)

    async def seek(tp: TP, offset: int) -> None:
        sought[tp] = offset

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    consumer.assignment = lambda: {never_committed, replayed, committed, other}  # type: ignore[method-assign]
    consumer.earliest_offsets = earliest_offsets  # type: ignore[method-assign]
    consumer.seek = seek  # type: ignore[method-assign,assignment]
    replay = RecoveryReplay(app)
    replay.note([event(app, b"", topic=INPUT, partition=1, offset=o) for o in (36, 35, 38)])
    replay.note([event(app, b"", topic=INPUT, partition=2, offset=31)])  # after its commit

    seek_after_recovery(consumer, {INPUT}, replay)
    asyncio.run(consumer.perform_seek())
    assert sought == {never_committed: 0, replayed: 35}
    assert replay.lowest == {}  # noted offsets are used once


# --- app.flow_control: the topic queues it empties on resume -------------------------------------


def test_faust_resumes_its_flow_after_the_post_recovery_seek_and_empties_its_queues_then(
    app: faust.App,
) -> None:
    """The input partitions are resumed and sought before the flow is resumed, and resuming
    clears every managed queue through the instance's ``clear`` (which the patch replaces)."""
    from faust.tables.recovery import Recovery
    from mode.utils.queues import FlowControlQueue

    source = inspect.getsource(Recovery.on_recovery_completed)
    resume_partitions = source.index("consumer.resume_partitions(")
    seek = source.index("consumer.perform_seek()")
    resume_flow = source.index("self.app.flow_control.resume()")
    assert resume_partitions < seek < resume_flow
    queue: FlowControlQueue[int] = FlowControlQueue(
        flow_control=app.flow_control, clear_on_resume=True
    )
    queue.put_nowait(1)
    cleared: list[bool] = []
    clear = app.flow_control.clear

    def counted_clear() -> None:
        cleared.append(True)
        clear()

    app.flow_control.clear = counted_clear  # type: ignore[method-assign]
    app.flow_control.resume()
    assert cleared == [True] and queue.empty()


def test_faust_commits_over_one_missing_offset_right_after_the_committed_one(
    app: faust.App,
) -> None:
    """Why a dropped record was lost for good: committed 10 (the next to read), 10 never acked,
    11..12 acked, and Faust's ``_new_offset`` answers 13."""
    consumer = consumer_of(app)
    tp = TP(INPUT, 0)
    consumer._committed_offset[tp] = 10
    consumer._acked[tp] = [11, 12]
    consumer._acked_index[tp] = {11, 12}
    assert consumer._new_offset(tp) == 13


def test_input_dropped_from_the_queues_is_sought_back_and_not_committed_over(
    app: faust.App,
) -> None:
    from mode.utils.queues import FlowControlQueue

    consumer = consumer_of(app)
    cost, other_cost, changelog, revoked = (
        TP(INPUT, 0),
        TP(INPUT, 1),
        TP("some.changelog", 0),
        TP(INPUT, 3),
    )
    sought: dict[TP, int] = {}
    consumer._thread = SimpleNamespace(  # type: ignore[attr-defined]
        seek=lambda tp, offset: sought.__setitem__(tp, offset)
    )
    consumer.assignment = lambda: {cost, other_cost, changelog}  # type: ignore[method-assign]
    cleared = replay_cleared_input(consumer, {INPUT})
    queue: FlowControlQueue[Any] = FlowControlQueue(
        flow_control=app.flow_control, clear_on_resume=True
    )
    for tp, offset in [(cost, 11), (cost, 10), (changelog, 4), (revoked, 7), (other_cost, 3)]:
        queue.put_nowait(event(app, b"", topic=tp.topic, partition=tp.partition, offset=offset))

    app.flow_control.resume()
    assert queue.empty()
    assert sought == {cost: 10, other_cost: 3}
    assert cleared.lowest == {cost: 10, other_cost: 3}

    # 10 is not acknowledged again yet: nothing is committed for its partition.
    consumer._committed_offset[cost] = 10
    consumer._acked[cost] = [11, 12]
    consumer._acked_index[cost] = {11, 12}
    assert consumer._new_offset(cost) is None
    # read again and acknowledged: the commit goes on.
    consumer._acked[cost].append(10)
    consumer._acked_index[cost].add(10)
    assert consumer._new_offset(cost) == 13
    assert cost not in cleared.lowest
    # committed past it by another worker meanwhile: nothing to hold.
    consumer._committed_offset[other_cost] = 5
    consumer._acked[other_cost] = [5]
    consumer._acked_index[other_cost] = {5}
    assert consumer._new_offset(other_cost) == 6
    assert cleared.lowest == {}


def test_input_fetched_before_a_seek_further_back_is_not_sought_forward_to(
    app: faust.App,
) -> None:
    """The post-recovery seek sets the fetch position back (to replay input handed over during
    the recovery); records fetched before it and dropped at the flow's resume are read again
    from there. Seeking to them would skip everything in between."""
    from mode.utils.queues import FlowControlQueue

    consumer = consumer_of(app)
    replayed, fetched_after = TP(INPUT, 0), TP(INPUT, 1)
    positions = {replayed: 0, fetched_after: 21}
    sought: dict[TP, int] = {}

    class State:
        def __init__(self, position: int) -> None:
            self.has_valid_position = True
            self.position = position

    assignment = SimpleNamespace(state_value=lambda tp: State(positions[tp]))
    aiokafka_consumer = SimpleNamespace(
        _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))
    )
    consumer._thread = SimpleNamespace(  # type: ignore[attr-defined]
        seek=lambda tp, offset: sought.__setitem__(tp, offset),
        _ensure_consumer=lambda: aiokafka_consumer,
    )
    consumer.assignment = lambda: {replayed, fetched_after}  # type: ignore[method-assign]
    cleared = replay_cleared_input(consumer, {INPUT})
    queue: FlowControlQueue[Any] = FlowControlQueue(
        flow_control=app.flow_control, clear_on_resume=True
    )
    for tp, offset in [(replayed, 1458), (replayed, 1459), (fetched_after, 20)]:
        queue.put_nowait(event(app, b"", topic=tp.topic, partition=tp.partition, offset=offset))

    app.flow_control.resume()
    assert sought == {fetched_after: 20}  # fetched after the seek: the position is past it
    assert cleared.lowest == {replayed: 1458, fetched_after: 20}  # both held until acked again


def test_deferred_input_is_not_committed_over_until_it_is_applied(app: faust.App) -> None:
    consumer = consumer_of(app)
    tp, other = TP(INPUT, 0), TP(INPUT, 1)
    replay = RecoveryReplay(app)
    hold_commits_until_applied(consumer, replay)
    app.in_recovery = True
    deferred = [event(app, b"", topic=INPUT, partition=0, offset=o) for o in (10, 11)]
    assert replay.defer(deferred)
    app.in_recovery = False
    assert not replay.defer([event(app, b"", topic=INPUT, partition=0, offset=12)])
    # Faust has their acknowledgements from the first time they were handed over.
    consumer._committed_offset[tp] = 10
    consumer._acked[tp] = [10, 11, 12]
    consumer._acked_index[tp] = {10, 11, 12}
    assert consumer._new_offset(tp) is None
    replay.applied(deferred[:1])
    assert consumer._new_offset(tp) is None
    replay.applied(deferred[1:])
    assert consumer._new_offset(tp) == 13
    # Committed past them by another worker (after a revocation): nothing to hold.
    replay.deferred[other] = 4
    consumer._committed_offset[other] = 5
    consumer._acked[other] = [5]
    consumer._acked_index[other] = {5}
    assert consumer._new_offset(other) == 6
    assert replay.deferred == {}


# --- app.tables.recovery.completed ---------------------------------------------------------------


def test_input_is_noted_for_replay_only_while_the_table_recovery_runs(app: faust.App) -> None:
    completed = app.tables.recovery.completed  # type: ignore[attr-defined]
    assert not completed.is_set()
    assert not recovery_completed(app)
    replay = RecoveryReplay(app)
    replay.note([event(app, b"", topic=INPUT, partition=3, offset=9)])
    assert replay.lowest == {TP(INPUT, 3): 9}

    completed.set()
    assert recovery_completed(app)
    replay.note([event(app, b"", topic=INPUT, partition=3, offset=2)])
    assert replay.lowest == {TP(INPUT, 3): 9}


def test_the_worker_app_is_not_built_on_another_faust_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, domain: DomainConfig
) -> None:
    import streams.faust_compat
    from streams.app import create_app
    from tests.streams.inprocess import memory_settings

    monkeypatch.setattr(streams.faust_compat, "installed_faust_version", lambda: "0.16.0")
    with pytest.raises(UserError, match=re.escape("faust-streaming 0.16.0 is installed")):
        create_app(memory_settings(tmp_path), domain)


# --- the table recovery's offsets and the RocksDB store's partitions -----------------------------


def test_the_recovery_builds_active_offsets_just_before_its_consistency_check() -> None:
    # rebuild_stores_ahead_of_changelog wraps _build_offsets and must run before the check.
    from faust.tables.recovery import Recovery

    source = inspect.getsource(Recovery._restart_recovery.fun)  # a mode ServiceTask
    build = source.index("self._build_offsets")
    check = source.index("ConsistencyError", build)
    assert source.index("self._build_highwaters") < build < check
    assert inspect.signature(Recovery._build_offsets).parameters.keys() == {
        "self",
        "consumer",
        "tps",
        "destination",
        "title",
    }


def test_a_rocksdb_store_keeps_partition_dbs_where_local_partition_dirs_looks(
    tmp_path: Path,
) -> None:
    from faust.stores.rocksdb import Store

    from streams.faust_compat import local_partition_dirs, reset_local_partition

    app = faust.App(
        "budgetvakt-compat-rocks",
        broker="kafka://127.0.0.1:9",
        store="rocksdb://",
        datadir=str(tmp_path),
    )
    app.finalize()
    table = app.Table("aggregates", default=None, key_type=str, partitions=4)
    store = cast(Store, table.data)
    store._db_for_partition(2).put(b"k", b"v")
    assert local_partition_dirs(app, "aggregates") == {2: store.partition_path(2)}
    reset_local_partition(store, 2)
    assert local_partition_dirs(app, "aggregates") == {}
    assert store._db_for_partition(2).get(b"k") is None  # reopened empty
