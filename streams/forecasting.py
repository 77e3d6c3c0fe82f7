"""Live forecasts in the worker: re-forecast after events, publish them, evaluate deviation rules.

The ingest agent only aggregates. This module's :class:`LiveForecaster` runs beside it: at most
once per ``forecast_interval_s`` (the debounce), and at once after a batch that closed a period,
when the aggregate state changed, it takes a copy of the state and forecasts the whole
organisation in a process pool (the event loop never waits for a model), then

* keeps the result for the ``budgetvakt_forecast_*`` gauges (so after a restart they come back
  with the first run on the recovered state),
* publishes a ``forecast.v1`` event for every node and category whose figures (or preliminary
  flag) changed,
* evaluates the deviation rules (``forecasts.deviations``) and publishes the alert state changes
  as ``alert.v1`` events,
* writes a snapshot when a period was closed (through the store the worker passes in); events
  that arrive for an already closed period are recorded as late by the ingest agent.

The whole panel is forecast every time, not only the touched series: the cross-learned correction
of ``auto`` learns from the panel, and a forecast of one series alone would be a different one.

The rules look at the latest *closed* month (months close in order; next month's postings may
already be arriving, and a month still being booked would alert on half its costs); without any
close they look at the latest month with postings. An alert counts as sent only once it is on the
topic, so a failed publish is decided and sent again at the next run. The alert state (what
fires, its sequence number) is rebuilt at start from the alert topic itself, so a restart neither
repeats nor forgets an alert.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from contract.output_records import AlertEvent, ForecastEvent
from core.domain import DomainConfig
from core.period import Period
from forecasts.deviations import AlertBook, RuleSet
from forecasts.live import LeafSeries, NodeForecast, OrganisationForecast, forecast_organisation
from streams.aggregation import StateValue, close_counts, leaf_series, parse_key
from streams.metrics import WorkerMetrics
from streams.snapshot_store import SnapshotStore

log = structlog.get_logger(__name__)

Items = list[tuple[str, StateValue]]


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0


def die_with_parent(parent_pid: int) -> None:
    """The forecast pool's initializer: end this process when the worker ends, also by SIGKILL.

    A killed worker cannot shut its pool down, and a pool process left behind keeps the
    multiprocessing resource tracker alive too (it holds the tracker's pipe; the tracker ends
    when the last holder does). On Linux the kernel sends SIGKILL on the parent's death
    (``PR_SET_PDEATHSIG``; it fires when the *thread* that spawned the child ends: the pool
    spawns from the event loop's thread, the worker's main thread). Elsewhere a daemon thread
    watches the parent pid. A parent that died before this ran is caught by the pid check.
    """
    armed = False
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent_pid:
        os._exit(0)
    if not armed:

        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(PARENT_POLL_S)
            os._exit(0)

        threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


@dataclass(frozen=True)
class ForecastRequest:
    year: int
    as_of_month: int


def latest_months(items: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[int, int]:
    """year → the latest month with a cost booked anywhere."""
    out: dict[int, int] = {}
    for key, value in items:
        parsed = parse_key(key)
        if parsed.kind == "month" and value.get("cost") and parsed.year and parsed.month:
            out[parsed.year] = max(out.get(parsed.year, 0), parsed.month)
    return out


def compute_forecasts(
    items: Items, domain: DomainConfig, requests: Sequence[ForecastRequest], model: str
) -> dict[ForecastRequest, OrganisationForecast]:
    """The organisation forecast for each (year, as-of month); runs in the pool."""
    out: dict[ForecastRequest, OrganisationForecast] = {}
    leaves_by_year: dict[int, list[LeafSeries]] = {}
    for request in requests:
        if request.year not in leaves_by_year:
            leaves_by_year[request.year] = leaf_series(items, request.year)[0]
        out[request] = forecast_organisation(
            leaves_by_year[request.year], domain, request.year, request.as_of_month, model
        )
    return out


def _figures(node: NodeForecast) -> tuple[float | None, ...]:
    """What a consumer of forecast.v1 would notice changing (rounded to whole kronor)."""
    budget = node.budget_full_year
    return (
        round(node.full_year),
        round(node.low),
        round(node.high),
        round(node.actual_ytd),
        round(budget) if budget is not None else None,
        node.as_of_month,
    )


def forecast_event(node: NodeForecast, preliminary: bool, now: datetime) -> ForecastEvent:
    period = f"{node.year:04d}-{node.as_of_month:02d}"
    return ForecastEvent(
        event_id=f"forecast|{node.org_unit}|{node.kind}|{node.category}|{period}|{now.isoformat()}",
        org_unit=node.org_unit,
        level=node.level,
        kind=node.kind,
        category=node.category,
        year=node.year,
        as_of=period,
        preliminary=preliminary,
        actual_ytd=node.actual_ytd,
        budget_full_year=node.budget_full_year,
        full_year=node.full_year,
        low=node.low,
        high=node.high,
        deviation=node.deviation,
        model=node.model,
        volume_effect=node.volume_effect,
        price_effect=node.price_effect,
        computed_at=now,
    )


@dataclass
class ForecastStatus:
    """What the last run saw; served on ``/forecasts/status`` for the demo and tests."""

    runs: int = 0
    state_version: int = -1
    latest: dict[int, OrganisationForecast] = field(default_factory=dict)
    preliminary: dict[int, bool] = field(default_factory=dict)
    alerts_restored: bool = False
    evaluated: list[str] = field(default_factory=list)  # periods the rules were evaluated at
    alerts_from: str = ""  # no rule runs on a close before this period (BUDGETVAKT_ALERTS_FROM)
    snapshots: list[str] = field(default_factory=list)


# (topic, key, value) → None once published, or an awaitable that is
Publish = Callable[[str, str, bytes], Awaitable[None] | None]


class LiveForecaster:
    """Debounced organisation forecasts, forecast/alert events and snapshots (see module doc)."""

    def __init__(
        self,
        domain: DomainConfig,
        model: str,
        rules: RuleSet | None,
        publish: Publish,
        forecast_topic: str,
        alert_topic: str,
        metrics: WorkerMetrics,
        snapshot_store: SnapshotStore | None = None,
        processes: int = 1,
        alerts_from: str = "",
        flush_alerts: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.domain = domain
        self.alerts_from = alerts_from
        self.flush_alerts = flush_alerts  # after a run's alerts, before the book records them
        self.model = model
        self.rules = rules
        self.publish = publish
        self.forecast_topic = forecast_topic
        self.alert_topic = alert_topic
        self.metrics = metrics
        self.snapshot_store = snapshot_store
        self.status = ForecastStatus(alerts_from=alerts_from)
        metrics.forecast_status = self.status
        self._published: dict[tuple[str, str, str, int], tuple[float | None, ...]] = {}
        self._closes_seen: dict[str, int] | None = None
        self._snapshots_due: set[str] = set()
        self._book: AlertBook | None = None
        self._failed_series: set[tuple[str, str, str, str]] = set()
        # spawn: the worker runs threads (Faust, RocksDB); a forked child could inherit a held lock.
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
            initargs=(os.getpid(),),
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def restore_alerts(self, events: Iterable[AlertEvent]) -> None:
        self._book = AlertBook.from_events(list(events))
        self.status.alerts_restored = True
        self.metrics.set_alerts_firing(self._book)

    async def run_once(self, state_version: int, items: Items) -> bool:
        """Forecast if the state changed since the last run; True if it ran.

        A run that raises (a broker or database hiccup) leaves the state version unrecorded, so
        the next tick runs again; alerts and forecasts count as sent only once published.
        """
        if state_version == self.status.state_version and not self._snapshots_due:
            return False
        started = time.perf_counter()
        months = latest_months(items)
        counts = close_counts(items)  # every closed period, with how often it was closed
        latest_close = max(counts, default=None)
        due = sorted(set(self._newly_closed(counts)) | self._snapshots_due)
        target = self._evaluation_target(months, latest_close)
        requests = {ForecastRequest(year, month) for year, month in months.items()}
        requests |= {ForecastRequest(int(p[:4]), int(p[5:])) for p in due}
        if target is not None:
            requests.add(target)
            # The month before, recomputed on today's state every time: a forecast kept from an
            # earlier run may have seen only part of that month's postings (a bulk load's closes
            # overtake its postings), and a rule comparing with it would report a bogus change.
            if target.as_of_month > 1:
                requests.add(ForecastRequest(target.year, target.as_of_month - 1))
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(
            self._pool,
            compute_forecasts,
            items,
            self.domain,
            sorted(requests, key=_order),
            self.model,
        )
        self._report_failed_series(results.values())
        now = datetime.now(UTC)
        latest: dict[int, OrganisationForecast] = {}
        preliminary: dict[int, bool] = {}
        for year, month in sorted(months.items()):
            latest[year] = results[ForecastRequest(year, month)]
            period = f"{year:04d}-{month:02d}"
            preliminary[year] = latest_close is not None and period > latest_close
            await self._publish_forecasts(latest[year], preliminary[year], now)
        if (
            target is not None
            and self._book is not None
            and self.rules is not None
            and f"{target.year:04d}-{target.as_of_month:02d}" >= self.alerts_from
        ):
            await self._evaluate(target, results, now, self.rules, self._book)
        self._closes_seen = counts
        self._snapshots_due = set()
        for period in due:
            await self._snapshot(period, results[ForecastRequest(*Period.parse(period))])
        # Replaced only now, so /forecasts/status and the gauges change together with the events.
        self.status.latest, self.status.preliminary = latest, preliminary
        self.status.runs += 1
        self.status.state_version = state_version
        self.metrics.observe_forecast(time.perf_counter() - started)
        return True

    def _report_failed_series(self, forecasts: Iterable[OrganisationForecast]) -> None:
        """Series the forecast left out (``forecasts.live``): a gauge per kind, and a log line
        when the set changes (not at every run)."""
        failed: set[tuple[str, str, str, str]] = {
            (f.org_unit, f.kind, f.name, f.reason) for fc in forecasts for f in fc.failed
        }
        self.metrics.set_forecast_series_failed(
            {kind: len({f[:3] for f in failed if f[1] == kind}) for kind in ("cost", "measure")}
        )
        if failed != self._failed_series:
            for org_unit, kind, name, reason in sorted(failed - self._failed_series):
                log.warning(
                    "forecast_series_failed", org_unit=org_unit, kind=kind, name=name, reason=reason
                )
            self._failed_series = failed

    def _evaluation_target(
        self, months: Mapping[int, int], latest_close: str | None
    ) -> ForecastRequest | None:
        """The month the deviation rules look at: the latest closed month (next month's postings
        may already be arriving), or without any close the latest month with postings."""
        if self._book is None or self.rules is None or not months:
            return None
        if latest_close is None:
            year = max(months)
            return ForecastRequest(year, months[year])
        year, month = int(latest_close[:4]), int(latest_close[5:])
        if year not in months:
            return None  # a close for a year without postings
        return ForecastRequest(year, min(month, months[year]))

    def _newly_closed(self, counts: Mapping[str, int]) -> list[str]:
        """Periods to snapshot: closed (again) since the last run. At the first run after a
        start, closed periods without any snapshot yet (closed just before a crash)."""
        if self._closes_seen is None:
            if self.snapshot_store is None:
                return []
            try:
                stored = self.snapshot_store.periods()
            except Exception as err:  # the database is down: try again at the next run
                self.metrics.snapshot_failures.inc()
                log.error("snapshot_store_unreadable", error_type=type(err).__name__)
                return []
            return sorted(p for p in counts if p not in stored)
        return sorted(p for p, n in counts.items() if n > self._closes_seen.get(p, 0))

    async def _publish_forecasts(
        self, current: OrganisationForecast, preliminary: bool, now: datetime
    ) -> None:
        for node in current.nodes:
            key = (node.org_unit, node.kind, node.category, node.year)
            figures = (*_figures(node), preliminary)
            if self._published.get(key) == figures:
                continue
            event = forecast_event(node, preliminary, now)
            await _maybe_await(
                self.publish(self.forecast_topic, node.org_unit, event.model_dump_json().encode())
            )
            self._published[key] = figures

    async def _evaluate(
        self,
        target: ForecastRequest,
        results: Mapping[ForecastRequest, OrganisationForecast],
        now: datetime,
        rules: RuleSet,
        book: AlertBook,
    ) -> None:
        from forecasts.deviations import evaluate, resolve_earlier_years

        year, month = target.year, target.as_of_month
        current = results[target]
        previous = results.get(ForecastRequest(year, month - 1))
        # Decided on a copy: an alert enters the book only once it is on the topic, so a failed
        # publish is decided (and sent) again at the next run.
        trial = copy.deepcopy(book)
        changes = resolve_earlier_years(rules, year, trial, self.domain, now)
        changes += evaluate(rules, current, previous, trial, self.domain, now)
        for alert in changes:
            await _maybe_await(
                self.publish(self.alert_topic, alert.org_unit, alert.model_dump_json().encode())
            )
        if changes and self.flush_alerts is not None:
            await self.flush_alerts()  # on the topic now (one flush per run on Kafka)
        for alert in changes:
            book.record(alert)
            log.info(
                "alert_" + alert.status,
                alert_id=alert.alert_id,
                severity=alert.severity,
                period=alert.period,
            )
        self.metrics.set_alerts_firing(book)
        period = f"{year:04d}-{month:02d}"
        if period not in self.status.evaluated:
            self.status.evaluated.append(period)

    async def _snapshot(self, period: str, forecast: OrganisationForecast) -> None:
        if self.snapshot_store is None:
            return
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(None, self.snapshot_store.write, forecast, period)
        except Exception as err:  # a database outage must not stop forecasting or ingest
            self.metrics.snapshot_failures.inc()
            self._snapshots_due.add(period)  # retried at the next run
            log.error(
                "snapshot_failed", period=period, error_type=type(err).__name__, error=str(err)
            )
            return
        self.status.snapshots.append(period)
        log.info("snapshot_written", period=period, snapshot=str(stored))


def _order(request: ForecastRequest) -> tuple[int, int]:
    return (request.year, request.as_of_month)


async def _maybe_await(result: Awaitable[None] | None) -> None:
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        await result


def status_json(status: ForecastStatus) -> dict[str, Any]:
    return {
        "runs": status.runs,
        "state_version": status.state_version,
        "alerts_restored": status.alerts_restored,
        "years": {
            str(year): {
                "as_of_month": fc.as_of_month,
                "preliminary": status.preliminary.get(year, False),
                "nodes": len(fc.nodes),
            }
            for year, fc in sorted(status.latest.items())
        },
        "evaluated": status.evaluated,
        "alerts_from": status.alerts_from,
        "snapshots": status.snapshots,
    }
