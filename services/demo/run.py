"""``budgetvakt demo``: the scenario replayed through an embedded broker and the real services.

Starts the embedded Tansu broker, one ``budgetvakt worker`` and one ``budgetvakt notifier``
process, a local SMTP server and webhook receiver (``services.demo.receivers``) and a SQLite
snapshot database, then publishes the scenario (``services.demo.scenario``): all budgets, each
history year as a first load (its postings, then its twelve closes), then the story year month by
month. A month's postings go first; once the worker has handled them the month is
closed (``period_close``), as a ledger closes a month after its postings, and the demo waits
until the worker's forecast has seen everything, its rules were evaluated and its snapshot
written (``/forecasts/status``). After every close of the story year it prints the alert changes
(read from the alert topic, most severe first). At the checkpoints (mars, april, augusti,
december) it prints per avdelning and for the nämnd the full-year budget, the periodised budget,
the actual to date and its deviation, and the worker's full-year forecast ("Prognos helår",
the ``budgetvakt_forecast_*`` gauges of category ``total``) with its 80 % interval and the
forecast deviation (budget − forecast; negative = underskott). A terminal too narrow for one
table gets the forecast columns as a second table. After the August close it writes the
delårsrapport from the snapshots, after December the prognossäkerhet, and at the end, once the
notifier has committed past every alert, who received how many e-mails.

The closing line says when the overrun was caught: the first checkpoint at which the nämnd's
forecast deviation is below −1 % of its full-year budget (``MATERIALITY``; a deficit that size is
what a controller reports), compared with the year-end outcome (the December checkpoint's
budget − actual). It adds from which checkpoint before December the whole 80 % interval lay
above budget (its lower bound exceeds it: about 90 % sure of a deficit).

It stops everything it started, also on errors and Ctrl-C. Files (scenario, logs, worker state,
``budgetvakt.sqlite``, ``rapporter/``, ``mail/``) go to ``<data dir>/demo``, which is cleared at
the start of each run.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from services.processes.scrape import Sample, sum_metric

if TYPE_CHECKING:
    from services.processes.budgetvakt import BudgetvaktProcess

CHECKPOINT_MONTHS = (3, 4, 8, 12)
#: The delårsrapport is written after this month's close (the interim report after August).
REPORT_MONTH = 8
WORKER_READY_TIMEOUT_S = 120.0
CATCH_UP_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 30.0
#: A forecast deficit counts as "seen" when it exceeds this share of the full-year budget.
MATERIALITY = 0.01


@dataclass
class AvdelningRow:
    id: str
    name: str
    budget_full_year: float
    budget_ytd: float
    actual_ytd: float

    @property
    def deviation(self) -> float:
        """Periodised budget to date − actual to date: negative means over budget."""
        return self.budget_ytd - self.actual_ytd


@dataclass(frozen=True)
class ForecastFigures:
    """A node's full-year forecast with its 80 % interval, against its full-year budget."""

    budget_full_year: float
    full_year: float
    low: float
    high: float

    @property
    def deviation(self) -> float:
        """Budget − forecast: negative means a forecast deficit (underskott)."""
        return self.budget_full_year - self.full_year

    @property
    def overrun_certain(self) -> bool:
        """Even the interval's lower bound lies above the budget."""
        return self.low > self.budget_full_year


@dataclass
class Checkpoint:
    """What the demo printed at one checkpoint: actuals per avdelning and the forecasts."""

    year: int
    month: int
    rows: list[AvdelningRow]
    forecasts: dict[str, ForecastFigures]  # avdelning and nämnd ids


# --- Metrics ---------------------------------------------------------------------------------


def events_seen(samples: Sequence[Sample], topic: str) -> float:
    """Events of a topic the worker has handled (accepted, duplicate or rejected)."""
    return sum_metric(samples, "budgetvakt_events_total", topic=topic)


# --- Processes -------------------------------------------------------------------------------


def _wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, alive: Callable[[], None]
) -> None:
    """Until ``condition`` holds; ``alive`` raises when a process it needs has died."""
    from core.errors import UserError
    from services.processes.supervised import wait_until

    def check() -> bool:
        alive()
        return condition()

    try:
        wait_until(check, timeout_s, what)
    except TimeoutError:
        raise UserError(f"demo: {what} did not happen within {timeout_s:.0f} s") from None


def service_process(
    command: str,
    bootstrap_servers: str,
    data_dir: Path,
    log_path: Path,
    env: Mapping[str, str] | None = None,
) -> BudgetvaktProcess:
    """``budgetvakt worker`` (or ``notifier``) as the demo runs it: on the demo's broker, in a
    session of its own so that Ctrl-C in the terminal reaches the demo only (which stops it)."""
    from services.processes.budgetvakt import BudgetvaktProcess

    return BudgetvaktProcess(
        command,
        data_dir=data_dir,
        log_path=log_path,
        env={"BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, **(env or {})},
        start_timeout_s=WORKER_READY_TIMEOUT_S,
        stop_timeout_s=WORKER_STOP_TIMEOUT_S,
        new_session=True,
    )


def _wait_caught_up(
    worker: BudgetvaktProcess, watched: Sequence[str], expected: dict[str, int]
) -> list[Sample]:
    """Poll /metrics until the worker has handled every event published to the watched topics."""
    samples: list[Sample] = []

    def caught_up() -> bool:
        nonlocal samples
        try:
            samples = worker.samples()
        except (urllib.error.URLError, OSError):
            return False
        return all(events_seen(samples, t) >= expected.get(t, 0) for t in watched)

    _wait_for(caught_up, CATCH_UP_TIMEOUT_S, "worker caught up", worker.check_alive)
    return samples


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the demo like Ctrl-C, so that the ``finally`` clean-up always runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- Publishing ------------------------------------------------------------------------------


def publish_events(
    bootstrap_servers: str, events: Sequence[dict[str, Any]], topics: Any
) -> dict[str, int]:
    """Send events with ``services.batch.publish`` (acks=all, flushed, confirmed), per topic."""
    from services.batch import publish

    by_topic: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_topic.setdefault(publish.topic_for_type(event["type"], topics), []).append(event)
    sent: dict[str, int] = {}
    for topic, batch in by_topic.items():
        sent[topic] = publish.send_events(bootstrap_servers, topic, batch)
    return sent


# --- Alerts and notifications ----------------------------------------------------------------

NOTIFIER_GROUP = "budgetvakt-demo-notifier"
ALERT_LINES_PER_MONTH = 4
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
SEVERITY_SV = {"critical": "kritisk", "warning": "varning", "info": "info"}


class AlertFeed:
    """The alert topic as the demo reads it: every new alert event since the last call."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        from kafka import KafkaConsumer

        self.topic = topic
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
        )
        self.partitions: list[Any] = []
        self.events: list[Any] = []

    def new(self) -> list[Any]:
        from kafka import TopicPartition

        from contract.output_records import AlertEvent

        if not self.partitions:
            known = self.consumer.partitions_for_topic(self.topic)
            if not known:
                return []
            self.partitions = [TopicPartition(self.topic, p) for p in sorted(known)]
            self.consumer.assign(self.partitions)
            self.consumer.seek_to_beginning(*self.partitions)
        ends = self.consumer.end_offsets(self.partitions)
        fresh: list[Any] = []
        deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
        while any(self.consumer.position(tp) < ends[tp] for tp in self.partitions):
            if time.monotonic() > deadline:
                break
            for records in self.consumer.poll(timeout_ms=200).values():
                fresh.extend(AlertEvent.model_validate_json(r.value) for r in records)
        fresh.sort(key=lambda a: (a.emitted_at, a.event_id))
        self.events.extend(fresh)
        return fresh

    def delivered_by(self, group: str) -> bool:
        """The notifier group has committed past every alert: all of them are delivered."""
        from kafka import KafkaConsumer

        ends = self.consumer.end_offsets(self.partitions) if self.partitions else {}
        # A consumer of the group that never subscribes: it only asks for the committed offsets.
        probe = KafkaConsumer(
            bootstrap_servers=self.consumer.config["bootstrap_servers"],
            group_id=group,
            enable_auto_commit=False,
        )
        try:
            return all((probe.committed(tp) or 0) >= end for tp, end in ends.items())
        finally:
            probe.close()

    def close(self) -> None:
        self.consumer.close()


ALERT_STATUS_SV = {
    "firing": "Larm",
    "worsened": "Försämrat",
    "improved": "Förbättrat",
    "resolved": "Åter inom gränserna",
}


def alert_status_sv(alert: Any) -> str:
    """A resolution because the year closed is no return within the limits."""
    if alert.status == "resolved" and getattr(alert, "resolution", None) == "year_closed":
        return "Avslutat"
    return ALERT_STATUS_SV[alert.status]


def alert_lines(alerts: Sequence[Any], limit: int = ALERT_LINES_PER_MONTH) -> list[str]:
    """The month's alert changes, most severe first, as a controller would skim them."""
    ordered = sorted(alerts, key=lambda a: (SEVERITY_ORDER[a.severity], a.status, a.alert_id))
    lines = [
        f"  {alert_status_sv(a)} ({SEVERITY_SV[a.severity]}): {a.message}" for a in ordered[:limit]
    ]
    if len(ordered) > limit:
        lines.append(f"  … och {len(ordered) - limit} larmändringar till.")
    return lines


def mail_summary(mails: Sequence[Any], mail_dir: Path) -> list[str]:
    """Who received how many notifications, and where the messages are."""
    per_recipient: dict[str, int] = {}
    for mail in mails:
        for address in mail.recipients:
            per_recipient[address] = per_recipient.get(address, 0) + 1
    lines = [
        f"Notifieraren skickade {len(mails)} e-postmeddelanden till {len(per_recipient)} "
        f"mottagare (sparade i {mail_dir}):"
    ]
    for address, count in sorted(per_recipient.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {address}: {count}")
    return lines


# --- Forecasts: the worker's own -------------------------------------------------------------


def forecasts_from_samples(samples: Sequence[Sample], year: int) -> dict[str, ForecastFigures]:
    """Every node's net-cost forecast (category ``total``) as the worker exports it."""
    from forecasts.live import TOTAL

    figures: dict[str, dict[str, float]] = {}
    names = {
        "budgetvakt_forecast_full_year_sek": "full_year",
        "budgetvakt_forecast_low_sek": "low",
        "budgetvakt_forecast_high_sek": "high",
        "budgetvakt_forecast_deviation_sek": "deviation",
    }
    for name, labels, value in samples:
        if name in names and labels.get("category") == TOTAL and labels.get("year") == str(year):
            figures.setdefault(labels["org_unit"], {})[names[name]] = value
    return {
        node: ForecastFigures(f["full_year"] + f["deviation"], f["full_year"], f["low"], f["high"])
        for node, f in figures.items()
        if {"full_year", "low", "high", "deviation"} <= set(f)
    }


def forecast_status(port: int, timeout_s: float = 5.0) -> dict[str, Any]:
    import json

    url = f"http://127.0.0.1:{port}/forecasts/status"
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        status: dict[str, Any] = json.loads(resp.read())
    return status


def _wait_forecast(worker: BudgetvaktProcess, year: int, month: int, closed: bool) -> None:
    """Until the worker's forecast has seen everything it aggregated, as of ``month``; after a
    period close also until the rules were evaluated and the snapshot written."""
    period = f"{year:04d}-{month:02d}"

    def current() -> bool:
        try:
            status = forecast_status(worker.port)
        except (urllib.error.URLError, OSError):
            return False
        as_of = status["years"].get(str(year), {}).get("as_of_month")
        done = status["state_version"] == status["current_state_version"] and as_of == month
        if closed:
            evaluated = period in status["evaluated"] or period < status["alerts_from"]
            done = done and evaluated and period in status["snapshots"]
        return bool(done)

    _wait_for(current, CATCH_UP_TIMEOUT_S, f"forecast as of {period}", worker.check_alive)


def caught_line(checkpoints: Sequence[Checkpoint], namnd_id: str) -> str:
    """When the nämnd's deficit first showed in the forecast, against the year-end outcome.

    "Showed" means a forecast deviation below −``MATERIALITY`` of the full-year budget; the line
    also says from which checkpoint before December the whole 80 % interval lay above budget.
    """
    from core.swedish import MONTH_NAMES_SV, format_mnkr

    def deficit(cp: Checkpoint) -> bool:
        fc = cp.forecasts[namnd_id]
        return fc.deviation < -MATERIALITY * abs(fc.budget_full_year)

    last = checkpoints[-1]
    final = last.forecasts[namnd_id]
    outcome = (
        f"utfall vid årets slut {format_mnkr(final.deviation)} mnkr"
        if last.month == 12
        else f"prognos t.o.m. {MONTH_NAMES_SV[last.month - 1]} {format_mnkr(final.deviation)} mnkr"
    )
    seen = next((cp for cp in checkpoints if deficit(cp)), None)
    if seen is None:
        return f"Prognosen visade inget tydligt underskott för nämnden ({outcome})."
    certain = next(
        (
            cp
            for cp in checkpoints
            if cp.month < 12 and deficit(cp) and cp.forecasts[namnd_id].overrun_certain
        ),
        None,
    )
    when = "redan" if seen.month < 12 else "först"
    line = (
        f"Underskottet syntes i prognosen {when} i {MONTH_NAMES_SV[seen.month - 1]}: "
        f"prognos {format_mnkr(seen.forecasts[namnd_id].deviation)} mnkr för nämnden ({outcome})"
    )
    if certain is not None:
        line += f"; hela 80 %-intervallet låg över budget från {MONTH_NAMES_SV[certain.month - 1]}"
    return line + "."


# --- Report ----------------------------------------------------------------------------------


def avdelning_rows(
    samples: Sequence[Sample],
    scenario: Any,
    domain: Any,
    year: int,
    month: int,
) -> list[AvdelningRow]:
    """Budget and actual from the worker's metrics; the periodised budget from the config."""
    from services.demo.scenario import avdelning_of

    budget_ytd: dict[str, float] = {}
    for (unit, category), annual in scenario.cost_budget(year).items():
        avd = avdelning_of(domain, unit)
        budget_ytd[avd] = budget_ytd.get(avd, 0.0) + sum(domain.periodise(category, annual)[:month])
    rows = []
    avdelningar = [n for n in domain.org.nodes.values() if n.level == "avdelning"]
    for node in avdelningar:
        if node.id not in budget_ytd:
            continue
        labels = {"org_unit": node.id, "year": str(year), "level": "avdelning"}
        rows.append(
            AvdelningRow(
                node.id,
                node.name,
                sum_metric(samples, "budgetvakt_budget_full_year_sek", **labels),
                budget_ytd[node.id],
                sum_metric(samples, "budgetvakt_actual_ytd_sek", **labels),
            )
        )
    return rows


def render_table(
    rows: Sequence[AvdelningRow],
    year: int,
    month: int,
    namnd: str,
    namnd_id: str = "VON",
    forecasts: Mapping[str, ForecastFigures] | None = None,
) -> Any:
    """The checkpoint table; with ``forecasts`` (avdelning and nämnd ids) the forecast columns."""
    from rich import box
    from rich.table import Table

    from core.swedish import MONTH_NAMES_SV, format_mnkr, format_number_sv

    title = f"{namnd}: utfall t.o.m. {MONTH_NAMES_SV[month - 1]} {year}"
    table = Table(
        title=f"{title} och prognos helår (mnkr)" if forecasts else f"{title} (mnkr)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    table.add_column("Verksamhet")
    headings = ["Budget helår", "Periodiserad budget", "Utfall", "Avvikelse", "Avvikelse %"]
    if forecasts:
        headings += ["Prognos helår", "80 %-intervall", "Prognos avvikelse"]
    for heading in headings:
        table.add_column(heading, justify="right")
    total = AvdelningRow(namnd_id, "Summa nämnden", 0.0, 0.0, 0.0)
    for row in [*rows, None]:
        if row is None:
            row = total
        else:
            total.budget_full_year += row.budget_full_year
            total.budget_ytd += row.budget_ytd
            total.actual_ytd += row.actual_ytd
        pct = 100 * row.deviation / row.budget_ytd if row.budget_ytd else 0.0
        style = "bold red" if pct <= -2 else None
        cells = [
            f"{row.name} ({row.id})",
            format_mnkr(row.budget_full_year),
            format_mnkr(row.budget_ytd),
            format_mnkr(row.actual_ytd),
            format_mnkr(row.deviation),
            format_number_sv(pct),
        ]
        if forecasts:
            fc = forecasts.get(row.id)
            cells += (
                [
                    format_mnkr(fc.full_year),
                    f"{format_mnkr(fc.low)}\u2013{format_mnkr(fc.high)}",
                    format_mnkr(fc.deviation),
                ]
                if fc is not None
                else ["", "", ""]
            )
        table.add_row(*cells, style=style)
    return table


def render_forecast_table(
    rows: Sequence[AvdelningRow],
    year: int,
    month: int,
    namnd: str,
    namnd_id: str,
    forecasts: Mapping[str, ForecastFigures],
) -> Any:
    """The forecast columns on their own, for terminals too narrow for the combined table."""
    from rich import box
    from rich.table import Table

    from core.swedish import MONTH_NAMES_SV, format_mnkr

    table = Table(
        title=f"{namnd}: prognos helår t.o.m. {MONTH_NAMES_SV[month - 1]} {year} (mnkr)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    table.add_column("Verksamhet")
    for heading in ("Budget helår", "Prognos helår", "80 %-intervall", "Prognos avvikelse"):
        table.add_column(heading, justify="right")
    for node_id, name in [*((r.id, r.name) for r in rows), (namnd_id, "Summa nämnden")]:
        fc = forecasts.get(node_id)
        if fc is None:
            continue
        table.add_row(
            f"{name} ({node_id})",
            format_mnkr(fc.budget_full_year),
            format_mnkr(fc.full_year),
            f"{format_mnkr(fc.low)}\u2013{format_mnkr(fc.high)}",
            format_mnkr(fc.deviation),
            style="bold red" if fc.overrun_certain else None,
        )
    return table


def print_checkpoint(
    console: Any,
    rows: Sequence[AvdelningRow],
    year: int,
    month: int,
    namnd: str,
    namnd_id: str,
    forecasts: Mapping[str, ForecastFigures],
) -> None:
    """One table with actuals and forecast; two tables if the terminal is too narrow for one."""
    from rich.measure import Measurement

    combined = render_table(rows, year, month, namnd, namnd_id, forecasts)
    unbounded = console.options.update(max_width=10_000)  # the table's natural width
    if Measurement.get(console, unbounded, combined).maximum <= console.width:
        console.print(combined)
        return
    console.print(render_table(rows, year, month, namnd, namnd_id))
    console.print(render_forecast_table(rows, year, month, namnd, namnd_id, forecasts))


def signal_line(rows: Sequence[AvdelningRow], year: int, month: int) -> str:
    from core.swedish import MONTH_NAMES_SV, format_mnkr, format_number_sv

    worst = min(rows, key=lambda r: r.deviation / r.budget_ytd if r.budget_ytd else 0.0)
    pct = 100 * worst.deviation / worst.budget_ytd if worst.budget_ytd else 0.0
    when = f"t.o.m. {MONTH_NAMES_SV[month - 1]} {year}"
    if pct > -1.0:
        return f"Inga större avvikelser {when}."
    return (
        f"Signal {when}: {worst.name} har {format_mnkr(-worst.deviation)} mnkr "
        f"({format_number_sv(-pct)} %) högre utfall än periodiserad budget."
    )


def volume_line(
    samples: Sequence[Sample],
    scenario: Any,
    domain: Any,
    year: int,
    month: int,
    measure: str = "home_care_hours",
    avdelning: str = "AO",
) -> str:
    """Home-care hours to date against plan: the volume side of the äldreomsorg story."""
    from core.swedish import format_number_sv
    from services.demo.scenario import avdelning_of

    plan = sum(
        sum(b["monthly"][:month])
        for b in scenario.budgets
        if b["year"] == year
        and b.get("measure") == measure
        and avdelning_of(domain, b["org_unit"]) == avdelning
    )
    actual = sum_metric(
        samples,
        "budgetvakt_volume_ytd",
        org_unit=avdelning,
        measure=measure,
        year=str(year),
        level="avdelning",
    )
    pct = 100 * (actual - plan) / plan if plan else 0.0
    return (
        f"Hemtjänsttimmar t.o.m. månaden: {format_number_sv(actual, 0)} h mot plan "
        f"{format_number_sv(plan, 0)} h ({'+' if pct >= 0 else ''}{format_number_sv(pct)} %)."
    )


# --- The command -----------------------------------------------------------------------------


def follow_up_lines(engine: Any, web: Any, domain: Any, period: str, console: Any) -> None:
    """The month's follow-up through budgetvakt web's API (services.demo.followup), narrated."""
    from services.demo.followup import DEMO_PASSWORD, DEMO_USERS, run_follow_up

    result = run_follow_up(engine, web, domain, period)
    console.print(
        f"Uppföljning {period}: avdelningschefen för äldreomsorg har kommenterat avvikelsen, "
        "lagt in en beslutad åtgärd och justerat prognosen; controllern har godkänt "
        f"delårsprognosen ({', '.join(result.approved)}).",
        highlight=False,
    )
    console.print(
        f"Webbserver (budgetvakt web) under demon: {result.url}  (användare "
        + ", ".join(u for u, _, _ in DEMO_USERS)
        + f", lösenord {DEMO_PASSWORD})",
        highlight=False,
        soft_wrap=True,
    )


def run_demo(data_root: Path, seed: int, console: Any) -> list[Checkpoint]:
    """Run the demo; returns what it printed at each checkpoint."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from core.settings import Settings
    from core.swedish import MONTH_NAMES_SV
    from services.config.domain import load_domain_config
    from services.demo.scenario import generate_scenario, summary_lines, write_scenario
    from services.processes.broker import EmbeddedBroker
    from services.reports.writer import print_accuracy, write_accuracy, write_report

    settings = Settings()
    domain = load_domain_config(settings.config_dir)
    demo_dir = data_root / "demo"
    if demo_dir.exists():
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True)

    scenario = generate_scenario(seed=seed, domain=domain)
    write_scenario(scenario, demo_dir / "scenario")
    for line in summary_lines(scenario, domain):
        console.print(line, markup=False, highlight=False)
    history_years, story_year = scenario.years[:-1], scenario.years[-1]
    topics = settings.topics()
    checkpoints: list[Checkpoint] = []

    if settings.kafka_bootstrap_servers:
        console.print(
            "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS är satt, men demon kör alltid mot en egen "
            "inbäddad broker så att dess summor börjar från noll.",
            highlight=False,
        )
    # Not a ``with`` block: an interrupt while the broker starts must still stop it.
    from services.demo.receivers import MailCatcher, WebhookCatcher, routing_with_local_webhooks
    from services.snapshots.migrate import upgrade
    from services.snapshots.store import make_engine

    database_url = f"sqlite:///{(demo_dir / 'budgetvakt.sqlite').resolve()}"
    reports_dir, mail_dir = demo_dir / "rapporter", demo_dir / "mail"
    broker = EmbeddedBroker(log_path=demo_dir / "tansu.log")
    mail = MailCatcher(save_dir=mail_dir)
    hooks = WebhookCatcher()
    worker = service_process(
        "worker",
        broker.bootstrap_servers,
        demo_dir / "worker",
        demo_dir / "worker.log",
        # The history years are a first load from the ERP: forecasts and snapshots, no mail.
        env={"BUDGETVAKT_DATABASE_URL": database_url, "BUDGETVAKT_ALERTS_FROM": f"{story_year}-01"},
    )
    notifier = service_process(
        "notifier",
        broker.bootstrap_servers,
        demo_dir / "notifier",
        demo_dir / "notifier.log",
        env={
            "BUDGETVAKT_SMTP_PORT": str(mail.port),
            "BUDGETVAKT_NOTIFIER_GROUP_ID": NOTIFIER_GROUP,
            "BUDGETVAKT_NOTIFIER_ROUTING_FILE": str(demo_dir / "routing.yaml"),
            # Mails link to the node's page of the month in the follow-up web the demo runs
            # (and prints how to start again): every closed month has one, while the demo
            # writes a report file for August only.
            "BUDGETVAKT_REPORT_BASE_URL": os.environ.get("BUDGETVAKT_REPORT_BASE_URL")
            or f"http://127.0.0.1:{settings.ui_port}",
            "BUDGETVAKT_REPORT_LINK": os.environ.get("BUDGETVAKT_REPORT_LINK")
            or "{base}/perioder/{period}/noder/{org_unit}",
        },
    )
    from services.demo.followup import start_web

    web = start_web(database_url, settings.ui_port, demo_dir / "web.log")
    feed: AlertFeed | None = None
    try:
        broker.start()
        console.print(f"Broker (Tansu) på {broker.bootstrap_servers}", highlight=False)
        upgrade(database_url)
        engine = make_engine(database_url)
        mail.start()
        hooks.start()
        routing_with_local_webhooks(
            settings.config_dir / "routing.yaml", demo_dir / "routing.yaml", hooks
        )
        worker.start(wait=False)
        notifier.start(wait=False)
        with console.status("Startar budgetvakt worker och notifierare …"):
            for process in (worker, notifier):
                process.wait_ready()
        console.print(f"Worker redo: http://127.0.0.1:{worker.port}/metrics", highlight=False)
        console.print(
            f"Notifierare redo (e-post till en lokal SMTP-server på port {mail.port})",
            highlight=False,
        )
        feed = AlertFeed(broker.bootstrap_servers, topics.alert)

        def month_events(year: int, month: int) -> list[dict[str, Any]]:
            period = f"{year:04d}-{month:02d}"
            return [e for e in (*scenario.costs, *scenario.volumes) if e["period"] == period]

        def month_close(year: int, month: int) -> list[dict[str, Any]]:
            """The month's close; a history year's batch closes all its months, in order."""
            period = f"{year:04d}-{month:02d}"
            whole_year = year != story_year
            return [
                e
                for e in scenario.period_closes
                if e["period"] == period or (whole_year and e["period"][:4] == period[:4])
            ]

        # The history years are a first load, as a real installation loads its ERP's past: one
        # batch per year, then its twelve closes. The story year goes month by month: the
        # worker's YTD after each month gives the monthly actuals the forecasts are made from.
        batches: list[tuple[str, list[dict[str, Any]], int | None, int | None]] = [
            ("Budgetar", list(scenario.budgets), None, None)
        ]
        batches += [
            (str(y), [e for m in range(1, 13) for e in month_events(y, m)], y, 12)
            for y in history_years
        ]
        batches += [
            (f"{story_year}-{m:02d}", month_events(story_year, m), story_year, m)
            for m in range(1, 13)
        ]
        total_events = sum(len(b[1]) for b in batches) + len(scenario.period_closes)
        published = 0
        published_by_topic: dict[str, int] = {}
        watched = (topics.cost, topics.volume, topics.budget, topics.period_close)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("Publicerar", total=total_events)
            for label, events, year, month in batches:
                progress.update(task, description=f"Publicerar {label}")
                for topic, count in publish_events(
                    broker.bootstrap_servers, events, topics
                ).items():
                    published_by_topic[topic] = published_by_topic.get(topic, 0) + count
                    published += count
                progress.update(task, completed=published)
                if year is None or month is None:
                    continue
                progress.update(task, description=f"Väntar på worker ({label})")
                # The ledger closes the month once its postings are in: only then the close.
                _wait_caught_up(worker, watched, published_by_topic)
                for topic, count in publish_events(
                    broker.bootstrap_servers, month_close(year, month), topics
                ).items():
                    published_by_topic[topic] = published_by_topic.get(topic, 0) + count
                    published += count
                progress.update(task, completed=published)
                _wait_caught_up(worker, watched, published_by_topic)
                _wait_forecast(worker, year, month, closed=True)
                changes = feed.new()
                if year == story_year and changes:
                    progress.console.print(
                        f"Larm efter stängningen av {label}:", highlight=False, style="bold"
                    )
                    for line in alert_lines(changes):
                        progress.console.print(line, highlight=False, markup=False)
                if year == story_year and month == REPORT_MONTH:
                    follow_up_lines(engine, web, domain, label, progress.console)
                    _, paths = write_report(engine, label, reports_dir, domain=domain)
                    progress.console.print(
                        f"Delårsrapport efter {MONTH_NAMES_SV[month - 1]}: "
                        + ", ".join(p.name for p in paths if p.suffix != ".csv")
                        + f" (och CSV) i {reports_dir}",
                        highlight=False,
                    )
                if year != story_year or month not in CHECKPOINT_MONTHS:
                    continue
                samples = worker.samples()
                rows = avdelning_rows(samples, scenario, domain, story_year, month)
                forecasts = forecasts_from_samples(samples, story_year)
                checkpoints.append(Checkpoint(story_year, month, rows, forecasts))
                print_checkpoint(
                    progress.console,
                    rows,
                    story_year,
                    month,
                    domain.org.root.name,
                    domain.org.root.id,
                    forecasts,
                )
                progress.console.print(signal_line(rows, story_year, month), highlight=False)
                progress.console.print(
                    volume_line(samples, scenario, domain, story_year, month), highlight=False
                )
        if checkpoints:
            console.print(caught_line(checkpoints, domain.org.root.id), highlight=False)
        accuracy, paths = write_accuracy(engine, story_year, reports_dir, domain=domain)
        print_accuracy(accuracy, console)
        console.print(
            f"Prognossäkerhet: {', '.join(p.name for p in paths)} i {reports_dir}", highlight=False
        )
        by_status = {s: sum(1 for a in feed.events if a.status == s) for s in ALERT_STATUS_SV}
        console.print(
            f"Larmhändelser: {len(feed.events)} ({by_status['firing']} utlösta, "
            f"{by_status['worsened']} försämrade, {by_status['improved']} förbättrade, "
            f"{by_status['resolved']} åter inom gränserna eller avslutade).",
            highlight=False,
        )
        _wait_for(
            lambda: feed is not None and feed.delivered_by(NOTIFIER_GROUP),
            CATCH_UP_TIMEOUT_S,
            "notifications delivered",
            notifier.check_alive,
        )
        for line in mail_summary(mail.mails, mail_dir):
            console.print(line, highlight=False, markup=False)
        console.print(f"Snapshots och rapportunderlag: {database_url}", highlight=False)
        console.print(
            "Uppföljningen i webbläsaren efter demon: "
            f"BUDGETVAKT_DATABASE_URL={database_url} budgetvakt web",
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"Publicerade {published} händelser. Underlag och loggar: {demo_dir}",
            highlight=False,
        )
    finally:
        if feed is not None:
            feed.close()
        web.stop()
        notifier.stop()
        code = worker.stop()
        mail.stop()
        hooks.stop()
        broker.stop()
        console.print(f"Worker stoppad (kod {code}); broker stoppad.", highlight=False)
    return checkpoints
