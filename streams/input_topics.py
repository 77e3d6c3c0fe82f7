"""The input topics exist, with the partition count the workers are configured for, before any
worker subscribes.

Faust creates the table's changelog with ``BUDGETVAKT_TOPIC_PARTITIONS`` partitions but not the
topics it consumes: the broker creates an input topic when it is first named (by a producer, or
by the consumer's own metadata request) with *its* default count. With any other setting the
worker then failed on every batch with Faust's ``PartitionsMismatch`` (source topic and
changelog differ) and exited, and so did every restart: measured with 12 partitions on the
embedded broker, whose default is 4. :func:`ensure_input_topics` runs before the worker starts:
it creates the missing input topics with the configured count and refuses (exit 2, one line
naming the topic, both counts and the way out) when one exists with another count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

from core.errors import UserError

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 10.0


async def ensure_input_topics_async(
    bootstrap_servers: str, topics: Iterable[str], partitions: int
) -> list[str]:
    """Create the missing ``topics`` with ``partitions`` partitions; the names created.

    Raises :class:`UserError` when one exists with another partition count."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

    wanted = sorted(set(topics))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await admin.start()
            existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics([NewTopic(t, partitions, 1) for t in missing])
            for topic, code, *_ in response.topic_errors:
                if code == 0:
                    created.append(topic)
                elif for_code(code) is not TopicAlreadyExistsError:  # another worker was first
                    raise UserError(f"creating the input topic {topic} failed: {for_code(code)}")
        counts = await _partition_counts(admin, wanted)
    except (KafkaError, OSError, TimeoutError) as err:
        raise UserError(f"cannot reach Kafka at {bootstrap_servers}: {err}") from None
    finally:
        await admin.close()
    wrong = {t: n for t, n in counts.items() if n != partitions}
    if wrong:
        listed = ", ".join(f"{t} has {n}" for t, n in sorted(wrong.items()))
        raise UserError(
            f"the input topics must have BUDGETVAKT_TOPIC_PARTITIONS={partitions} partitions, like "
            f"the table's changelog, but {listed}: set BUDGETVAKT_TOPIC_PARTITIONS to the topics' "
            "count, or recreate the topics with the set count before the first event is produced"
        )
    if created:
        log.info("input_topics_created", topics=created, partitions=partitions)
    return created


async def _partition_counts(admin: object, topics: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(topics)  # type: ignore[attr-defined]
    return {
        str(d["topic"]): len(d["partitions"])
        for d in described
        if d.get("error_code", 0) == 0 and d.get("partitions")
    }


def ensure_input_topics(
    bootstrap_servers: str, topics: Iterable[str], partitions: int
) -> list[str]:
    """:func:`ensure_input_topics_async` for the worker command, before Faust starts."""
    return asyncio.run(ensure_input_topics_async(bootstrap_servers, topics, partitions))
