"""``budgetvakt demo``: the scenario replayed through an embedded broker and a real worker.

Starts the embedded Tansu broker and one ``budgetvakt worker`` process, publishes the scenario
(``services.scenario``): all budgets, the first year as history, then the overrun year month by
month. At the checkpoints (mars, april, augusti, december) it reads the worker's ``/metrics`` and
prints per avdelning the full-year budget, the actual to date and the deviation against the
periodised budget, so that the overrun in äldreomsorgen shows from the March forecast on. It stops
everything it started, also on errors and Ctrl-C. Files (scenario, broker and worker logs, worker
state) go to ``<data dir>/demo``, which is cleared at the start of each run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

CHECKPOINT_MONTHS = (3, 4, 8, 12)
WORKER_READY_TIMEOUT_S = 120.0
CATCH_UP_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 30.0
READINESS_PATH = "/ready"


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


# --- Metrics ---------------------------------------------------------------------------------


def fetch_metrics(port: int, host: str = "127.0.0.1", timeout_s: float = 5.0) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as resp:
        body: bytes = resp.read()
    return body.decode("utf-8")


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def events_seen(samples: Sequence[tuple[str, dict[str, str], float]], topic: str) -> float:
    """Events of a topic the worker has handled (accepted, duplicate or rejected)."""
    return sum_metric(samples, "budgetvakt_events_total", topic=topic)


def sum_metric(
    samples: Sequence[tuple[str, dict[str, str], float]], name: str, **labels: str
) -> float:
    return sum(
        v
        for n, lab, v in samples
        if n == name and all(lab.get(k) == want for k, want in labels.items())
    )


# --- Processes -------------------------------------------------------------------------------


def _wait_for(
    condition: Callable[[], bool], timeout_s: float, what: str, alive: Callable[[], None]
) -> None:
    from services.errors import UserError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive()
        if condition():
            return
        time.sleep(0.2)
    raise UserError(f"demo: {what} did not happen within {timeout_s:.0f} s")


class WorkerProcess:
    """``budgetvakt worker`` as a child process with its own web port and data dir."""

    def __init__(self, bootstrap_servers: str, data_dir: Path, log_path: Path) -> None:
        from services.broker import free_port

        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = log_path
        self.bootstrap_servers = bootstrap_servers
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            {
                "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                "BUDGETVAKT_WEB_PORT": str(self.port),
                "BUDGETVAKT_WEB_HOST": "127.0.0.1",
                "BUDGETVAKT_DATA_DIR": str(self.data_dir),
                "BUDGETVAKT_LOG_FORMAT": "json",
            }
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log_file:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "services", "worker"],
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the terminal reaches the demo only
            )

    def check_alive(self) -> None:
        from services.errors import UserError

        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            raise UserError(f"demo: the worker exited (code {code}); see {self.log_path}")

    def is_ready(self) -> bool:
        """The worker's readiness endpoint answers 200 once its partitions are assigned."""
        try:
            url = f"http://127.0.0.1:{self.port}{READINESS_PATH}"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> int | None:
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode


def _wait_caught_up(
    worker: WorkerProcess, watched: Sequence[str], expected: dict[str, int]
) -> list[tuple[str, dict[str, str], float]]:
    """Poll /metrics until the worker has handled every event published to the watched topics."""
    samples: list[tuple[str, dict[str, str], float]] = []

    def caught_up() -> bool:
        nonlocal samples
        try:
            samples = parse_samples(fetch_metrics(worker.port))
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


def _topic_for(event: dict[str, Any], topics: Any) -> str:
    return {
        "cost": topics.cost,
        "volume": topics.volume,
        "budget": topics.budget,
        "period_close": topics.period_close,
    }[event["type"]]


def publish_events(
    bootstrap_servers: str, events: Sequence[dict[str, Any]], topics: Any
) -> dict[str, int]:
    """Send events with ``services.publish`` (acks=all, flushed and confirmed); count per topic."""
    from services import publish

    by_topic: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_topic.setdefault(_topic_for(event, topics), []).append(event)
    sent: dict[str, int] = {}
    for topic, batch in by_topic.items():
        sent[topic] = publish.send_events(bootstrap_servers, topic, batch)
    return sent


# --- Report ----------------------------------------------------------------------------------


def avdelning_rows(
    samples: Sequence[tuple[str, dict[str, str], float]],
    scenario: Any,
    domain: Any,
    year: int,
    month: int,
) -> list[AvdelningRow]:
    """Budget and actual from the worker's metrics; the periodised budget from the config."""
    from services.scenario import avdelning_of

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
    rows: Sequence[AvdelningRow], year: int, month: int, namnd: str, namnd_id: str = "VON"
) -> Any:
    from rich import box
    from rich.table import Table

    from services.scenario import MONTH_NAMES_SV, format_mnkr, format_number_sv

    table = Table(
        title=f"{namnd}: utfall t.o.m. {MONTH_NAMES_SV[month - 1]} {year} (mnkr)",
        box=box.SIMPLE_HEAD,
        title_justify="left",
    )
    table.add_column("Verksamhet")
    for heading in ("Budget helår", "Periodiserad budget", "Utfall", "Avvikelse", "Avvikelse %"):
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
        table.add_row(
            f"{row.name} ({row.id})",
            format_mnkr(row.budget_full_year),
            format_mnkr(row.budget_ytd),
            format_mnkr(row.actual_ytd),
            format_mnkr(row.deviation),
            format_number_sv(pct),
            style=style,
        )
    return table


def signal_line(rows: Sequence[AvdelningRow], year: int, month: int) -> str:
    from services.scenario import MONTH_NAMES_SV, format_mnkr, format_number_sv

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
    samples: Sequence[tuple[str, dict[str, str], float]],
    scenario: Any,
    domain: Any,
    year: int,
    month: int,
    measure: str = "home_care_hours",
    avdelning: str = "AO",
) -> str:
    """Home-care hours to date against plan: the volume side of the äldreomsorg story."""
    from services.scenario import avdelning_of, format_number_sv

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


def run_demo(data_root: Path, seed: int, console: Any) -> dict[str, list[AvdelningRow]]:
    """Run the demo; returns the printed rows per checkpoint period (``YYYY-MM``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from services.broker import EmbeddedBroker
    from services.config_files import load_domain_config
    from services.scenario import generate_scenario, summary_lines, write_scenario
    from services.settings import Settings

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
    history_year, story_year = scenario.years[0], scenario.years[-1]
    topics = settings.topics()
    results: dict[str, list[AvdelningRow]] = {}

    if settings.kafka_bootstrap_servers:
        console.print(
            "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS är satt, men demon kör alltid mot en egen "
            "inbäddad broker så att dess summor börjar från noll.",
            highlight=False,
        )
    # Not a ``with`` block: an interrupt while the broker starts must still stop it.
    broker = EmbeddedBroker(log_path=demo_dir / "tansu.log")
    worker = WorkerProcess(broker.bootstrap_servers, demo_dir / "worker", demo_dir / "worker.log")
    try:
        broker.start()
        console.print(f"Broker (Tansu) på {broker.bootstrap_servers}", highlight=False)
        worker.start()
        with console.status("Startar budgetvakt worker …"):
            _wait_for(worker.is_ready, WORKER_READY_TIMEOUT_S, "worker ready", worker.check_alive)
        console.print(f"Worker redo: http://127.0.0.1:{worker.port}/metrics", highlight=False)

        def month_events(year: int, month: int) -> list[dict[str, Any]]:
            period = f"{year:04d}-{month:02d}"
            return [
                e
                for e in (*scenario.costs, *scenario.volumes, *scenario.period_closes)
                if e["period"] == period
            ]

        batches: list[tuple[str, list[dict[str, Any]], int | None]] = [
            ("Budgetar", list(scenario.budgets), None),
            (
                f"Historik {history_year}",
                [e for m in range(1, 13) for e in month_events(history_year, m)],
                None,
            ),
        ]
        batches += [(f"{story_year}-{m:02d}", month_events(story_year, m), m) for m in range(1, 13)]
        total_events = sum(len(b) for _, b, _ in batches)
        published = 0
        published_by_topic: dict[str, int] = {}
        # The worker aggregates these; period_close only matters from the snapshot issue on.
        watched = (topics.cost, topics.volume, topics.budget)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("Publicerar", total=total_events)
            for label, events, month in batches:
                progress.update(task, description=f"Publicerar {label}")
                for topic, count in publish_events(
                    broker.bootstrap_servers, events, topics
                ).items():
                    published_by_topic[topic] = published_by_topic.get(topic, 0) + count
                    published += count
                progress.update(task, completed=published)
                if month not in CHECKPOINT_MONTHS:
                    continue
                progress.update(task, description=f"Väntar på worker ({label})")
                samples = _wait_caught_up(worker, watched, published_by_topic)
                rows = avdelning_rows(samples, scenario, domain, story_year, month)
                results[f"{story_year}-{month:02d}"] = rows
                progress.console.print(
                    render_table(rows, story_year, month, domain.org.root.name, domain.org.root.id)
                )
                progress.console.print(signal_line(rows, story_year, month), highlight=False)
                progress.console.print(
                    volume_line(samples, scenario, domain, story_year, month), highlight=False
                )
        console.print(
            f"Publicerade {published} händelser. Underlag och loggar: {demo_dir}",
            highlight=False,
        )
    finally:
        code = worker.stop()
        broker.stop()
        console.print(f"Worker stoppad (kod {code}); broker stoppad.", highlight=False)
    return results


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        data_dir: Annotated[
            Path | None,
            typer.Option(help="Where the demo writes its files (default: BUDGETVAKT_DATA_DIR)."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Scenario seed.")] = 2024,
    ) -> None:
        """Replay two years of a municipality's events through a broker and a worker."""
        from rich.console import Console

        from services.settings import Settings

        console = Console()
        started = time.monotonic()
        with _sigterm_as_interrupt():
            try:
                run_demo(data_dir or Settings().data_dir, seed, console)
            except KeyboardInterrupt:
                console.print("Avbrutet; allt som startades är stoppat.")
                raise typer.Exit(130) from None
        console.print(f"Klart på {time.monotonic() - started:.0f} s.", highlight=False)
