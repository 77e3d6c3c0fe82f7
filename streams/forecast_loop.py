"""The worker's forecast schedule, and the consumer lag it refreshes after every tick.

At most one forecast pass per ``forecast_interval_s``, unless a period was closed: a close is
what makes alerts and the snapshot due, so it is forecast at once, and a pass without a close
gives way to it (``streams.forecasting``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Container, Mapping
from typing import TYPE_CHECKING

import structlog
from faust.transport.consumer import Consumer
from faust.types import TP

from streams.faust_compat import committed_offset
from streams.metrics import WorkerMetrics

if TYPE_CHECKING:
    from streams.app import WorkerApp

log = structlog.get_logger(__name__)


def update_consumer_lag(
    consumer: Consumer,
    input_topics: Container[str],
    processed_offsets: Mapping[TP, int],
    metrics: WorkerMetrics,
) -> None:
    """Lag per input partition: the end offset minus what this worker processed (or, for a
    partition it has not processed yet, the committed offset)."""
    metrics.consumer_lag.clear()  # partitions this worker lost must not keep a stale lag
    for tp in consumer.assignment():
        if tp.topic not in input_topics:
            continue
        position = processed_offsets.get(tp, committed_offset(consumer, tp) or 0)
        end = consumer.highwater(tp) or 0
        metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - position))


async def forecast_once(worker: WorkerApp) -> None:
    """One tick: forecast the current state if the worker may (a failure waits for the next).

    The forecaster reads the alert books of owners it holds without one before evaluating
    them (evaluating without would resend alerts)."""
    forecaster = worker.forecaster
    if not worker.ready or worker.app.rebalancing:
        return
    try:
        await forecaster.run_once(
            worker.state.version, list(worker.state.items()), worker.ingest.close_seen
        )
    except Exception as err:  # a failed run is retried at the next tick, same state
        worker.metrics.forecast_failures.inc()
        log.error("forecast_failed", error_type=type(err).__name__, error=str(err))
    update_consumer_lag(
        worker.consumer,
        worker.input_topic_names,
        worker.ingest.processed_offsets,
        worker.metrics,
    )


async def forecast_loop(worker: WorkerApp, interval_s: float) -> None:
    close_seen = worker.ingest.close_seen
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(close_seen.wait(), timeout=interval_s)
        if close_seen.is_set():
            log.info("forecast_woken_by_close")  # where a close's latency starts in the worker
            worker.forecaster.give_way()  # a warm-up in the pool stops: the close needs the CPU
        close_seen.clear()
        await forecast_once(worker)
        warm = worker.settings.forecast_warm_while_idle
        if warm and not close_seen.is_set() and worker.ready and not worker.app.rebalancing:
            # Idle: learn what the next close will need (gives way when a close comes).
            worker.forecaster.warm_while_idle(worker.state.version)
