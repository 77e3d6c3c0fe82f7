"""Live forecasts in the worker, per owner (nämnd or ``omappad``): forecasts, alerts, snapshots.

The ingest agent only aggregates. This module's :class:`LiveForecaster` runs beside it: at most
once per ``forecast_interval_s`` (the debounce), and at once after a batch that closed a period,
when the aggregate state changed. It splits the state by owner (``OrgTree.owner_of``: the nämnd
on the cost centre's path, ``omappad`` for an unknown one) and runs each owner on its own:

* the owner's forecasts are computed with ``DomainConfig.for_owner`` (its own panel), in a
  process pool (the event loop never waits for a model), so a nämnd's figures are the same
  whichever worker owns it and whichever other nämnder that worker owns;
* only what changed is recomputed (``streams.owner_inputs``): an owner whose items did not
  change is not run at all, and a forecast the change cannot alter (for example the forecast
  as of the month a close closes, when no posting for that month came since) is reused;
* owners with a new close run first, and every owner publishes as soon as it is done; a pass
  over owners without a close gives way (between owners, or while waiting for the pool) when a
  close arrives, so a close waits for at most the forecast already running, not for the others;
* per owner: the ``budgetvakt_forecast_*`` gauges' figures, a ``forecast.v1`` event for every
  node and category whose figures (or preliminary flag) changed, the deviation rules
  (``forecasts.deviations``) at the owner's latest *closed* month with its own alert book, the
  alert state changes as ``alert.v1`` events, and a snapshot of the owner's forecast for every
  period the owner closed (through the store the worker passes in). ``omappad`` gets a snapshot
  only when it holds money (a close alone makes none).

The rules look at the latest *closed* month of the owner (months close in order; next month's
postings may already be arriving, and a month still being booked would alert on half its
costs); without any close they look at the latest month with postings. An alert counts as sent
only once it is on the topic, so a failed publish is decided and sent again at the next run.

Ownership changes (``docs/architecture.md``, "Live forecasts, alerts and snapshots"): before a
revocation completes, :meth:`LiveForecaster.revoke_partitions` fences the owners whose state
leaves (no publish or snapshot for them starts afterwards) and waits for the one in flight. An
owner this worker holds without an alert book (newly assigned, or first seen) gets one from the
alert topic, read to its end, before it is evaluated; a read that a revocation overtook is
thrown away. A newly held owner's first run snapshots its closed periods that have none yet.
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
from core.hierarchy import UNMAPPED_ID
from forecasts.deviations import AlertBook, RuleSet
from forecasts.live import LeafSeries, NodeForecast, OrganisationForecast, forecast_organisation
from streams.aggregation import StateValue, close_counts, leaf_series, parse_key
from streams.metrics import WorkerMetrics
from streams.owner_inputs import ForecastCache, ForecastRequest, OwnerIndex
from streams.snapshot_store import SnapshotStore

__all__ = ["ForecastRequest", "ForecastStatus", "LiveForecaster", "OwnerStatus", "status_json"]

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


#: Set in each forecast-pool process by :func:`init_pool`: the worker sets it when a close needs
#: the pool (or the CPU) while a warm-up runs there (:func:`warm_forecast` then gives way).
_warm_abort: Any = None


def init_pool(parent_pid: int, warm_abort: Any = None) -> None:
    """The forecast pool's initializer: :func:`die_with_parent`, and the warm-up's stop flag."""
    global _warm_abort
    _warm_abort = warm_abort
    die_with_parent(parent_pid)


def warm_forecast(items: Items, domain: DomainConfig, request: ForecastRequest, model: str) -> bool:
    """Fill this pool process's caches for ``request`` from the items as they stand (runs in
    the pool; ``forecasts.live.warm_organisation``). False when it gave way to a close."""
    from forecasts import crosslearn
    from forecasts.cache import Aborted, abortable
    from forecasts.live import warm_organisation

    flag = _warm_abort
    # One fitting thread: the warm-up is background work, the other core stays with the worker
    # (the models are the same whatever the thread count, ``forecasts.crosslearn.FIT_THREADS``).
    threads, crosslearn.FIT_THREADS = crosslearn.FIT_THREADS, 1
    try:
        with abortable(lambda: flag is not None and flag.is_set()):
            leaves = leaf_series(items, request.year)[0]
            warm_organisation(leaves, domain, request.year, request.as_of_month, model)
    except Aborted:
        return False
    finally:
        crosslearn.FIT_THREADS = threads
    return True


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


def has_money(items: Iterable[tuple[str, Mapping[str, Any]]]) -> bool:
    """Any cost posted (what makes an ``omappad`` snapshot worth writing)."""
    return any(parse_key(key).kind == "month" and value.get("cost") for key, value in items)


@dataclass
class OwnerStatus:
    """What the last run of one owner saw; part of ``/forecasts/status``."""

    runs: int = 0
    forecasts_computed: int = 0  # (year, as-of month) forecasts computed for this owner
    forecasts_reused: int = 0  # … taken from the cache instead
    latest: dict[int, OrganisationForecast] = field(default_factory=dict)
    preliminary: dict[int, bool] = field(default_factory=dict)
    latest_close: str | None = None
    evaluated: list[str] = field(default_factory=list)  # periods the rules were evaluated at
    snapshots: list[str] = field(default_factory=list)
    duration_s: float = 0.0  # the last run, from its turn to its last publish


@dataclass
class ForecastStatus:
    """What the last runs saw; served on ``/forecasts/status`` for the demo and tests.

    ``latest`` and ``preliminary`` merge the owners this worker holds (the gauges read them);
    ``owners`` has each owner's own."""

    runs: int = 0
    state_version: int = -1  # the state version every owner's run has seen
    latest: dict[int, OrganisationForecast] = field(default_factory=dict)
    preliminary: dict[int, bool] = field(default_factory=dict)
    alerts_restored: bool = False
    evaluated: list[str] = field(default_factory=list)  # periods the rules were evaluated at
    alerts_from: str = ""  # no rule runs on a close before this period (BUDGETVAKT_ALERTS_FROM)
    snapshots: list[str] = field(default_factory=list)
    owners: dict[str, OwnerStatus] = field(default_factory=dict)
    warmed: list[str] = field(default_factory=list)  # "owner period" warmed while idle
    warm_given_way: int = 0  # warm-ups stopped because a close came


# (topic, key, value) → None once published, or an awaitable that is
Publish = Callable[[str, str, bytes], Awaitable[None] | None]
# The alert topic read to its end (``streams.alert_state.read_alert_events``)
ReadAlerts = Callable[[], Awaitable[list[AlertEvent]]]


class OwnerRevoked(Exception):
    """The owner's partitions were revoked while its run was in flight: publish nothing more."""


class Interrupted(Exception):
    """A close arrived while a pass without a close was running: start a new pass."""


@dataclass
class Pending:
    """Forecasts submitted to the pool and not yet taken (kept when a pass gives way)."""

    requests: frozenset[ForecastRequest]
    future: concurrent.futures.Future[dict[ForecastRequest, OrganisationForecast]]


@dataclass
class Warming:
    """A warm-up in the pool: ``owner``'s caches for the forecast as of ``request``."""

    owner: str
    request: ForecastRequest
    future: concurrent.futures.Future[bool]
    started: float


@dataclass
class OwnerRun:
    """Everything the forecaster keeps for one owner it holds."""

    owner: str
    domain: DomainConfig
    status: OwnerStatus
    partitions: set[int] = field(default_factory=set)
    settled: bool = False  # the last run on the cache's inputs published everything
    closes_seen: dict[str, int] | None = None  # None: not run since it was assigned
    snapshots_due: set[str] = field(default_factory=set)  # failed writes, retried
    published: dict[tuple[str, str, str, int], tuple[Any, ...]] = field(default_factory=dict)
    failed_series: set[tuple[str, str, str, str]] = field(default_factory=set)
    pending: Pending | None = None
    revoked: bool = False


@dataclass
class Plan:
    """One owner's work in a pass."""

    run: OwnerRun
    items: Items
    months: dict[int, int]
    counts: dict[str, int]
    due: list[str]
    target: ForecastRequest | None
    requests: frozenset[ForecastRequest]
    missing: frozenset[ForecastRequest]
    new_close: bool
    closes_known: bool = True  # False: the snapshot store could not say what it has
    keep: frozenset[ForecastRequest] = frozenset()  # cached for the next run besides requests
    marks: dict[str, float] = field(default_factory=dict)  # phase → wall clock (a close's run)
    results: dict[ForecastRequest, OrganisationForecast] | None = None  # taken in the alert phase
    alerted: bool = False  # its alerts are out (a pass's closing owners alert before the rest)
    started: float = 0.0  # perf_counter at its turn


class LiveForecaster:
    """Debounced per-owner forecasts, forecast/alert events and snapshots (see module doc)."""

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
        read_alerts: ReadAlerts | None = None,
        revoke_timeout_s: float = 10.0,
        flush: Callable[[], Awaitable[object]] | None = None,
        flush_alerts: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.domain = domain
        self.alerts_from = alerts_from
        self.model = model
        self.rules = rules
        self.publish = publish
        self.forecast_topic = forecast_topic
        self.alert_topic = alert_topic
        self.metrics = metrics
        self.snapshot_store = snapshot_store
        self.read_alerts = read_alerts
        self.revoke_timeout_s = revoke_timeout_s
        self.flush = flush  # the producer's: a revocation ends with what was sent on the broker
        self.flush_alerts = flush_alerts  # after an owner's alerts, before the book records them
        self.status = ForecastStatus(alerts_from=alerts_from)
        metrics.forecast_status = self.status
        self._index = OwnerIndex(domain.org)
        self._runs: dict[str, OwnerRun] = {}
        self._caches: dict[str, ForecastCache] = {}  # kept across a revocation: pure results
        self._books: dict[str, AlertBook] = {}
        self._domains: dict[str, DomainConfig] = {}
        self._epoch = 0  # bumped by every revocation: an alert read it overtook is stale
        self._publishing = asyncio.Lock()  # one publish or snapshot write at a time
        # spawn: the worker runs threads (Faust, RocksDB); a forked child could inherit a held lock.
        context = multiprocessing.get_context("spawn")
        self._warm_abort = context.Event()  # read by a warm-up in the pool: give way
        self._warming: Warming | None = None
        self._warmed: set[tuple[str, ForecastRequest]] = set()
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=processes,
            mp_context=context,
            initializer=init_pool,
            initargs=(os.getpid(), self._warm_abort),
        )

    def close(self) -> None:
        self._warm_abort.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def owners(self) -> list[str]:
        """The owners this worker holds state of (and runs)."""
        return sorted(self._runs)

    def domain_of(self, owner: str) -> DomainConfig:
        if owner not in self._domains:
            self._domains[owner] = self.domain.for_owner(owner)
        return self._domains[owner]

    # --- alert books ------------------------------------------------------------------------

    def alert_book(self, owner: str) -> AlertBook | None:
        """The owner's alert book (None: not held, or not read from the topic yet)."""
        return self._books.get(owner)

    def restore_alerts(
        self, events: Iterable[AlertEvent], owners: Iterable[str] | None = None
    ) -> None:
        """The alert books of ``owners`` (default: every owner of the organisation and every
        owner the events name) from the alert topic's events."""
        events = list(events)
        by_owner: dict[str, list[AlertEvent]] = {}
        for event in events:
            by_owner.setdefault(self.domain.org.owner_of(event.org_unit), []).append(event)
        wanted = set(owners) if owners is not None else {*self.domain.org.owners, *by_owner}
        for owner in wanted:
            self._books[owner] = AlertBook.from_events(by_owner.get(owner, []))
        self.status.alerts_restored = True
        self.metrics.set_alerts_firing(*self._books.values())

    async def _ensure_books(self, owners: Iterable[str]) -> None:
        """Read the alert topic for the owners held without a book, before evaluating them."""
        missing = {o for o in owners if o not in self._books}
        if not missing or self.rules is None or self.read_alerts is None:
            return
        epoch = self._epoch
        events = await self.read_alerts()
        if epoch != self._epoch:
            return  # a revocation overtook the read: read again at the next pass
        self.restore_alerts(events, missing)
        log.info("alert_state_restored", owners=sorted(missing), events=len(events))

    # --- ownership changes ------------------------------------------------------------------

    async def revoke_partitions(self, partitions: Iterable[int]) -> set[str]:
        """Stop every owner with state in ``partitions`` before their revocation completes."""
        gone = set(partitions)
        owners = {o for o, run in self._runs.items() if run.partitions & gone}
        await self.revoke(owners)
        return owners

    async def revoke(self, owners: Iterable[str]) -> None:
        """No publish or snapshot of ``owners`` starts after this; the one in flight ends first.

        Books are dropped too (another worker may alert on the owner before it comes back), and
        so is every book of an owner not run yet (it was read for the same assignment)."""
        self._epoch += 1
        owners = set(owners)
        for owner in owners:
            run = self._runs.pop(owner, None)
            if run is not None:
                run.revoked = True
            self._books.pop(owner, None)
            self.status.owners.pop(owner, None)
        for owner in [o for o in self._books if o not in self._runs]:
            del self._books[owner]
        self._index.forget()
        self._refresh_status()
        self.metrics.set_owned_namnder(self.owners)
        self.metrics.set_alerts_firing(*self._books.values())
        try:
            await asyncio.wait_for(self._publishing.acquire(), self.revoke_timeout_s)
        except TimeoutError:
            log.error("forecast_publish_outlived_revocation", owners=sorted(owners))
            return
        try:
            if self.flush is not None:
                await self.flush()
        finally:
            self._publishing.release()
        if owners:
            log.info("forecast_owners_revoked", owners=sorted(owners))

    def _forget(self, owner: str) -> None:
        """An owner whose items left the state without a revocation (a test, a rebuild)."""
        run = self._runs.pop(owner, None)
        if run is not None:
            run.revoked = True
        self._books.pop(owner, None)
        self.status.owners.pop(owner, None)

    # --- warming the caches while idle -------------------------------------------------------

    def give_way(self) -> None:
        """Ask a warm-up running in the pool to stop (it stops within a boosting round)."""
        if self._warming is not None and not self._warming.future.done():
            self._warm_abort.set()

    def _collect_warming(self) -> bool:
        """Take a finished warm-up's result; False while one still runs."""
        warming = self._warming
        if warming is None:
            return True
        if not warming.future.done():
            return False
        self._warming = None
        self._warm_abort.clear()  # nothing runs in the pool that could still read it
        period = f"{warming.owner} {warming.request.period}"
        try:
            completed = warming.future.result()
        except Exception as err:  # a warm-up is an optimisation: the real run will tell
            log.warning("forecast_warm_failed", owner=warming.owner, error_type=type(err).__name__)
            self._warmed.add((warming.owner, warming.request))
            return True
        if completed:
            self._warmed.add((warming.owner, warming.request))
            self.status.warmed.append(period)
            log.info(
                "forecast_caches_warmed",
                owner=warming.owner,
                period=warming.request.period,
                seconds=round(time.monotonic() - warming.started, 3),
            )
        else:
            self.status.warm_given_way += 1
            log.info("forecast_warm_gave_way", owner=warming.owner, period=warming.request.period)
        return True

    def _next_to_warm(self) -> tuple[str, ForecastRequest] | None:
        """An owner whose next close's month has no posting and no forecast yet: what that
        forecast learns from history can be learnt now (``forecasts.live.warm_organisation``)."""
        for owner in sorted(self._runs):
            run, cache = self._runs[owner], self._caches.get(owner)
            latest = run.status.latest_close
            if cache is None or latest is None or not run.settled or run.pending is not None:
                continue
            year, month = int(latest[:4]), int(latest[5:7])
            request = ForecastRequest(year + month // 12, month % 12 + 1)
            if (owner, request) in self._warmed:
                continue
            booked = latest_months(cache.inputs.items()).get(request.year, 0)
            if request in cache.forecasts or booked >= request.as_of_month:
                # Its postings came: the forecast itself is (being) computed. Not looked at
                # again (reading every key of a large nämnd at every idle tick would cost).
                self._warmed.add((owner, request))
                continue
            return owner, request
        return None

    def warm_while_idle(self, state_version: int) -> bool:
        """When every owner has published the state ``state_version``, start warming one
        owner's caches for its next close in the pool (one at a time); True if one started.

        A close gives way to nothing: the pass that has one stops a running warm-up
        (:meth:`give_way`), and warming starts again only once the worker is idle again.
        Everything warmed is held in the pool's bounded caches (``forecasts.cache``)."""
        if not self._collect_warming():
            return False
        if state_version != self.status.state_version or any(
            not r.settled or r.snapshots_due or r.pending is not None for r in self._runs.values()
        ):
            return False
        chosen = self._next_to_warm()
        if chosen is None:
            return False
        owner, request = chosen
        items = list(self._caches[owner].inputs.items())
        domain = self._runs[owner].domain
        future = self._pool.submit(warm_forecast, items, domain, request, self.model)
        self._warming = Warming(owner, request, future, time.monotonic())
        return True

    # --- a pass -----------------------------------------------------------------------------

    async def run_once(
        self, state_version: int, items: Items, interrupt: asyncio.Event | None = None
    ) -> bool:
        """Run every owner whose items changed since its last run; True if any ran.

        An owner whose run raises (a broker or database hiccup) is run again at the next pass;
        alerts and forecasts count as sent only once published. The first error is raised once
        every other owner had its turn. ``interrupt`` (set by a close) makes a pass without a
        close give way: the owners not yet run stay due.
        """
        unsettled = any(not r.settled or r.snapshots_due for r in self._runs.values())
        if state_version == self.status.state_version and not unsettled:
            return False
        epoch = self._epoch
        pass_started = time.time()
        groups, partitions = self._index.group(items)
        for owner in [o for o in self._runs if o not in groups]:
            self._forget(owner)
        for owner in [o for o in self._caches if o not in groups]:
            del self._caches[owner]
        await self._ensure_books(groups)
        plans = []
        for owner, owner_items in groups.items():
            run = self._runs.get(owner)
            if run is None:
                run = self._runs[owner] = OwnerRun(owner, self.domain_of(owner), OwnerStatus())
                self.status.owners[owner] = run.status
            run.partitions = partitions[owner]
            cache = self._caches.setdefault(owner, ForecastCache())
            stale = cache.update(owner_items)
            if stale.changed:
                run.settled = False
                if run.pending is not None and any(stale.covers(r) for r in run.pending.requests):
                    run.pending = None
            if not run.settled or run.snapshots_due:
                plans.append(await self._plan(run, cache))
        if epoch != self._epoch:
            return False  # a revocation came while planning: these items are not all ours
        self.metrics.set_owned_namnder(self.owners)
        for plan in plans:
            plan.marks["pass"], plan.marks["planned"] = pass_started, time.time()
        if any(plan.new_close for plan in plans):
            self.give_way()  # a close's forecasts and alerts go before any warm-up
        # Owners with a new close first (their alerts wait), then the others.
        plans.sort(key=lambda p: (not p.new_close, p.run.owner))
        errors: list[Exception] = []
        complete = True
        # Every owner with a new close gets its alerts out first; the forecast events and the
        # snapshot of each (thousands of events and rows: seconds for a large nämnd) follow in
        # the loop below, so one nämnd's close does not wait for another's snapshot.
        failed: set[str] = set()
        closing = [plan for plan in plans if plan.new_close]
        for position, plan in enumerate(closing):
            if plan.run.revoked:
                continue
            self._start(plan)
            if position + 1 < len(plans):
                self._start(plans[position + 1])  # computed while this one publishes
            plan.started, plan.marks["turn"] = time.perf_counter(), time.time()
            try:
                plan.results = await self._results(plan, None)
                plan.marks["results"] = time.time()
                await self._publish_alerts(plan, plan.results)
            except OwnerRevoked:
                continue
            except Exception as err:  # this owner again at the next pass; the others go on
                failed.add(plan.run.owner)
                errors.append(err)
                log.error(
                    "forecast_owner_failed",
                    owner=plan.run.owner,
                    error_type=type(err).__name__,
                    error=str(err),
                )
        for position, plan in enumerate(plans):
            if plan.run.revoked or plan.run.owner in failed:
                continue
            self._start(plan)
            if position + 1 < len(plans):
                self._start(plans[position + 1])  # computed while this one publishes
            if plan.results is None:
                plan.started, plan.marks["turn"] = time.perf_counter(), time.time()
            started = plan.started
            try:
                results = plan.results
                if results is None:
                    gives_way = interrupt if not plan.new_close else None
                    results = await self._results(plan, gives_way)
                    plan.marks["results"] = time.time()
                await self._publish_owner(plan, results)
            except Interrupted:
                complete = False
                break
            except OwnerRevoked:
                continue
            except Exception as err:  # this owner again at the next pass; the others go on
                errors.append(err)
                log.error(
                    "forecast_owner_failed",
                    owner=plan.run.owner,
                    error_type=type(err).__name__,
                    error=str(err),
                )
                continue
            plan.run.status.duration_s = time.perf_counter() - started
            self.metrics.observe_forecast(plan.run.status.duration_s)
            if plan.new_close:
                # Where a close's time goes in the worker (bench/kommun_size.py reads this).
                log.info(
                    "forecast_close_run",
                    owner=plan.run.owner,
                    computed=len(plan.missing),
                    **{f"at_{k}": round(v, 4) for k, v in plan.marks.items()},
                )
            next_plan = plans[position + 1] if position + 1 < len(plans) else None
            if (
                interrupt is not None
                and interrupt.is_set()
                and next_plan is not None
                and not next_plan.new_close
            ):
                complete = False
                break
        if plans and complete:
            self.status.runs += 1
        if complete and not errors:
            self.status.state_version = state_version
        if errors:
            raise errors[0]
        return bool(plans) and complete

    async def _plan(self, run: OwnerRun, cache: ForecastCache) -> Plan:
        items = list(cache.inputs.items())
        months = latest_months(items)
        counts = close_counts(items)  # every closed period, with how often it was closed
        latest_close = max(counts, default=None)
        new_close = counts != (run.closes_seen or {})  # at a first run: any close
        closed = await self._newly_closed(run, counts, items)
        due = sorted(set(closed or []) | run.snapshots_due)
        target = self._evaluation_target(run.owner, months, latest_close)
        requests = {ForecastRequest(year, month) for year, month in months.items()}
        requests |= {ForecastRequest.of(p) for p in due}
        if target is not None:
            requests.add(target)
            if target.as_of_month > 1:  # what the vikarie and deterioration rules compare with
                requests.add(ForecastRequest(target.year, target.as_of_month - 1))
        missing = frozenset(r for r in requests if r not in cache.forecasts)
        run.status.latest_close = latest_close
        # The next close's target (the month after the latest close): computed for the gauges
        # while it was the latest month, it is kept until next month's postings arrive.
        keep: frozenset[ForecastRequest] = frozenset()
        if latest_close is not None:
            year, month = int(latest_close[:4]), int(latest_close[5:7])
            keep = frozenset({ForecastRequest(year + month // 12, month % 12 + 1)})
        return Plan(
            run,
            items,
            months,
            counts,
            due,
            target,
            frozenset(requests),
            missing,
            new_close,
            closes_known=closed is not None,
            keep=keep,
        )

    def _start(self, plan: Plan) -> None:
        """Submit the plan's missing forecasts to the pool (or keep what is already there)."""
        run = plan.run
        if plan.results is not None:
            return  # taken already (in the pass's alert phase)
        if not plan.missing or (run.pending is not None and plan.missing <= run.pending.requests):
            return
        warming = self._warming
        if warming is not None and not (
            warming.owner == run.owner and warming.request in plan.missing
        ):
            self.give_way()  # a forecast someone waits for goes before a warm-up for another
        future = self._pool.submit(
            compute_forecasts, plan.items, run.domain, sorted(plan.missing), self.model
        )
        run.pending = Pending(plan.missing, future)

    async def _results(
        self, plan: Plan, interrupt: asyncio.Event | None
    ) -> dict[ForecastRequest, OrganisationForecast]:
        run = plan.run
        cache = self._caches[run.owner]
        reused = len(plan.requests) - len(plan.missing)
        if plan.missing:
            assert run.pending is not None
            future = asyncio.wrap_future(run.pending.future)
            if interrupt is not None and not future.done():
                waiter: asyncio.Future[Any] = asyncio.ensure_future(interrupt.wait())
                either: set[asyncio.Future[Any]] = {future, waiter}
                try:
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                if not future.done():
                    raise Interrupted
            try:
                computed = await future
            finally:
                run.pending = None
            cache.forecasts.update({r: computed[r] for r in plan.missing})
            run.status.forecasts_computed += len(plan.missing)
        run.status.forecasts_reused += reused
        # Keep what the next run is likely to need: what this one needed, and the next target.
        wanted = plan.requests | plan.keep
        cache.forecasts = {r: f for r, f in cache.forecasts.items() if r in wanted}
        return {r: cache.forecasts[r] for r in plan.requests}

    async def _publish_owner(
        self, plan: Plan, results: Mapping[ForecastRequest, OrganisationForecast]
    ) -> None:
        run = plan.run
        self._report_failed_series(run, results.values())
        # Alerts first: a close changes every node's preliminary flag, and thousands of forecast
        # events would otherwise stand between the close and its alerts.
        if not plan.alerted:
            await self._publish_alerts(plan, results)
        now = datetime.now(UTC)
        latest_close = run.status.latest_close
        latest: dict[int, OrganisationForecast] = {}
        preliminary: dict[int, bool] = {}
        for year, month in sorted(plan.months.items()):
            latest[year] = results[ForecastRequest(year, month)]
            period = f"{year:04d}-{month:02d}"
            preliminary[year] = latest_close is not None and period > latest_close
            await self._publish_forecasts(run, latest[year], preliminary[year], now)
        plan.marks["forecasts"] = time.time()
        if plan.closes_known:
            run.closes_seen = plan.counts
        run.snapshots_due = set()
        for period in plan.due:
            await self._snapshot(run, period, results[ForecastRequest.of(period)])
        plan.marks["snapshots"] = time.time()
        # Replaced only now, so /forecasts/status and the gauges change together with the events.
        run.status.latest, run.status.preliminary = latest, preliminary
        run.status.runs += 1
        # Without its alert book (read at the next pass) the owner was not evaluated: not done.
        run.settled = plan.closes_known and (self.rules is None or run.owner in self._books)
        self._refresh_status()

    async def _publish_alerts(
        self, plan: Plan, results: Mapping[ForecastRequest, OrganisationForecast]
    ) -> None:
        """The deviation rules at the plan's target, and the alert changes published."""
        run = plan.run
        book = self._books.get(run.owner)
        target = plan.target
        if (
            target is not None
            and book is not None
            and self.rules is not None
            and target.period >= self.alerts_from
        ):
            await self._evaluate(run, target, results, datetime.now(UTC), self.rules, book)
        plan.alerted = True
        plan.marks["alerts"] = time.time()

    def _refresh_status(self) -> None:
        """The merged view of the owners held (the gauges and the status's top level)."""
        statuses = [self.status.owners[o] for o in sorted(self.status.owners)]
        merged: dict[int, OrganisationForecast] = {}
        for year in sorted({y for s in statuses for y in s.latest}):
            parts = [s.latest[year] for s in statuses if year in s.latest]
            merged[year] = OrganisationForecast(
                year,
                max(p.as_of_month for p in parts),
                [node for p in parts for node in p.nodes],
                [failed for p in parts for failed in p.failed],
            )
        closes = [s.latest_close for s in statuses if s.latest_close]
        latest_close = max(closes, default=None)
        self.status.latest = merged
        self.status.preliminary = {
            year: latest_close is not None and f"{year:04d}-{fc.as_of_month:02d}" > latest_close
            for year, fc in merged.items()
        }

    def _report_failed_series(
        self, run: OwnerRun, forecasts: Iterable[OrganisationForecast]
    ) -> None:
        """Series the forecast left out (``forecasts.live``): a gauge per kind over the owners
        held, and a log line when an owner's set changes (not at every run)."""
        failed: set[tuple[str, str, str, str]] = {
            (f.org_unit, f.kind, f.name, f.reason) for fc in forecasts for f in fc.failed
        }
        if failed != run.failed_series:
            for org_unit, kind, name, reason in sorted(failed - run.failed_series):
                log.warning(
                    "forecast_series_failed",
                    owner=run.owner,
                    org_unit=org_unit,
                    kind=kind,
                    name=name,
                    reason=reason,
                )
            run.failed_series = failed
        every = {f for r in self._runs.values() for f in r.failed_series}
        self.metrics.set_forecast_series_failed(
            {kind: len({f[:3] for f in every if f[1] == kind}) for kind in ("cost", "measure")}
        )

    def _evaluation_target(
        self, owner: str, months: Mapping[int, int], latest_close: str | None
    ) -> ForecastRequest | None:
        """The month the deviation rules look at: the owner's latest closed month (next month's
        postings may already be arriving), or without any close the latest month with
        postings."""
        if owner not in self._books or self.rules is None or not months:
            return None
        if latest_close is None:
            year = max(months)
            return ForecastRequest(year, months[year])
        year, month = int(latest_close[:4]), int(latest_close[5:])
        if year not in months:
            return None  # a close for a year without postings
        return ForecastRequest(year, min(month, months[year]))

    async def _newly_closed(
        self, run: OwnerRun, counts: Mapping[str, int], items: Items
    ) -> list[str] | None:
        """Periods to snapshot: closed (again) since the owner's last run. At its first run on
        this worker (a start, an assignment), its closed periods without any snapshot yet.
        ``omappad`` only when it holds money. None when the store cannot say (tried again)."""
        if run.owner == UNMAPPED_ID and not has_money(items):
            return []
        if run.closes_seen is None:
            if self.snapshot_store is None or not counts:
                return []
            loop = asyncio.get_running_loop()
            try:
                stored = await loop.run_in_executor(None, self.snapshot_store.periods, run.owner)
            except Exception as err:  # the database is down: try again at the next run
                self.metrics.snapshot_failures.inc()
                log.error(
                    "snapshot_store_unreadable", owner=run.owner, error_type=type(err).__name__
                )
                return None
            return sorted(p for p in counts if p not in stored)
        seen = run.closes_seen
        return sorted(p for p, n in counts.items() if n > seen.get(p, 0))

    async def _send(self, run: OwnerRun, topic: str, key: str, value: bytes) -> None:
        """One publish, unless the owner was revoked (a revocation waits for the one in flight)."""
        async with self._publishing:
            if run.revoked:
                raise OwnerRevoked(run.owner)
            await _maybe_await(self.publish(topic, key, value))

    async def _publish_forecasts(
        self, run: OwnerRun, current: OrganisationForecast, preliminary: bool, now: datetime
    ) -> None:
        for node in current.nodes:
            key = (node.org_unit, node.kind, node.category, node.year)
            figures = (*_figures(node), preliminary)
            if run.published.get(key) == figures:
                continue
            event = forecast_event(node, preliminary, now)
            await self._send(
                run, self.forecast_topic, node.org_unit, event.model_dump_json().encode()
            )
            run.published[key] = figures

    async def _evaluate(
        self,
        run: OwnerRun,
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
        changes = resolve_earlier_years(rules, year, trial, run.domain, now)
        changes += evaluate(rules, current, previous, trial, run.domain, now)
        for alert in changes:
            await self._send(
                run, self.alert_topic, alert.org_unit, alert.model_dump_json().encode()
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
                owner=run.owner,
            )
        self.metrics.set_alerts_firing(*self._books.values())
        period = target.period
        if period not in run.status.evaluated:
            run.status.evaluated.append(period)
        if period not in self.status.evaluated:
            self.status.evaluated.append(period)

    async def _snapshot(self, run: OwnerRun, period: str, forecast: OrganisationForecast) -> None:
        if self.snapshot_store is None:
            return
        store = self.snapshot_store
        loop = asyncio.get_running_loop()
        try:
            async with self._publishing:
                if run.revoked:
                    raise OwnerRevoked(run.owner)
                stored = await loop.run_in_executor(None, store.write, forecast, period)
        except OwnerRevoked:
            raise
        except Exception as err:  # a database outage must not stop forecasting or ingest
            self.metrics.snapshot_failures.inc()
            run.snapshots_due.add(period)  # retried at the next run
            log.error(
                "snapshot_failed",
                owner=run.owner,
                period=period,
                error_type=type(err).__name__,
                error=str(err),
            )
            return
        run.status.snapshots.append(period)
        self.status.snapshots.append(period)
        log.info("snapshot_written", owner=run.owner, period=period, snapshot=_described(stored))


def _described(stored: object) -> str:
    """What a log line says of a stored snapshot: its id and version, not its content (the
    store may return the whole forecast: megabytes of text to format, scan and write)."""
    if all(hasattr(stored, name) for name in ("id", "version")):
        return " ".join(f"{name}={getattr(stored, name)}" for name in ("id", "version"))
    text = str(stored)
    return text if len(text) <= 200 else text[:200] + "…"


async def _maybe_await(result: Awaitable[None] | None) -> None:
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        await result


def _years_json(
    latest: Mapping[int, OrganisationForecast], preliminary: Mapping[int, bool]
) -> dict[str, Any]:
    return {
        str(year): {
            "as_of_month": fc.as_of_month,
            "preliminary": preliminary.get(year, False),
            "nodes": len(fc.nodes),
        }
        for year, fc in sorted(latest.items())
    }


def status_json(status: ForecastStatus) -> dict[str, Any]:
    """The top level merges the owners held (as before nämnder were owned); ``owners`` has
    each one's own runs, as-of months, evaluated periods and snapshots."""
    return {
        "runs": status.runs,
        "state_version": status.state_version,
        "alerts_restored": status.alerts_restored,
        "years": _years_json(status.latest, status.preliminary),
        "evaluated": status.evaluated,
        "alerts_from": status.alerts_from,
        "snapshots": status.snapshots,
        "owned": sorted(status.owners),
        "warmed": status.warmed,
        "warm_given_way": status.warm_given_way,
        "owners": {
            owner: {
                "runs": s.runs,
                "forecasts_computed": s.forecasts_computed,
                "forecasts_reused": s.forecasts_reused,
                "latest_close": s.latest_close,
                "years": _years_json(s.latest, s.preliminary),
                "evaluated": s.evaluated,
                "snapshots": s.snapshots,
                "duration_s": round(s.duration_s, 4),
            }
            for owner, s in sorted(status.owners.items())
        },
    }
