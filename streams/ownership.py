"""Who owns an event: the partition key (the nämnd, or the legacy cost centre) and its home.

Every event is processed on its *home partition*: the partition Kafka's default (murmur2)
partitioner picks for its partition key. With ``BUDGETVAKT_PARTITION_KEY=namnd`` (the default)
the key is the nämnd that owns the event's cost centre (``OrgTree.owner_of``; ``omappad`` for a
cost centre the org tree does not know, so its money is never dropped), so one worker holds a
whole nämnd: its cost centres, its roll-ups and its period closes. ``cost_centre`` is the older
scheme (the key is the ``org_unit`` itself), kept so that an existing deployment can run until
it has moved its state with ``budgetvakt migrate-keys`` (:mod:`streams.rekeying`).

:class:`Ownership` is the one place that decides a home; the ingest, the forwarding, the
producers we ship (``budgetvakt publish``, the demo) and the rekeying all ask it.

The scheme a deployment's state was written with is recorded in the topic
``<app_id>-ownership`` (:class:`SchemeRecord`, one small JSON record per change) so that two
schemes are never mixed in one consumer group: a worker keyed by cost centre beside one keyed by
nämnd would apply one event in two places and count it twice. :func:`ensure_scheme` runs before
the worker starts and refuses (a :class:`~core.errors.UserError`, exit status 2) when the
setting, the recorded scheme and the state do not agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal, cast, get_args

import structlog
from aiokafka.partitioner import murmur2

from core.errors import UserError
from core.hierarchy import UNMAPPED_ID, OrgTree

log = structlog.get_logger(__name__)

PartitionKey = Literal["namnd", "cost_centre"]
SCHEMES: tuple[str, ...] = get_args(PartitionKey)
DEFAULT_SCHEME: PartitionKey = "namnd"
MIGRATE_COMMAND = "budgetvakt migrate-keys"
CONNECT_TIMEOUT_S = 10.0


@lru_cache(maxsize=65536)
def home_partition(key: str, partitions: int) -> int:
    """The partition of ``key`` as Kafka's default (murmur2) partitioner places it.

    The same function as the Java client's, kafka-python's and aiokafka's, so events produced
    with the documented key already arrive at home and cost no forwarding.
    """
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


class Ownership:
    """The partition key and home partition of an ``org_unit`` under one scheme and org tree."""

    def __init__(self, org: OrgTree, scheme: PartitionKey = DEFAULT_SCHEME) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown partition key scheme {scheme!r}")
        self.org = org
        self.scheme: PartitionKey = scheme
        self._keys: dict[str, str] = {}

    def key(self, org_unit: str) -> str:
        """What a producer sets as the Kafka record key for an event of ``org_unit``."""
        key = self._keys.get(org_unit)
        if key is None:
            key = self.org.owner_of(org_unit) if self.scheme == "namnd" else org_unit
            if len(self._keys) < 1_000_000:  # unknown ids from bad producers must not grow it
                self._keys[org_unit] = key
        return key

    def home(self, org_unit: str, partitions: int) -> int:
        """The partition where every event (and every copy of it) of ``org_unit`` is applied."""
        return home_partition(self.key(org_unit), partitions)

    def owners_on(self, partitions: Iterable[int], count: int) -> list[str]:
        """The owners (nämnder and ``omappad``) whose home is one of ``partitions``: what a
        worker holding those partitions holds whole (``namnd`` scheme only)."""
        held = set(partitions)
        return [o for o in self.org.owners if home_partition(o, count) in held]

    def owner_map(self) -> dict[str, str]:
        """Every configured node → the owner its events are keyed by (what the record keeps)."""
        return {
            node: self.org.owner_of(node) for node in sorted(self.org.nodes) if node != UNMAPPED_ID
        }


# --- The recorded scheme ----------------------------------------------------------------------

RecordState = Literal["initial", "migrating", "migrated"]


@dataclass(frozen=True)
class SchemeRecord:
    """One record of ``<app_id>-ownership``.

    ``initial``: written by the first worker of an empty deployment (or of a legacy one, which
    is keyed by cost centre); only the first ``initial`` record counts, so two workers racing on
    an empty deployment agree on the first one written. ``migrating``: ``migrate-keys`` has
    begun moving the state to ``scheme`` (no worker may start). ``migrated``: it has finished.
    ``owners``: for ``namnd``, the configured node → owner map the state was keyed with (a node
    that moves to another nämnd, or into or out of ``omappad``, changes its home).
    """

    scheme: PartitionKey
    state: RecordState
    partitions: int
    owners: dict[str, str] = field(default_factory=dict)
    at: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "scheme": self.scheme,
                "state": self.state,
                "partitions": self.partitions,
                "owners": self.owners,
                "at": self.at or datetime.now(UTC).isoformat(timespec="seconds"),
            },
            ensure_ascii=False,
            sort_keys=True,
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> SchemeRecord | None:
        """The record, or None for anything that is not one (never raises)."""
        try:
            data = json.loads(raw)
            scheme, state = data["scheme"], data["state"]
            if scheme not in SCHEMES or state not in get_args(RecordState):
                return None
            owners = data.get("owners") or {}
            return cls(
                cast(PartitionKey, scheme),
                cast(RecordState, state),
                int(data.get("partitions", 0)),
                {str(k): str(v) for k, v in owners.items()},
                str(data.get("at", "")),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


def effective_record(records: Iterable[SchemeRecord]) -> SchemeRecord | None:
    """The scheme in force: the first ``initial`` record, replaced by each later migration."""
    current: SchemeRecord | None = None
    for record in records:
        if record.state == "initial" and current is not None:
            continue  # a worker that lost the race to record the first scheme
        current = record
    return current


def moved_units(recorded: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """Nodes whose owner (hence home) differs between two owner maps; a node missing from a
    map is owned by ``omappad`` there."""
    return sorted(
        node
        for node in set(recorded) | set(now)
        if recorded.get(node, UNMAPPED_ID) != now.get(node, UNMAPPED_ID)
    )


@dataclass(frozen=True)
class Verdict:
    """What the worker does at start: run, run after recording ``record``, or refuse."""

    record: SchemeRecord | None = None  # to append before starting
    refusal: str | None = None


def judge(
    recorded: SchemeRecord | None,
    state_exists: bool,
    ownership: Ownership,
    partitions: int,
    app_id: str,
) -> Verdict:
    """Compare the setting with the recorded scheme and the state (pure; see module doc)."""
    wanted = ownership.scheme
    owners = ownership.owner_map() if wanted == "namnd" else {}
    stop_and_migrate = f"stop every worker of {app_id} and run `{MIGRATE_COMMAND}`"
    if recorded is None:
        if state_exists and wanted == "namnd":
            return Verdict(
                refusal=f"the state of {app_id} was written with cost-centre keys (no ownership "
                f"scheme recorded) and BUDGETVAKT_PARTITION_KEY=namnd: {stop_and_migrate}, or "
                f"set BUDGETVAKT_PARTITION_KEY=cost_centre"
            )
        return Verdict(record=SchemeRecord(wanted, "initial", partitions, owners))
    if recorded.state == "migrating":
        return Verdict(
            refusal=f"`{MIGRATE_COMMAND}` has not finished moving the state of {app_id} to "
            f"{recorded.scheme} keys: run it again (with every worker stopped)"
        )
    if recorded.scheme != wanted:
        return Verdict(
            refusal=f"BUDGETVAKT_PARTITION_KEY={wanted} but the state of {app_id} is keyed by "
            f"{recorded.scheme}: {stop_and_migrate}, or set "
            f"BUDGETVAKT_PARTITION_KEY={recorded.scheme}"
        )
    if wanted == "namnd":
        moved = moved_units(recorded.owners, owners)
        if moved:
            example = ", ".join(
                f"{n}: {recorded.owners.get(n, UNMAPPED_ID)} → {owners.get(n, UNMAPPED_ID)}"
                for n in moved[:3]
            )
            return Verdict(
                refusal=f"the org tree moves {len(moved)} node(s) to another owner since the "
                f"state of {app_id} was keyed ({example}); {stop_and_migrate}"
            )
    return Verdict()


# --- Kafka: the ownership topic ---------------------------------------------------------------


def ownership_topic(app_id: str) -> str:
    return f"{app_id}-ownership"


def changelog_topic(app_id: str, table: str = "aggregates") -> str:
    """Faust's name of a table's changelog topic."""
    return f"{app_id}-{table}-changelog"


async def read_records(bootstrap_servers: str, app_id: str) -> list[SchemeRecord]:
    from streams.replay import read_topics_async

    messages = await read_topics_async(bootstrap_servers, [ownership_topic(app_id)])
    records = [SchemeRecord.from_bytes(m.value) for m in messages if m.value]
    return [r for r in records if r is not None]


async def topic_has_records(bootstrap_servers: str, topic: str) -> bool:
    """Whether any partition of ``topic`` holds a record (False when it does not exist)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await consumer.start()
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not tps:
            return False
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        return any(end[tp] > begin[tp] for tp in tps)
    except (KafkaError, OSError, TimeoutError) as err:
        raise UserError(f"cannot reach Kafka at {bootstrap_servers}: {err}") from None
    finally:
        await consumer.stop()


async def append_record(bootstrap_servers: str, app_id: str, record: SchemeRecord) -> None:
    """Append ``record`` to the ownership topic (created with one partition, kept forever)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    topic = ownership_topic(app_id)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await admin.start()
            await producer.start()
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, 1, 1, topic_configs={"retention.ms": "-1"})])
        await producer.send_and_wait(topic, record.to_bytes(), key=b"ownership", partition=0)
        # Tansu's end offset is the first offset of the last record batch + 1 (brief §5): a
        # record sent alone ends its own batch, so the next reader sees it.
    except (KafkaError, OSError, TimeoutError) as err:
        raise UserError(f"recording the ownership scheme in {topic} failed: {err}") from None
    finally:
        await producer.stop()
        await admin.close()


async def ensure_scheme_async(
    bootstrap_servers: str, app_id: str, ownership: Ownership, partitions: int
) -> SchemeRecord:
    """Refuse (:class:`UserError`) or return the scheme in force, recording it at first start."""
    records = await read_records(bootstrap_servers, app_id)
    recorded = effective_record(records)
    state_exists = recorded is None and await topic_has_records(
        bootstrap_servers, changelog_topic(app_id)
    )
    verdict = judge(recorded, state_exists, ownership, partitions, app_id)
    if verdict.refusal:
        raise UserError(verdict.refusal)
    if verdict.record is None:
        assert recorded is not None
        return recorded
    written = verdict.record
    await append_record(bootstrap_servers, app_id, written)
    # Two workers may have raced on an empty deployment: the first record written wins.
    recorded = effective_record(await read_records(bootstrap_servers, app_id))
    verdict = judge(recorded, False, ownership, partitions, app_id)
    if verdict.refusal:
        raise UserError(verdict.refusal)
    log.info("ownership_recorded", scheme=ownership.scheme, topic=ownership_topic(app_id))
    return recorded or written


def ensure_scheme(
    bootstrap_servers: str, app_id: str, ownership: Ownership, partitions: int
) -> SchemeRecord:
    """:func:`ensure_scheme_async` for the worker command, before Faust starts."""
    return asyncio.run(ensure_scheme_async(bootstrap_servers, app_id, ownership, partitions))
