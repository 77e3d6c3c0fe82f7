"""``budgetvakt migrate-keys``: move the aggregate state to the homes of another partition key.

The stop-the-world path from cost-centre keys to nämnd keys (``docs/architecture.md``, "Moving
from cost-centre keys to nämnd keys"). With every worker of the consumer group stopped:

1. read the aggregates changelog to its end (``streams.replay.read_topics_async``) and keep each
   key's latest value (a ``None`` value is a tombstone: the key is gone);
2. plan (:func:`plan_rekeying`, pure): a live key ``p{old}|{org_unit}|…`` whose partition is not
   the home of ``org_unit`` under the target scheme (``streams.ownership``) moves to
   ``p{new}|{org_unit}|…``, the same value, on changelog partition ``new``;
3. record ``migrating`` in ``<app_id>-ownership`` (no worker starts while it stands);
4. write every moved value under its new key, flush, end each partition written with a
   one-record batch (Tansu's end offset, brief §5); then a tombstone for every old key, flush,
   end marker again;
5. record ``migrated`` with the target scheme and the org tree's owner map.

Idempotent and resumable: a re-run after a crash anywhere reads what was written; a key already
written at its new home with the same value is only tombstoned at the old one, a key already
tombstoned is gone, and step 5 is reached again. Two live copies of one key with *different*
values (two schemes were mixed, which the recorded scheme prevents) are a conflict: the command
refuses, since adding them could count an event twice and choosing one could lose one.

The input offsets stay with the consumer group. Events already applied are in the moved values
(with their ids), so any replay of them is a duplicate at the new home; events not yet applied,
and cost-centre-keyed events produced later, are forwarded by the worker to their nämnd's home
and applied there once.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from core.errors import UserError
from streams.aggregation import StateValue, parse_key
from streams.ownership import (
    CONNECT_TIMEOUT_S,
    Ownership,
    SchemeRecord,
    append_record,
    changelog_topic,
    effective_record,
    read_records,
)

log = structlog.get_logger(__name__)

TABLE_CODEC = "json"  # Faust's serializer of the aggregates table's keys and values


@dataclass(frozen=True)
class Move:
    """One live key away from its home: ``write`` the value at ``new_key`` (unless an earlier,
    interrupted run already did), then tombstone ``old_key``."""

    old_key: str
    old_partition: int
    new_key: str
    new_partition: int
    value: StateValue
    write: bool
    owner: str


@dataclass
class Plan:
    moves: list[Move] = field(default_factory=list)
    at_home: int = 0  # live keys already where they belong
    conflicts: list[str] = field(default_factory=list)  # keys live twice with different values
    unreadable: int = 0  # keys that are not the table's (left alone)

    @property
    def writes(self) -> list[Move]:
        return [m for m in self.moves if m.write]

    def summary(self) -> list[str]:
        """One line per owner: how many keys move from which partitions to which."""
        lines = []
        per_owner: dict[tuple[str, int], Counter[int]] = {}
        for move in self.moves:
            per_owner.setdefault((move.owner, move.new_partition), Counter())[
                move.old_partition
            ] += 1
        for (owner, new), olds in sorted(per_owner.items()):
            sources = ", ".join(f"p{p}: {n}" for p, n in sorted(olds.items()))
            lines.append(f"{owner}: {sum(olds.values())} key(s) to p{new} (from {sources})")
        return lines


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _rest(key: str) -> str:
    """The key without its ``p{partition}|`` prefix."""
    return key.partition("|")[2]


def plan_rekeying(
    latest: Mapping[str, tuple[int, StateValue | None]], ownership: Ownership, partitions: int
) -> Plan:
    """What moves, from each key's latest ``(changelog partition, value)`` (pure)."""
    plan = Plan()
    live: dict[str, tuple[int, StateValue]] = {}
    units: dict[str, str] = {}
    for key, (partition, value) in latest.items():
        if value is None:
            continue
        try:
            units[key] = parse_key(key).org_unit
        except (ValueError, IndexError):
            plan.unreadable += 1
            continue
        live[key] = (partition, value)
    by_rest: dict[str, list[str]] = {}
    for key in sorted(live):
        by_rest.setdefault(_rest(key), []).append(key)
    for rest, keys in sorted(by_rest.items()):
        unit = units[keys[0]]
        home = ownership.home(unit, partitions)
        new_key = f"p{home}|{rest}"
        away = [k for k in keys if k != new_key or live[k][0] != home]
        if not away:
            plan.at_home += 1
            continue
        at_home = live.get(new_key) if new_key not in away else None
        values = {_canonical(live[k][1]) for k in away}
        if at_home is not None:
            values.add(_canonical(at_home[1]))
        if len(values) > 1:
            plan.conflicts.append(rest)
            continue
        for index, key in enumerate(away):
            partition, value = live[key]
            plan.moves.append(
                Move(
                    key,
                    partition,
                    new_key,
                    home,
                    value,
                    write=at_home is None and index == 0,
                    owner=ownership.key(unit),
                )
            )
    return plan


def latest_values(
    records: Iterable[tuple[int, bytes | None, bytes | None]],
) -> dict[str, tuple[int, StateValue | None]]:
    """Each key's last ``(partition, value)`` from changelog ``(partition, key, value)`` records
    in log order (per partition); a ``None`` value is a tombstone."""
    from faust.serializers import codecs

    out: dict[str, tuple[int, StateValue | None]] = {}
    for partition, raw_key, raw_value in records:
        if raw_key is None:
            continue
        try:
            key = codecs.loads(TABLE_CODEC, raw_key)
            value = codecs.loads(TABLE_CODEC, raw_value) if raw_value is not None else None
        except ValueError:
            continue
        if isinstance(key, str) and (value is None or isinstance(value, dict)):
            out[key] = (partition, value)
    return out


@dataclass
class Outcome:
    plan: Plan
    target: str
    partitions: int
    recorded_before: SchemeRecord | None
    keys_read: int
    done: bool  # False for a dry run


async def _partition_count(bootstrap_servers: str, topic: str) -> int | None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await consumer.start()
        await consumer.topics()
        ids = consumer.partitions_for_topic(topic)
        return len(ids) if ids else None
    finally:
        await consumer.stop()


async def running_members(bootstrap_servers: str, group: str) -> int | None:
    """How many members the consumer group has now (None when the broker does not say)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await admin.start()
            responses = await admin.describe_consumer_groups([group])
        members = 0
        for response in responses:
            for described in response.groups:
                members += len(described[5])  # (error, group, state, protocol type, ..., members)
        return members
    except Exception as err:  # an answer the broker may not support is not worth failing on
        log.warning("consumer_group_not_described", group=group, error=str(err))
        return None
    finally:
        await admin.close()


async def _wait_for_an_empty_group(bootstrap_servers: str, group: str, timeout_s: float) -> None:
    """Refuse while workers are members of the group. A stopped (or killed) worker stays a
    member until the broker's session timeout has passed, so look again for ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while members := await running_members(bootstrap_servers, group):
        if asyncio.get_running_loop().time() > deadline:
            raise UserError(
                f"the consumer group {group} still has {members} member(s) after "
                f"{timeout_s:.0f} s: stop every worker before `budgetvakt migrate-keys` (if they "
                "are stopped and the broker keeps stale members, as the embedded one does, pass "
                "--workers-stopped)"
            )
        await asyncio.sleep(1.0)


async def _produce(
    bootstrap_servers: str, records: list[tuple[int, bytes, bytes | None]], topic: str
) -> None:
    """Produce ``(partition, key, value)`` records, flush, then end each partition with its last
    record alone (a one-record batch: Tansu's end offset, brief §5; harmless on Kafka)."""
    from aiokafka import AIOKafkaProducer

    if not records:
        return
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        await producer.start()
    try:
        deliveries = [
            await producer.send(topic, value, key=key, partition=partition)
            for partition, key, value in records
        ]
        await producer.flush()
        for delivery in deliveries:
            await delivery
        last = {partition: (key, value) for partition, key, value in records}
        for partition, (key, value) in sorted(last.items()):
            await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


async def migrate_keys_async(
    bootstrap_servers: str,
    app_id: str,
    ownership: Ownership,
    default_partitions: int,
    dry_run: bool = False,
    timeout_s: float = 300.0,
    members_timeout_s: float | None = 10.0,
) -> Outcome:
    """Plan and (unless ``dry_run``) carry out the move; :class:`UserError` when unsafe.

    ``members_timeout_s``: how long to wait for the consumer group to have no member (a killed
    worker stays one for the broker's session timeout); None skips that check, for a broker
    whose view of the group is stale (the embedded one keeps a stopped worker as a member)."""
    from faust.serializers import codecs

    from streams.replay import read_topics_async

    if not dry_run and members_timeout_s is not None:
        await _wait_for_an_empty_group(bootstrap_servers, app_id, members_timeout_s)
    topic = changelog_topic(app_id)
    recorded = effective_record(await read_records(bootstrap_servers, app_id))
    partitions = await _partition_count(bootstrap_servers, topic) or default_partitions
    messages = await read_topics_async(bootstrap_servers, [topic], timeout_s=timeout_s)
    latest = latest_values((m.partition, m.key, m.value) for m in messages)
    plan = plan_rekeying(latest, ownership, partitions)
    outcome = Outcome(plan, ownership.scheme, partitions, recorded, len(latest), done=False)
    if plan.conflicts:
        shown = ", ".join(plan.conflicts[:3])
        raise UserError(
            f"{len(plan.conflicts)} key(s) of {app_id} hold different values on two partitions "
            f"({shown}): the state was written by workers of two schemes at once; nothing moved"
        )
    if dry_run:
        return outcome
    owners = ownership.owner_map() if ownership.scheme == "namnd" else {}
    await append_record(
        bootstrap_servers, app_id, SchemeRecord(ownership.scheme, "migrating", partitions, owners)
    )

    def dumps(obj: Any) -> bytes:
        return bytes(codecs.dumps(TABLE_CODEC, obj))

    # New keys first: a crash between the two steps leaves both copies (same value), never none.
    await _produce(
        bootstrap_servers,
        [(m.new_partition, dumps(m.new_key), dumps(m.value)) for m in plan.writes],
        topic,
    )
    await _produce(
        bootstrap_servers, [(m.old_partition, dumps(m.old_key), None) for m in plan.moves], topic
    )
    await append_record(
        bootstrap_servers, app_id, SchemeRecord(ownership.scheme, "migrated", partitions, owners)
    )
    log.info(
        "keys_migrated",
        app_id=app_id,
        scheme=ownership.scheme,
        moved=len(plan.moves),
        written=len(plan.writes),
        at_home=plan.at_home,
    )
    outcome.done = True
    return outcome


def migrate_keys(
    bootstrap_servers: str,
    app_id: str,
    ownership: Ownership,
    default_partitions: int,
    dry_run: bool = False,
    members_timeout_s: float | None = 10.0,
) -> Outcome:
    """:func:`migrate_keys_async` for the command line."""
    return asyncio.run(
        migrate_keys_async(
            bootstrap_servers,
            app_id,
            ownership,
            default_partitions,
            dry_run,
            members_timeout_s=members_timeout_s,
        )
    )
