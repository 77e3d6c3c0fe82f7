"""The worker's consumer fetches with ``BUDGETVAKT_WORKER_FETCH_MAX_WAIT_S`` instead of Faust's
fixed 1,5 s (the embedded broker holds a fetch that long even when a record arrives)."""

from __future__ import annotations

import asyncio

from core.settings import Settings
from streams.app import _faust_app


def test_the_worker_consumer_takes_the_fetch_wait_from_the_settings() -> None:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", worker_fetch_max_wait_s=0.08)
    app = _faust_app(settings)

    async def created_wait() -> int:
        transport = app.transport
        consumer = transport.Consumer(
            transport,
            callback=lambda *_: None,
            on_partitions_revoked=None,
            on_partitions_assigned=None,
        )
        client = consumer._new_consumer_thread()._create_worker_consumer(transport)
        try:
            return int(client._fetch_max_wait_ms)
        finally:
            await client.stop()

    assert asyncio.run(created_wait()) == 80
    assert Settings(kafka_bootstrap_servers="x:1").worker_fetch_max_wait_s == 0.05
