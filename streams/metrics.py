"""Prometheus metrics of the stream worker, on a registry of its own.

Counters (events, dead letters, unmapped events) count what this process handled since it
started. The money and volume gauges are NOT kept incrementally: a collector computes them at
scrape time from the table state of the partitions this worker currently owns, so after a restart
or rebalance they come from the recovered tables. With several workers each one exports its own
partitions' share; the total is ``sum()`` over the workers in PromQL.

No label takes a value a producer chose freely: an ``org_unit`` label is always a node of
``config/org.yaml`` or ``omappad`` (a cost centre that is not in the tree is rolled up there and
never exported under its own id); categories and measures are those of the domain config, topics
those of the settings. docs/metrics.md lists every metric's label set and its bound. The
registry withholds any sample whose label value holds an identity number
(``streams.pii_egress``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.hierarchy import UNMAPPED_ID, OrgTree
from streams.aggregation import ActiveState, Snapshot
from streams.pii_egress import EGRESS, GuardedRegistry, PiiEgress

if TYPE_CHECKING:
    from forecasts.deviations import AlertBook
    from streams.forecasting import ForecastStatus

CONTENT_TYPE = "text/plain; version=0.0.4"


class StateCollector(Collector):
    """Gauges computed from :class:`ActiveState`; recomputed only when the state changed."""

    def __init__(
        self, state: ActiveState, org: OrgTree, measures: Collection[str] | None = None
    ) -> None:
        self.state = state
        self.org = org
        # The contract checks a measure's form, not that config knows it: only these are labels.
        self.measures = measures
        self._cached: tuple[int, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        version = self.state.version
        if self._cached is None or self._cached[0] != version:
            self._cached = (version, self._families(self.state.snapshot(self.org)))
        yield from self._cached[1]

    def describe(self) -> Iterator[Metric]:
        # Without describe() the registry would call collect() at registration time.
        return iter(self._families(Snapshot()))

    def _known_measure(self, measure: str) -> bool:
        return self.measures is None or measure in self.measures

    def _families(self, snap: Snapshot) -> list[Metric]:
        level = self.org.level_of
        # Known nodes and omappad only: an unknown cost centre's own row is not exported (its
        # money is in omappad's and every ancestor's).
        exported = self.org.nodes
        actual = GaugeMetricFamily(
            "budgetvakt_actual_ytd_sek",
            "Actual cost year to date (sum of the months of the year received so far), SEK",
            labels=["org_unit", "category", "year", "level"],
        )
        for (node, category, year), value in sorted(snap.actual_ytd.items()):
            if node not in exported:
                continue
            actual.add_metric([node, category, str(year), level(node)], value)
        budget = GaugeMetricFamily(
            "budgetvakt_budget_full_year_sek",
            "Full-year budget (latest version received), SEK",
            labels=["org_unit", "category", "year", "level"],
        )
        for (node, category, year), value in sorted(snap.budget_full_year.items()):
            if node not in exported:
                continue
            budget.add_metric([node, category, str(year), level(node)], value)
        volume = GaugeMetricFamily(
            "budgetvakt_volume_ytd",
            "Volume year to date (sum of the months of the year received so far)",
            labels=["org_unit", "measure", "year", "level"],
        )
        for (node, measure, year), value in sorted(snap.volume_ytd.items()):
            if node not in exported or not self._known_measure(measure):
                continue
            volume.add_metric([node, measure, str(year), level(node)], value)
        volume_budget = GaugeMetricFamily(
            "budgetvakt_volume_budget_full_year",
            "Full-year volume budget (latest version received)",
            labels=["org_unit", "measure", "year", "level"],
        )
        for (node, measure, year), value in sorted(snap.volume_budget_full_year.items()):
            if node not in exported or not self._known_measure(measure):
                continue
            volume_budget.add_metric([node, measure, str(year), level(node)], value)
        last_month = GaugeMetricFamily(
            "budgetvakt_actual_last_month",
            "Latest month (1-12) of the year with cost postings received",
            labels=["org_unit", "year", "level"],
        )
        for (node, year), month in sorted(snap.last_month.items()):
            if node not in exported:
                continue
            last_month.add_metric([node, str(year), level(node)], month)
        last_closed = GaugeMetricFamily(
            "budgetvakt_last_closed_period",
            "Latest period closed in the ledger for the cost centre, as YYYYMM "
            "(omappad: the latest of the cost centres not in the org hierarchy)",
            labels=["org_unit"],
        )
        closed_by_label: dict[str, int] = {}
        for unit, period in snap.last_closed.items():
            label = unit if unit in exported else UNMAPPED_ID
            closed_by_label[label] = max(closed_by_label.get(label, 0), period)
        for unit, period in sorted(closed_by_label.items()):
            last_closed.add_metric([unit], period)
        unmapped = GaugeMetricFamily(
            "budgetvakt_unmapped_org_units",
            "Distinct cost centres with events that are not in the org hierarchy (rolled up "
            "under 'omappad'; the ids: `budgetvakt unmapped`)",
        )
        unmapped.add_metric([], len(snap.unmapped_units))
        return [actual, budget, volume, volume_budget, last_month, last_closed, unmapped]


_FORECAST_GAUGES = (
    ("budgetvakt_forecast_full_year_sek", "Full-year forecast, SEK", "full_year"),
    ("budgetvakt_forecast_low_sek", "Lower bound of the full-year forecast's 80 % interval", "low"),
    (
        "budgetvakt_forecast_high_sek",
        "Upper bound of the full-year forecast's 80 % interval",
        "high",
    ),
)


class ForecastCollector(Collector):
    """The live forecasts (``streams.forecasting``) as gauges, from the last run's result.

    Labels: org_unit (enheter and every roll-up), category (a cost category or ``total``), year,
    level. With the demo organisation: 15 nodes (16 with ``omappad``) × 14 categories (13 and
    ``total``) × the years with data.
    """

    def __init__(
        self,
        status_source: Callable[[], ForecastStatus | None],
        org: OrgTree | None = None,
        measures: Collection[str] | None = None,
    ) -> None:
        self.status_source = status_source
        self.org = org
        self.measures = measures

    def describe(self) -> Iterator[Metric]:
        return iter(self._families(None))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.status_source())

    def _families(self, status: ForecastStatus | None) -> list[Metric]:
        labels = ["org_unit", "category", "year", "level"]
        gauges = [GaugeMetricFamily(name, doc, labels=labels) for name, doc, _ in _FORECAST_GAUGES]
        deviation = GaugeMetricFamily(
            "budgetvakt_forecast_deviation_sek",
            "Budget − full-year forecast, SEK (negative = forecast deficit, underskott)",
            labels=labels,
        )
        volume = GaugeMetricFamily(
            "budgetvakt_volume_forecast_full_year",
            "Full-year forecast of a volume measure",
            labels=["org_unit", "measure", "year", "level"],
        )
        as_of = GaugeMetricFamily(
            "budgetvakt_forecast_as_of_month",
            "Latest month (1-12) with actuals in the live forecast of the year",
            labels=["year"],
        )
        for year, forecast in sorted(status.latest.items()) if status is not None else ():
            as_of.add_metric([str(year)], forecast.as_of_month)
            for node in forecast.nodes:
                if self.org is not None and node.org_unit not in self.org.nodes:
                    continue  # an unknown cost centre: its forecast is in omappad's
                values = [node.org_unit, node.category, str(year), node.level]
                if node.kind == "measure":
                    if self.measures is None or node.category in self.measures:
                        volume.add_metric(values, node.full_year)
                    continue
                for gauge, (_, _, attribute) in zip(gauges, _FORECAST_GAUGES, strict=True):
                    gauge.add_metric(values, getattr(node, attribute))
                if node.deviation is not None:
                    deviation.add_metric(values, node.deviation)
        return [*gauges, deviation, volume, as_of]


class WorkerMetrics:
    def __init__(
        self,
        state: ActiveState,
        org: OrgTree,
        egress: PiiEgress = EGRESS,
        measures: Collection[str] | None = None,
    ) -> None:
        """``measures``: the measure names of the domain config, the only ``measure`` labels
        (None: every measure in the state, for tests of other things)."""
        disable_created_metrics()  # the *_created series only add noise here
        self.org = org
        self.registry: CollectorRegistry = GuardedRegistry(egress, auto_describe=True)
        egress.register(self.registry)
        self.events = Counter(
            "budgetvakt_events",
            "Events handled by this worker process",
            ["topic", "outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "budgetvakt_dead_letter",
            "Events sent to the dead-letter topic, by kind of reason",
            ["reason_kind"],
            registry=self.registry,
        )
        # No org_unit label: the ids are the producer's choice (unbounded, and a place a
        # leaked identity number would be published); they are counted under omappad.
        self.unmapped_events = Counter(
            "budgetvakt_unmapped_events",
            "Accepted events for cost centres that are not in the org hierarchy (omappad)",
            registry=self.registry,
        )
        self.batches = Counter(
            "budgetvakt_batches",
            "Batches processed by this worker process",
            registry=self.registry,
        )
        self.forwarded = Counter(
            "budgetvakt_events_forwarded",
            "Valid events that arrived on another partition than their org_unit's and were "
            "forwarded there (a producer without the org_unit key or with another partitioner)",
            ["topic"],
            registry=self.registry,
        )
        self.batch_failures = Counter(
            "budgetvakt_batch_failures",
            "Batches that failed for broker or store reasons and were retried",
            registry=self.registry,
        )
        self.table_writes = Counter(
            "budgetvakt_table_writes",
            "Writes to the aggregate table (one per state key per batch)",
            registry=self.registry,
        )
        self.forecast_runs = Counter(
            "budgetvakt_forecast_runs",
            "Forecast runs of one owner (nämnd or omappad) whose state changed",
            registry=self.registry,
        )
        self.forecast_duration = Histogram(
            "budgetvakt_forecast_duration_seconds",
            "Time of one owner's forecast run, from its turn to its last published event",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.forecast_failures = Counter(
            "budgetvakt_forecast_failures",
            "Forecast runs that failed (retried at the next interval)",
            registry=self.registry,
        )
        self.alerts_firing = Gauge(
            "budgetvakt_alerts_firing",
            "Deviation alerts currently firing",
            ["rule", "severity", "org_unit"],
            registry=self.registry,
        )
        self.late_events = Counter(
            "budgetvakt_late_events",
            "Accepted events for a period that was already closed (they show in the next snapshot)",
            registry=self.registry,
        )
        self.snapshot_failures = Counter(
            "budgetvakt_snapshot_failures",
            "Snapshots that could not be written to the database",
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "budgetvakt_consumer_lag",
            "Input messages not yet processed (end offset − next offset to process)",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.table_store_rebuilds = Counter(
            "budgetvakt_table_store_rebuilds",
            "Partitions of the local table store discarded at start or recovery and recovered "
            "from the changelog because they could not be trusted (streams/local_store.py)",
            ["reason"],  # interrupted_batch | ahead_of_changelog
            registry=self.registry,
        )
        self.forecast_series_failed = Gauge(
            "budgetvakt_forecast_series_failed",
            "Series (cost centre × category or measure, or a roll-up) left out of the latest "
            "forecast run because they could not be forecast (e.g. non-finite or absurd sums); "
            "the rest of the organisation is forecast",
            ["kind"],  # cost | measure
            registry=self.registry,
        )
        self.owned_namnder = Gauge(
            "budgetvakt_owned_namnder",
            "The owners (configured nämnder, and omappad) whose state this worker holds and "
            "forecasts: 1 per owner held",
            ["namnd"],  # bounded: the configured nämnd ids and omappad
            registry=self.registry,
        )
        self.forecast_status: ForecastStatus | None = None
        self.registry.register(StateCollector(state, org, measures))
        self.registry.register(ForecastCollector(lambda: self.forecast_status, org, measures))

    def observe_forecast(self, seconds: float) -> None:
        self.forecast_runs.inc()
        self.forecast_duration.observe(seconds)

    def set_forecast_series_failed(self, counts: Mapping[str, int]) -> None:
        """Series left out of the latest forecast run, per kind (cost, measure)."""
        for kind, count in counts.items():
            self.forecast_series_failed.labels(kind).set(count)

    def set_owned_namnder(self, owners: Iterable[str]) -> None:
        """Replace the owned-nämnder gauge's series with the owners held now."""
        self.owned_namnder.clear()
        for owner in owners:
            self.owned_namnder.labels(owner).set(1)

    def set_alerts_firing(self, *books: AlertBook) -> None:
        """Replace the firing gauge's series with what the alert books (one per owner held)
        say fires now."""
        self.alerts_firing.clear()
        firing = [item for book in books for item in book.firing().items()]
        for alert_id, alert in firing:
            rule, org_unit = alert_id.split("|")[:2]  # alert ids are "rule|org_unit|category|year"
            if org_unit not in self.org.nodes:
                org_unit = UNMAPPED_ID
            self.alerts_firing.labels(rule, alert.severity, org_unit).inc()

    def exposition(self, names: Sequence[str] = ()) -> bytes:
        """The text exposition; with ``names`` only those metric families (as Prometheus's
        own ``?name[]=`` filter: a poll for one counter need not render every forecast gauge,
        which takes about a second of the event loop at 500 cost centres)."""
        if names:
            return generate_latest(self.registry.restricted_registry(list(names)))
        return generate_latest(self.registry)


def metric_names() -> set[str]:
    """The metric family names the worker exports, as they appear in ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    from core.hierarchy import OrgNode

    org = OrgTree({"X": OrgNode("X", "X", "namnd", None)})
    metrics = WorkerMetrics(ActiveState(), org)
    text = metrics.exposition().decode("utf-8")
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Families without samples (labelled metrics never set) still appear in HELP/TYPE lines.
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
    return names
