"""Which broker the worker runs on, and what that switches (``BUDGETVAKT_BROKER_KIND``).

The embedded broker (Tansu, brief §5) answers a partition's end offset as "first offset of the
last record batch + 1". Three workarounds keep the worker exact on it, and all three cost time on
the hot path of Apache Kafka, which answers end offsets exactly:

* the changelog **end marker** after every ingest batch (``streams.ingest``);
* a producer **flush after every alert**, so that each alert is a batch of its own
  (``streams.app.WorkerTopics.publish``);
* the **drain polls** of the replay reader after the reported end (``streams.replay``), used by
  the alert-state restore at start and by ``budgetvakt snapshot``.

:class:`BrokerProfile` holds these switches; the code path is the same for both kinds, only the
parameters differ. ``kafka`` turns all three off.

Detection (``auto``, once at start): the broker is taken for Apache Kafka only when it is
recognisably one; anything else (an unknown broker, no answer) is treated as Tansu, whose
workarounds are correct, only slower, on any broker. Two independent signals must agree:

1. its ApiVersions answer offers every API in :data:`KAFKA_ONLY_APIS`. Apache Kafka brokers
   offer them since 2.4 (ZooKeeper and KRaft mode alike); Tansu 0.6.0 offers none of them
   (measured: 36 API keys, none of 23, 35, 37, 47);
2. its cluster id is a Kafka cluster id: a UUID in URL-safe base64 without padding (22
   characters, 16 bytes), which ``kafka-storage format`` requires in KRaft mode and ZooKeeper
   mode generates. Tansu's is a free string, ``tansu_cluster`` by default (measured).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import structlog

log = structlog.get_logger(__name__)

BrokerKind = Literal["tansu", "kafka"]

#: API key → name of Kafka protocol APIs every Apache Kafka broker ≥ 2.4 offers on its client
#: listener and Tansu 0.6.0 does not.
KAFKA_ONLY_APIS: dict[int, str] = {
    23: "OffsetForLeaderEpoch",
    35: "DescribeLogDirs",
    37: "CreatePartitions",
    47: "OffsetDelete",
}
DETECT_TIMEOUT_S = 10.0
_KAFKA_CLUSTER_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


@dataclass(frozen=True)
class BrokerProfile:
    """The broker-specific switches of the worker (see the module doc)."""

    kind: BrokerKind
    changelog_end_marker: bool  # a one-record batch per changelog partition after each batch
    flush_each_alert: bool  # every alert event its own produce batch
    exact_end_offsets: bool  # the replay stops at the end offsets, no drain polls

    @classmethod
    def of(cls, kind: BrokerKind) -> BrokerProfile:
        if kind == "kafka":
            return cls("kafka", False, False, True)
        return cls("tansu", True, True, False)


@dataclass(frozen=True)
class BrokerDetection:
    """What the worker decided and why (logged once at start)."""

    kind: BrokerKind
    reason: str
    setting: str = "auto"
    answered: bool = True  # False: the broker could not be asked (taken for tansu)

    @property
    def profile(self) -> BrokerProfile:
        return BrokerProfile.of(self.kind)


def is_kafka_cluster_id(cluster_id: str | None) -> bool:
    """A Kafka cluster id: 16 bytes as URL-safe base64 without padding (22 characters)."""
    if cluster_id is None or not _KAFKA_CLUSTER_ID.match(cluster_id):
        return False
    try:
        return len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    except (binascii.Error, ValueError):
        return False


def classify(api_keys: Iterable[int], cluster_id: str | None) -> BrokerDetection:
    """The broker kind from its ApiVersions keys and its cluster id (pure; module doc)."""
    offered = set(api_keys)
    missing = [f"{name} ({key})" for key, name in KAFKA_ONLY_APIS.items() if key not in offered]
    if missing:
        return BrokerDetection(
            "tansu",
            f"the broker does not offer {', '.join(missing)}, which Apache Kafka ≥ 2.4 does "
            f"({len(offered)} APIs offered, cluster id {cluster_id!r})",
        )
    if not is_kafka_cluster_id(cluster_id):
        return BrokerDetection(
            "tansu", f"the cluster id {cluster_id!r} is not a Kafka cluster id (base64 UUID)"
        )
    return BrokerDetection(
        "kafka",
        f"the broker offers the Kafka-only APIs {sorted(KAFKA_ONLY_APIS)} and its cluster id "
        f"{cluster_id!r} is a Kafka cluster id",
    )


async def probe_broker(
    bootstrap_servers: str, timeout_s: float = DETECT_TIMEOUT_S
) -> tuple[set[int], str | None]:
    """The API keys a broker offers (ApiVersions) and its cluster id (Metadata)."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.admin import ApiVersionRequest
    from aiokafka.protocol.metadata import MetadataRequest

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers,
        client_id="budgetvakt-broker-kind",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
            node_id = client.get_random_node()
            if node_id is None:
                raise ConnectionError("the broker listed no nodes")
            versions = await client.send(node_id, ApiVersionRequest())
            metadata = await client.send(node_id, MetadataRequest([]))
    finally:
        await client.close()
    api_keys = {int(entry[0]) for entry in versions.api_versions}
    return api_keys, getattr(metadata, "cluster_id", None)


async def detect_broker_kind(
    bootstrap_servers: str, timeout_s: float = DETECT_TIMEOUT_S
) -> BrokerDetection:
    """Ask the broker (:func:`probe_broker`) and :func:`classify` it; no answer is ``tansu``."""
    try:
        api_keys, cluster_id = await probe_broker(bootstrap_servers, timeout_s)
    except Exception as err:  # any failure: the safe choice, said in the log
        return BrokerDetection(
            "tansu",
            f"the broker could not be asked ({type(err).__name__}: {err})",
            answered=False,
        )
    return classify(api_keys, cluster_id)


def resolve_broker_kind(
    setting: str, bootstrap_servers: str, timeout_s: float = DETECT_TIMEOUT_S
) -> BrokerDetection:
    """``BUDGETVAKT_BROKER_KIND`` taken as set, or detected for ``auto``; logged either way.

    Synchronous (the worker resolves it while it is being wired, before Faust's event loop
    runs): the detection runs in a thread with an event loop of its own, so that a caller that
    is itself inside a loop is not blocked from the outside.
    """
    chosen: dict[str, BrokerKind] = {"tansu": "tansu", "kafka": "kafka"}
    if setting in chosen:
        detection = BrokerDetection(chosen[setting], "set by BUDGETVAKT_BROKER_KIND", setting)
    elif setting == "auto":
        with concurrent.futures.ThreadPoolExecutor(1, "broker-kind") as pool:
            detection = pool.submit(
                asyncio.run, detect_broker_kind(bootstrap_servers, timeout_s)
            ).result()
    else:
        raise ValueError(f"unknown broker kind {setting!r}; choose auto, tansu or kafka")
    profile = detection.profile
    (log.info if detection.answered else log.warning)(
        "broker_kind",
        kind=detection.kind,
        setting=setting,
        reason=detection.reason,
        changelog_end_marker=profile.changelog_end_marker,
        flush_each_alert=profile.flush_each_alert,
        replay_drain=not profile.exact_end_offsets,
    )
    return detection
