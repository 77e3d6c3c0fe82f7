"""A kommun of six nämnder on the embedded broker: its configuration, its events, the runs of
workers that consume them, and what a run produced (gauges, forecasts, alerts, snapshots).

Used by ``test_consumer_group.py``: the same events go once through one worker and once through
a consumer group whose members come and go, and everything the two runs produced must be equal.

The producer never sleeps: after a month's postings it waits until the workers' gauges show
every öre of them, after the month's closes until the owning worker of every nämnd reports the
close evaluated (:func:`namnd_status`, the one place that reads the per-nämnd shape of
``/forecasts/status``) and the nämnd's snapshot of the month is in the database.
"""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from core.hierarchy import UNMAPPED_ID
from core.settings import DEFAULT_CONFIG_DIR
from services.processes.broker import EmbeddedBroker
from services.processes.scrape import Sample
from services.processes.supervised import wait_until
from tests.fixtures import records_on_topic
from tests.streams.fixtures import KEPT_LOGS, StreamCase, WorkerProcess

# --- The kommun ----------------------------------------------------------------------------------

YEAR = 2025  # the forecast year, fed month by month
HISTORY_YEARS = (2023, 2024)  # loaded in bulk first, as an installation loads its ERP's past
PARTITIONS = 6
ALERTS_FROM = f"{YEAR}-01"

#: id → name. The ids are the org_unit of each nämnd's period closes.
NAMNDER = {
    "SN": "Socialnämnden",
    "VON": "Vård- och omsorgsnämnden",
    "BUN": "Barn- och utbildningsnämnden",
    "KFN": "Kultur- och fritidsnämnden",
    "MBN": "Miljö- och byggnadsnämnden",
    "TN": "Tekniska nämnden",
}
UNITS_PER_NAMND = 3
CATEGORIES = ("salaries", "substitutes")
MEASURE = "home_care_hours"  # booked by each nämnd's first enhet
# A cost centre the org tree does not know (opened in the ERP, not yet in org.yaml): its money
# belongs to the owner ``omappad`` and must be neither dropped nor counted twice.
UNMAPPED_UNIT = "9990"

# Overruns of the forecast year, by cost centre: (category, first month, last month, factor).
# VON's hemtjänst books far too many substitutes from March on (the nämnd's forecast worsens
# month by month); SN's first enhet overspends on salaries from February to May, and a
# correction in July moves most of it away again (the alerts improve or resolve).
OVERRUNS: dict[str, tuple[str, int, int, float]] = {
    "2110": ("substitutes", 3, 12, 2.2),
    "2120": ("substitutes", 5, 12, 1.8),
    "1110": ("salaries", 2, 5, 1.12),
}
CORRECTION = ("1110", "salaries", 7, 0.75)  # a July posting returning 75 % of the overspend


def units_of(index: int) -> list[str]:
    """The enheter of the ``index``-th nämnd (1-based): 1110, 1120, 1130 for the first."""
    return [f"{index}1{j}0" for j in range(1, UNITS_PER_NAMND + 1)]


def org_document() -> dict[str, Any]:
    """config/org.yaml in the ``namnder:`` form: nämnd → förvaltning → avdelning → enheter."""
    namnder = []
    for index, (namnd_id, name) in enumerate(NAMNDER.items(), start=1):
        units = [
            {"id": unit, "name": f"{name.removesuffix('en')} enhet {unit}", "level": "enhet"}
            for unit in units_of(index)
        ]
        avdelning = {"id": f"{namnd_id}-A", "name": f"Verksamhet {namnd_id}", "level": "avdelning"}
        forvaltning = {"id": f"{namnd_id}-F", "name": f"Förvaltning {namnd_id}"}
        namnder.append(
            {
                "id": namnd_id,
                "name": name,
                "level": "namnd",
                "children": [
                    {
                        **forvaltning,
                        "level": "forvaltning",
                        "children": [{**avdelning, "children": units}],
                    }
                ],
            }
        )
    return {"municipality": "Storvik kommun", "namnder": namnder}


def routing_document() -> dict[str, Any]:
    """config/routing.yaml for this kommun: one controller per nämnd, every alert by e-mail."""
    recipients = {
        f"controller-{namnd_id.lower()}": {
            "name": f"Controller {namnd_id}",
            "role": f"Controller {name}",
            "min_severity": "info",
            "channels": {"email": controller_address(namnd_id)},
        }
        for namnd_id, name in NAMNDER.items()
    }
    units = {namnd_id: [f"controller-{namnd_id.lower()}"] for namnd_id in NAMNDER}
    controllers = {namnd_id: f"controller-{namnd_id.lower()}" for namnd_id in NAMNDER}
    return {"recipients": recipients, "units": units, "controllers": controllers}


def controller_address(namnd_id: str) -> str:
    return f"controller.{namnd_id.lower()}@storvik.example"


def write_kommun_config(target: Path) -> Path:
    """The shipped config/ with this kommun's org tree and routing; rules, categories,
    accounts and checkpoints as shipped."""
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    for name, document in (("org.yaml", org_document()), ("routing.yaml", routing_document())):
        (target / name).write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return target


def namnd_of_unit() -> dict[str, str]:
    """Every cost centre with postings → its owner (a nämnd, or omappad)."""
    owners = {
        unit: namnd_id
        for index, namnd_id in enumerate(NAMNDER, start=1)
        for unit in units_of(index)
    }
    return {**owners, UNMAPPED_UNIT: UNMAPPED_ID}


def owner_of(org_unit: str) -> str:
    """The owner of a node of this kommun (a nämnd, its förvaltning/avdelning, an enhet) or
    of an unknown cost centre (omappad)."""
    for namnd_id in NAMNDER:
        if org_unit == namnd_id or org_unit.startswith(f"{namnd_id}-"):
            return namnd_id
    return namnd_of_unit().get(org_unit, UNMAPPED_ID)


@dataclass
class KommunEvents:
    """Every event of the run, in the order the producer sends them."""

    budgets: list[dict[str, Any]]
    history: dict[str, list[dict[str, Any]]]  # topic → events of the history years
    months: dict[int, dict[str, list[dict[str, Any]]]]  # month of YEAR → topic → postings
    closes: dict[int, list[dict[str, Any]]]  # month of YEAR → one close per nämnd

    def cost_totals(self, through_month: int) -> dict[tuple[str, int], float]:
        """(nämnd, year) → the cost booked, history and the forecast year to ``through_month``:
        what the gauges must show once those postings are in."""
        return _totals(self._postings(through_month, "cost"), "amount_sek")

    def volume_totals(self, through_month: int) -> dict[tuple[str, int], float]:
        return _totals(self._postings(through_month, "volume"), "value")

    def _postings(self, through_month: int, topic: str) -> list[dict[str, Any]]:
        events = list(self.history[topic])
        for month in range(1, through_month + 1):
            events += self.months[month][topic]
        return events


def _totals(events: Sequence[Mapping[str, Any]], field_name: str) -> dict[tuple[str, int], float]:
    owner = namnd_of_unit()
    totals: dict[tuple[str, int], float] = defaultdict(float)
    for event in events:
        totals[(owner[event["org_unit"]], int(event["period"][:4]))] += event[field_name]
    return dict(totals)


def kommun_events(seed: int = 15) -> KommunEvents:
    """Budgets, two history years and the forecast year of the kommun; seeded, so the same
    every run. Amounts in öre precision (two decimals)."""
    rng = np.random.default_rng(seed)
    profiles = yaml.safe_load((DEFAULT_CONFIG_DIR / "categories.yaml").read_text("utf-8"))
    profile_of = {
        category: np.asarray(profiles["profiles"][profiles["categories"][category]["profile"]])
        for category in CATEGORIES
    }
    budgets: list[dict[str, Any]] = []
    history: dict[str, list[dict[str, Any]]] = {"cost": [], "volume": []}
    months: dict[int, dict[str, list[dict[str, Any]]]] = {
        m: {"cost": [], "volume": []} for m in range(1, 13)
    }
    annual: dict[tuple[str, str], float] = {}
    unmapped_month = float(rng.integers(100, 300)) * 1_000  # no budget: the ERP knows no line
    for unit in namnd_of_unit():
        if unit == UNMAPPED_UNIT:
            continue
        annual[(unit, "salaries")] = float(rng.integers(20, 60)) * 1_000_000
        annual[(unit, "substitutes")] = float(rng.integers(2, 8)) * 1_000_000
        annual[(unit, MEASURE)] = float(rng.integers(20, 60)) * 1_000
    for year in (*HISTORY_YEARS, YEAR):
        growth = 1.03 ** (year - HISTORY_YEARS[0])
        for (unit, name), amount in annual.items():
            if name == MEASURE and not unit.endswith("110"):
                continue
            target = {"measure": name} if name == MEASURE else {"category": name}
            budgets.append(
                {
                    "event_id": f"b-{unit}-{name}-{year}",
                    "type": "budget",
                    "org_unit": unit,
                    "year": year,
                    **target,
                    "annual": round(amount * growth, 2),
                }
            )
        for month in range(1, 13):
            period = f"{year}-{month:02d}"
            costs = history["cost"] if year != YEAR else months[month]["cost"]
            volumes = history["volume"] if year != YEAR else months[month]["volume"]
            for (unit, name), amount in annual.items():
                noise = 1 + rng.normal(0, 0.01)
                if name == MEASURE:
                    if unit.endswith("110"):
                        volumes.append(
                            _volume(unit, period, round(amount * growth / 12 * noise, 1))
                        )
                    continue
                share = profile_of[name][month - 1] / profile_of[name].sum()
                value = amount * growth * share * noise
                overrun = OVERRUNS.get(unit)
                if year == YEAR and overrun and overrun[0] == name:
                    first, last, factor = overrun[1:]
                    if first <= month <= last:
                        value *= factor
                costs.append(_cost(f"c-{unit}-{name}-{period}", unit, period, name, value))
            value = unmapped_month * (1 + rng.normal(0, 0.05))
            costs.append(
                _cost(f"c-{UNMAPPED_UNIT}-{period}", UNMAPPED_UNIT, period, "other_costs", value)
            )
    unit, name, month, share_back = CORRECTION
    overspend = sum(
        c["amount_sek"] * (1 - 1 / OVERRUNS[unit][3])
        for m in range(OVERRUNS[unit][1], OVERRUNS[unit][2] + 1)
        for c in months[m]["cost"]
        if (c["org_unit"], c["category"]) == (unit, name)
    )
    months[month]["cost"].append(
        _cost(f"corr-{unit}-{name}", unit, f"{YEAR}-{month:02d}", name, -overspend * share_back)
    )
    closes = {
        m: [
            {
                "event_id": f"close-{namnd_id}-{YEAR}-{m:02d}",
                "type": "period_close",
                "org_unit": namnd_id,
                "period": f"{YEAR}-{m:02d}",
            }
            for namnd_id in NAMNDER
        ]
        for m in range(1, 13)
    }
    return KommunEvents(budgets, history, months, closes)


def _cost(event_id: str, unit: str, period: str, category: str, amount: float) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "cost",
        "org_unit": unit,
        "period": period,
        "category": category,
        "amount_sek": round(float(amount), 2),
    }


def _volume(unit: str, period: str, value: float) -> dict[str, Any]:
    return {
        "event_id": f"v-{unit}-{MEASURE}-{period}",
        "type": "volume",
        "org_unit": unit,
        "period": period,
        "measure": MEASURE,
        "value": float(value),
        "unit": "h",
    }


# --- The status of a close, per nämnd ------------------------------------------------------------


def namnd_status(status: Mapping[str, Any], namnd_id: str) -> Mapping[str, Any] | None:
    """The part of one worker's ``/forecasts/status`` about one nämnd; None when the worker does
    not report that nämnd (does not own it).

    Per owner (branch ``namnd-forecaster``): ``{"owners": {id: {"evaluated": [...],
    "snapshots": [...], ...}}}``, the owners this worker holds. A worker that reports no
    ``owners`` (main before issue 15) has one status for all it owns, taken as every
    nämnd's."""
    per_namnd = status.get("owners")
    if isinstance(per_namnd, Mapping):
        part = per_namnd.get(namnd_id)
        return part if isinstance(part, Mapping) else None
    return status


def close_evaluated(status: Mapping[str, Any], namnd_id: str, period: str) -> bool:
    """The worker evaluated the rules of the nämnd at ``period``'s close (the alerts of a run
    are on the topic before its status changes). Not its ``snapshots``: those list what this
    worker wrote, and a worker that takes a nämnd over finds the snapshot written already."""
    part = namnd_status(status, namnd_id)
    return part is not None and period in part.get("evaluated", ())


def snapshots_present(database_url: str) -> set[tuple[str, str]]:
    """(nämnd, period) of every snapshot in the database; the nämnd ``*`` where the schema has
    no ``namnd`` column (main before issue 15: one snapshot of all a worker owns)."""
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(database_url)
    try:
        meta = MetaData()
        meta.reflect(engine, only=["snapshot"])
        table = meta.tables["snapshot"]
        namnd = table.c.namnd if "namnd" in table.c else None
        columns = [table.c.period] if namnd is None else [namnd, table.c.period]
        with engine.connect() as connection:
            rows = connection.execute(select(*columns)).all()
    finally:
        engine.dispose()
    return {("*", row[0]) if namnd is None else (row[0], row[1]) for row in rows}


def forecast_settled(status: Mapping[str, Any]) -> bool:
    """The worker's last forecast run saw its state as it is now."""
    return bool(status.get("state_version") == status.get("current_state_version"))


# --- A run: workers on their own topics and consumer group ---------------------------------------


@dataclass
class KommunRun(StreamCase):
    """One run's topics, app id (consumer group), configuration and snapshot database."""

    config_dir: Path = Path()
    database_url: str = ""
    kills: list[WorkerProcess] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **super().env,
            "BUDGETVAKT_CONFIG_DIR": str(self.config_dir),
            "BUDGETVAKT_TOPIC_PARTITIONS": str(PARTITIONS),
            "BUDGETVAKT_ALERTS_FROM": ALERTS_FROM,
            "BUDGETVAKT_DATABASE_URL": self.database_url,
        }

    def live_workers(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive()]

    def create_topics(self) -> None:
        """Every topic with ``PARTITIONS`` partitions, as an administrator creates them before
        the first worker starts (a worker creates only its changelog; an input topic the broker
        creates on first use gets the broker's default count, and Faust then refuses the table
        whose changelog has another)."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in self.topics.values()])
        finally:
            admin.close()

    def check_workers(self) -> None:
        """``ProcessFailed`` with its log's tail when a worker that was not killed has exited."""
        for worker in self.workers:
            if worker not in self.kills:
                worker.check_alive()

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL: no shutdown, no commit, no leave-group."""
        assert worker.process is not None
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=30)
        self.kills.append(worker)

    def statuses(self) -> list[dict[str, Any]]:
        answers = []
        for worker in self.live_workers():
            try:
                with urllib.request.urlopen(worker.url("/forecasts/status"), timeout=5) as resp:
                    answers.append(json.loads(resp.read()))
            except (OSError, ValueError, http.client.HTTPException):
                answers.append({})  # restarting or rebalancing: it reports nothing now
        return answers

    def summed_samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every gauge sample of the live workers summed across them (PromQL's
        ``sum without (instance)``); a worker that cannot answer now makes it empty."""
        totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        try:
            samples: list[Sample] = self.samples()
        except (OSError, http.client.HTTPException):
            return {}
        for name, labels, value in samples:
            totals[(name, tuple(sorted(labels.items())))] += value
        return dict(totals)


@pytest.fixture
def kommun_runs(
    request: pytest.FixtureRequest, broker: EmbeddedBroker, tmp_path: Path
) -> Iterator[Callable[[str, str], KommunRun]]:
    """Make runs (``make(name, database_url)``), each on its own topics and consumer group with
    the kommun's configuration; their workers are stopped afterwards and their logs kept under
    test-logs/ when the test failed."""
    config_dir = write_kommun_config(tmp_path / "config")
    runs: list[KommunRun] = []

    def make(name: str, database_url: str) -> KommunRun:
        case_id = f"t{uuid.uuid4().hex[:10]}"
        names = ("cost", "volume", "budget", "period_close", "forecast", "alert", "dead_letter")
        run = KommunRun(
            bootstrap_servers=broker.bootstrap_servers,
            app_id=f"budgetvakt-{case_id}",
            topics={topic: f"{case_id}.{topic}" for topic in names},
            tmp_path=tmp_path / name,
            config_dir=config_dir,
            database_url=database_url,
        )
        run.create_topics()
        runs.append(run)
        return run

    try:
        yield make
    finally:
        for run in runs:
            for worker in run.workers:
                worker.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            KEPT_LOGS.mkdir(exist_ok=True)
            for run in runs:
                for index, worker in enumerate(run.workers):
                    if worker.log_path is not None and worker.log_path.exists():
                        kept = KEPT_LOGS / f"{request.node.name}-{run.tmp_path.name}-w{index}.log"
                        shutil.copyfile(worker.log_path, kept)
                        print(f"\nworker log kept at {kept.resolve()}")


# --- Feeding a run -------------------------------------------------------------------------------

FEED_TIMEOUT_S = 180.0  # a rebalance after a SIGKILL waits for the 6 s session timeout first


def _rounded(totals: Mapping[Any, float]) -> dict[Any, float]:
    return {key: round(value, 2) for key, value in totals.items() if round(value, 2) != 0}


def ingested_totals(run: KommunRun) -> tuple[dict[tuple[str, int], float], ...]:
    """(nämnd, year) → cost and volume the live workers' gauges show, summed across them."""
    costs: dict[tuple[str, int], float] = defaultdict(float)
    volumes: dict[tuple[str, int], float] = defaultdict(float)
    for (name, labels), value in run.summed_samples().items():
        tags = dict(labels)
        if tags.get("level") != "namnd" or tags.get("org_unit") not in (*NAMNDER, UNMAPPED_ID):
            continue
        key = (tags["org_unit"], int(tags["year"]))
        if name == "budgetvakt_actual_ytd_sek" and tags.get("category") != "total":
            costs[key] += value
        elif name == "budgetvakt_volume_ytd":
            volumes[key] += value
    return _rounded(costs), _rounded(volumes)


def wait_ingested(run: KommunRun, events: KommunEvents, through_month: int) -> None:
    """Until the gauges show every öre (and hour) of the postings so far, per nämnd and year."""
    expected = (
        _rounded(events.cost_totals(through_month)),
        _rounded(events.volume_totals(through_month)),
    )
    seen: list[Any] = []

    def done() -> bool:
        run.check_workers()
        seen[:] = [ingested_totals(run)]
        return seen[0] == expected

    try:
        wait_until(done, FEED_TIMEOUT_S, f"postings through {YEAR}-{through_month:02d} ingested")
    except TimeoutError as err:
        raise TimeoutError(f"{err}; expected {expected}, gauges {seen}") from None


def wait_closes_done(run: KommunRun, period: str) -> None:
    """Until, for every nämnd, a live worker reports ``period``'s close evaluated and the
    nämnd's snapshot of ``period`` is in the database."""
    missing: list[str] = []

    def done() -> bool:
        run.check_workers()
        statuses = run.statuses()
        stored = snapshots_present(run.database_url)
        missing[:] = [
            n
            for n in NAMNDER
            if not any(close_evaluated(s, n, period) for s in statuses)
            or not {(n, period), ("*", period)} & stored
        ]
        return not missing

    try:
        wait_until(done, FEED_TIMEOUT_S, f"the close of {period} evaluated in every nämnd")
    except TimeoutError as err:
        raise TimeoutError(f"{err}; not done in {missing}") from None


def wait_settled(run: KommunRun) -> None:
    """Until every live worker's last forecast saw its current state."""

    def done() -> bool:
        run.check_workers()
        return all(s and forecast_settled(s) for s in run.statuses())

    wait_until(
        done,
        FEED_TIMEOUT_S,
        "the workers' last forecasts",
    )


def producer_key(index: int, event: Mapping[str, Any]) -> str:
    """The key a producer sets: the owning nämnd (issue 15's documented key), but every third
    event keyed by its cost centre as an older producer does: those reach their home by the
    worker's forwarding, so both paths carry events through the kill and the rebalances."""
    org_unit = str(event["org_unit"])
    return org_unit if index % 3 == 2 else owner_of(org_unit)


def send(run: KommunRun, topic: str, events: Sequence[Mapping[str, Any]]) -> None:
    run.send(
        topic,
        [(producer_key(i, e).encode(), json.dumps(e).encode(), None) for i, e in enumerate(events)],
    )


#: Called with the run and the month before that month's postings are sent, and between the
#: two halves of them: ``(run, month, half)`` with ``half`` 0 or 1.
MonthHook = Callable[[KommunRun, int, int], None]


def feed(run: KommunRun, events: KommunEvents, months: int, hook: MonthHook | None = None) -> None:
    """Budgets and the history in bulk, then the forecast year's months one by one: postings
    (in two halves, ``hook`` before each), wait until ingested, the nämnder's closes, wait until
    every close is evaluated and snapshotted."""
    send(run, "budget", events.budgets)
    for topic, history in events.history.items():
        send(run, topic, history)
    wait_ingested(run, events, 0)
    for month in range(1, months + 1):
        for half in (0, 1):
            if hook is not None:
                hook(run, month, half)
            for topic, postings in events.months[month].items():
                middle = len(postings) // 2
                send(run, topic, postings[:middle] if half == 0 else postings[middle:])
        wait_ingested(run, events, month)
        send(run, "period_close", events.closes[month])
        wait_closes_done(run, f"{YEAR}-{month:02d}")
    wait_settled(run)


# --- What a run produced -------------------------------------------------------------------------

#: The money and volume gauges (computed from the state or the last forecast); counters and
#: per-process gauges (lag, run times, alerts firing per process) are not compared.
COMPARED_GAUGES = (
    "budgetvakt_actual_ytd_sek",
    "budgetvakt_budget_full_year_sek",
    "budgetvakt_volume_ytd",
    "budgetvakt_volume_budget_full_year",
    "budgetvakt_forecast_full_year_sek",
    "budgetvakt_forecast_low_sek",
    "budgetvakt_forecast_high_sek",
    "budgetvakt_forecast_deviation_sek",
    "budgetvakt_volume_forecast_full_year",
)


def money_gauges(run: KommunRun) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every compared gauge, summed across the live workers, to the öre."""
    summed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def scraped() -> bool:
        nonlocal summed
        summed = run.summed_samples()
        return bool(summed)  # empty while a worker cannot answer

    wait_until(scraped, 30, "every live worker's /metrics")
    return {key: round(value, 2) for key, value in summed.items() if key[0] in COMPARED_GAUGES}


FORECAST_FIGURES = ("full_year", "low", "high", "actual_ytd", "budget_full_year", "deviation")


def final_forecasts(run: KommunRun) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """The forecast topic's last event per node, kind, category and year (figures to the öre,
    the as-of month and the preliminary flag)."""
    last: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for record in records_on_topic(run.bootstrap_servers, run.topics["forecast"]):
        event = json.loads(record.value)
        key = (event["org_unit"], event["kind"], event["category"], event["year"])
        last[key] = {
            "as_of": event["as_of"],
            "preliminary": event["preliminary"],
            **{
                name: None if event.get(name) is None else round(event[name], 2)
                for name in FORECAST_FIGURES
            },
        }
    return last


ALERT_FIELDS = (
    "alert_id",
    "sequence",
    "status",
    "severity",
    "period",
    "rule",
    "org_unit",
    "level",
    "category",
    "message",
    "title",
    "change",
    "year_closed",
    "resolution",
)


def alert_events(run: KommunRun) -> list[dict[str, Any]]:
    """Every event on the alert topic, without its timestamp; figures to the öre."""
    out = []
    for record in records_on_topic(run.bootstrap_servers, run.topics["alert"]):
        event = json.loads(record.value)
        alert = {name: event.get(name) for name in ALERT_FIELDS}
        alert["values"] = {k: round(v, 2) for k, v in sorted(event.get("values", {}).items())}
        out.append(alert)
    return sorted(out, key=lambda a: (a["alert_id"], a["sequence"], json.dumps(a, sort_keys=True)))


def duplicated(keys: Sequence[Any]) -> list[Any]:
    return sorted((k for k, n in Counter(keys).items() if n > 1), key=str)


SNAPSHOT_ROW_FIGURES = (
    "budget_full_year",
    "budget_ytd",
    "actual_ytd",
    "full_year",
    "low",
    "high",
    "deviation",
)


def snapshot_rows(database_url: str) -> dict[tuple[str, str, int], dict[tuple[str, str, str], Any]]:
    """(nämnd, period, version) → its rows: (org_unit, kind, category) → figures to the öre.

    The nämnd is the snapshot's ``namnd`` column where the schema has one; else (main before
    issue 15, one snapshot of all a worker owns) the nämnder its rows cover, joined by "+".
    A snapshot key seen twice is kept under a ``#2`` suffix of its period, so duplicates show.
    """
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(database_url)
    try:
        meta = MetaData()
        meta.reflect(engine, only=["snapshot", "snapshot_row"])
        snapshot, row = meta.tables["snapshot"], meta.tables["snapshot_row"]
        with engine.connect() as connection:
            heads = connection.execute(select(snapshot)).mappings().all()
            rows = connection.execute(select(row)).mappings().all()
    finally:
        engine.dispose()
    rows_of: dict[int, dict[tuple[str, str, str], Any]] = defaultdict(dict)
    for r in rows:
        rows_of[r["snapshot_id"]][(r["org_unit"], r["kind"], r["category"])] = (
            r["as_of_month"],
            *(None if r[name] is None else round(r[name], 2) for name in SNAPSHOT_ROW_FIGURES),
        )
    out: dict[tuple[str, str, int], dict[tuple[str, str, str], Any]] = {}
    for head in sorted(heads, key=lambda h: h["id"]):
        rows_of[head["id"]][("", "snapshot", "")] = tuple(
            head[name] for name in ("checkpoint", "trigger", "as_of_month", "late_event_count")
        )
        namnd = head.get("namnd") or "+".join(
            sorted({unit for unit, _, _ in rows_of[head["id"]] if unit in NAMNDER}),
        )
        key = (namnd, head["period"], head["version"])
        while key in out:
            key = (key[0], key[1] + "#2", key[2])
        out[key] = rows_of[head["id"]]
    return out
