"""A kommun of real size through the workers: time to forecast and to mail per close, memory.

Generates a kommun with ``services.demo.kommun`` (by default 8 nämnder, 1 500 cost centres,
12 kostnadsslag, 4 years: about 18 000 cost-centre × category series) and its configuration,
then starts what a deployment runs, on this machine: the embedded broker, ``--workers`` stream
workers on one consumer group (``budgetvakt worker`` with ``BUDGETVAKT_CONFIG_DIR`` set to the
generated configuration), the notifier, and a local SMTP server that stamps every message on
arrival (``services.demo.receivers.MailCatcher``). ``BUDGETVAKT_ALERTS_FROM`` is the forecast
year's January, as in the demo: the history is a first load that mails nobody.

The replay: all budgets; each history year in bulk (its postings, then every nämnd's twelve
closes); then the forecast year month by month: the month's postings, and once the workers have
counted and forecast them, each nämnd's close in turn. Per close it measures, from the moment
the broker acknowledged the close (acks=all, ``bench.alert_latency.AckClock``):

* **time to forecast**: until the workers have consumed the close, a worker's
  ``/forecasts/status`` lists the period as evaluated by the rules, and every worker's forecast
  is current (its ``state_version`` is the state's); with the forecast runs' own duration from
  the ``budgetvakt_forecast_duration_seconds`` histogram (summed over the workers);
* **close → mail**: until each alert e-mail that carries the alerts this close produced
  arrives (``X-Budgetvakt-Event-Ids``; ``bench.alert_latency.mail_samples``); the bench waits
  for the notifier to deliver a close's alerts before the next close, so closes do not queue
  behind each other's mail;
* **where a close's time to its mail goes**: stage by stage from the worker's and the notifier's
  log lines (``forecast_woken_by_close``, ``forecast_close_run`` with the run's phases,
  ``alert_round_fetched``, ``notification_sent``): the close consumed, the pass planned, the
  nämnd's forecasts ready, its alerts on the topic, fetched by the notifier, the digest window,
  the mails sent and received; and what the run does after the alerts (forecast events, snapshot);
* **memory**: every worker's process tree (the worker and its forecast-pool children) read
  from ``/proc`` twice a second: the peak of the summed RSS (shared pages of a forked child
  count twice: an upper bound), and the sum of each process's own peak (``VmHWM``).

    .venv/bin/python bench/kommun_size.py                       # 8 nämnder, 1 500, 4 years
    .venv/bin/python bench/kommun_size.py --namnder 3 --cost-centres 150 --years 2
    .venv/bin/python bench/kommun_size.py --workers 3 --json out.json
    .venv/bin/python -m bench.kommun_size --tiny                # smoke: 2 nämnder, 3 months

The bench polls the workers every 50 ms for only the counters it needs (``/metrics?name[]=``):
the whole exposition of a worker at 500 cost centres is ≈ 9 MB and took ≈ 1 s of the worker's
event loop, so polling it delayed the very closes the bench measured.

Everything started is stopped, also on errors and Ctrl-C; files go to a temporary directory
that is removed after a successful run (kept on failure, or with ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.alert_latency import (  # noqa: E402
    AckClock,
    Trigger,
    alert_topic_times,
    mail_samples,
    percentile_row,
)
from bench.machine import describe  # noqa: E402

TARGET_P99_S = 2.0
TARGET_MEMORY_MIB = 1024.0
MEMORY_SAMPLE_S = 0.5
POLL_S = 0.05


@dataclass
class CloseRecord:
    """One nämnd's close of one month of the forecast year."""

    namnd: str
    period: str
    trigger: Trigger
    forecast_s: float = 0.0  # close acked → evaluated and every worker's forecast current
    forecast_runs: float = 0.0  # forecast runs the workers made meanwhile
    forecast_run_s: float = 0.0  # and their summed duration
    mails: list[float] = field(default_factory=list)  # close acked → each of its mails
    stages: dict[str, float] = field(default_factory=dict)  # where the time to its mail went


# --- /proc ----------------------------------------------------------------------------------


def _proc_tree(root: int) -> list[int]:
    """``root`` and every process below it (the forecast pool's children)."""
    parent_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: fields follow the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        parent_of[int(entry)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        kids = [pid for pid, ppid in parent_of.items() if ppid in frontier]
        tree += kids
        frontier = kids
    return tree


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemoryWatch:
    """Samples the RSS of each worker's process tree in a thread; keeps the peaks."""

    def __init__(self, pids: Callable[[], Sequence[int | None]]) -> None:
        self._pids = pids
        self.peak_rss_kib: dict[int, int] = {}  # worker index → peak of the summed RSS
        self.peak_hwm_kib: dict[int, dict[int, int]] = {}  # worker index → pid → VmHWM
        self.processes: dict[int, int] = {}  # worker index → most processes in its tree
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def sample(self) -> None:
        for index, root in enumerate(self._pids()):
            if root is None:
                continue
            tree = _proc_tree(root)
            rss = sum(_status_kib(pid, "VmRSS") for pid in tree)
            self.peak_rss_kib[index] = max(self.peak_rss_kib.get(index, 0), rss)
            self.processes[index] = max(self.processes.get(index, 0), len(tree))
            hwm = self.peak_hwm_kib.setdefault(index, {})
            for pid in tree:
                hwm[pid] = max(hwm.get(pid, 0), _status_kib(pid, "VmHWM"))

    def _run(self) -> None:
        while not self._stop.wait(MEMORY_SAMPLE_S):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def per_worker_mib(self) -> list[dict[str, float]]:
        return [
            {
                "peak_rss_mib": self.peak_rss_kib.get(i, 0) / 1024,
                "sum_of_peaks_mib": sum(self.peak_hwm_kib.get(i, {}).values()) / 1024,
                "processes": self.processes.get(i, 0),
            }
            for i in sorted(self.peak_rss_kib)
        ]


# --- The workers' state ------------------------------------------------------------------------


def _mentions(value: Any, text: str) -> bool:
    """Whether a status field (a list, or per nämnd a mapping of lists) names ``text``."""
    if isinstance(value, str):
        return text in value
    if isinstance(value, Mapping):
        return any(_mentions(k, text) or _mentions(v, text) for k, v in value.items())
    if isinstance(value, Iterable):
        return any(_mentions(v, text) for v in value)
    return False


SCRAPE_TIMEOUT_S = 120.0
#: What the bench polls (every POLL_S): only these are rendered. The whole /metrics of a worker
#: at 500 cost centres is ≈ 9 MB (every forecast gauge), ≈ 1 s of its event loop per scrape,
#: and polling it made the measuring itself delay the closes it measures.
POLLED_METRICS = (
    "budgetvakt_events_total",
    "budgetvakt_forecast_duration_seconds_count",
    "budgetvakt_forecast_duration_seconds_sum",
)


class Workers:
    """The worker processes seen as one: events counted, forecasts current, histogram sums."""

    def __init__(self, processes: Sequence[Any], watched: Sequence[str]) -> None:
        self.processes = processes
        self.watched = watched
        self.slowest_scrape_s = 0.0

    def check_alive(self) -> None:
        for process in self.processes:
            process.check_alive()

    def samples(self) -> list[list[Any]]:
        """Every worker's /metrics. A worker busy counting a bulk load can leave its event loop
        (and so /metrics) unanswered for several seconds at full size: that is measured, not a
        failure, so a scrape waits up to SCRAPE_TIMEOUT_S and the slowest is noted."""
        from services.processes.scrape import scrape

        out = []
        for process in self.processes:
            started = time.monotonic()
            out.append(scrape(process.port, timeout_s=SCRAPE_TIMEOUT_S, names=POLLED_METRICS))
            self.slowest_scrape_s = max(self.slowest_scrape_s, time.monotonic() - started)
        return out

    def statuses(self) -> list[dict[str, Any]]:
        from services.demo.run import forecast_status

        return [
            forecast_status(process.port, timeout_s=SCRAPE_TIMEOUT_S) for process in self.processes
        ]

    def counted(self, published: Mapping[str, int]) -> bool:
        from services.demo.run import events_seen

        every = self.samples()
        return all(
            sum(events_seen(samples, topic) for samples in every) >= published.get(topic, 0)
            for topic in self.watched
        )

    def current(self, period: str | None = None) -> bool:
        """Every worker has forecast its whole state; with ``period``, a worker also evaluated
        the rules at that period (or the period is before BUDGETVAKT_ALERTS_FROM)."""
        statuses = self.statuses()
        if any(s["state_version"] != s["current_state_version"] for s in statuses):
            return False
        if period is None:
            return True
        return any(
            _mentions(s.get("evaluated"), period) or period < str(s.get("alerts_from", ""))
            for s in statuses
        )

    def forecast_histogram(self) -> tuple[float, float]:
        from services.processes.scrape import sum_metric

        count = total = 0.0
        for samples in self.samples():
            count += sum_metric(samples, "budgetvakt_forecast_duration_seconds_count")
            total += sum_metric(samples, "budgetvakt_forecast_duration_seconds_sum")
        return count, total


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, workers: Workers) -> None:
    """Until ``condition`` holds (a worker's HTTP hiccup counts as not yet); a UserError naming
    ``what`` after ``timeout_s``, or at once when a worker died."""
    from core.errors import UserError
    from services.processes.supervised import wait_until

    def check() -> bool:
        workers.check_alive()
        try:
            return condition()
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            return False

    try:
        wait_until(check, timeout_s, what, interval_s=POLL_S)
    except TimeoutError:
        raise UserError(f"bench: {what} did not happen within {timeout_s:.0f} s") from None


# --- Where a close's time goes (the processes' logs) -----------------------------------------

#: The stages of a close, each from the end of the one before (the first from the close's ack),
#: as the worker's and the notifier's log lines stamp them (``forecast_woken_by_close``,
#: ``forecast_close_run``, ``alert_round_fetched``, ``notification_sent``).
STAGES = (
    ("consumed", "ack → the worker's forecast loop woken by the close (fetch, batch, apply)"),
    ("planned", "→ the pass planned (owners grouped, caches compared)"),
    ("turn", "→ the nämnd's turn in the pass"),
    ("results", "→ its forecasts ready (the pool, or the cache)"),
    ("alerts", "→ alerts evaluated and stored on the topic"),
    ("fetched", "→ the notifier has the first alert"),
    ("round", "→ its round closed (digest window)"),
    ("sent", "→ the last of the close's mails sent (render, SMTP)"),
    ("received", "→ the catcher has it"),
)
AFTER_ALERTS = (
    ("forecasts", "after the alerts: forecast events published"),
    ("snapshots", "then the snapshot written"),
)


def log_lines(path: Path, events: Iterable[str]) -> list[tuple[float, dict[str, Any]]]:
    """(timestamp, record) of each JSON log line of ``path`` whose event is in ``events``."""
    from datetime import datetime

    wanted = set(events)
    out: list[tuple[float, dict[str, Any]]] = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        start = line.find("{")  # Faust's logging puts its own prefix before the JSON
        if start < 0 or '"event"' not in line:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if record.get("event") in wanted and "timestamp" in record:
            stamp = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
            out.append((stamp.timestamp(), record))
    return out


def close_stages(record: CloseRecord, worker_logs: Sequence[Path], notifier_log: Path) -> None:
    """Fill ``record.stages`` (stage → seconds) from the logs; stages not found stay out."""
    acked = record.trigger.acked_at
    ids = set(record.trigger.alert_event_ids)
    if not record.mails or not ids:
        return
    woken = runs = []
    for path in worker_logs:
        lines = log_lines(path, ("forecast_woken_by_close", "forecast_close_run"))
        woken = woken + [t for t, r in lines if r["event"] == "forecast_woken_by_close"]
        runs = runs + [
            r
            for _, r in lines
            if r["event"] == "forecast_close_run" and r.get("owner") == record.namnd
        ]
    notifier = log_lines(notifier_log, ("alert_round_fetched", "notification_sent"))
    marks: dict[str, float] = {}
    marks["consumed"] = min((t for t in woken if t >= acked), default=float("nan"))
    after_ack = [r for r in runs if r.get("at_alerts", 0) >= acked]
    run = min(after_ack, key=lambda r: r["at_alerts"], default={})
    for name in ("planned", "turn", "results", "alerts", "forecasts", "snapshots"):
        marks[name] = float(run.get(f"at_{name}", "nan"))
    rounds = [(t, r) for t, r in notifier if r["event"] == "alert_round_fetched"]
    # The notifier may have the first alerts before the run has stored the last (a stage < 0).
    first = min(
        ((t, r) for t, r in rounds if r["first_at"] >= marks["results"]),
        key=lambda tr: tr[1]["first_at"],
        default=None,
    )
    if first is not None:
        marks["fetched"], marks["round"] = float(first[1]["first_at"]), first[0]
    sent = [
        t
        for t, r in notifier
        if r["event"] == "notification_sent" and ids & set(r.get("event_ids", ()))
    ]
    marks["sent"] = max(sent, default=float("nan"))
    marks["received"] = acked + max(record.mails)
    before = acked
    for name, _ in STAGES:
        at = marks.get(name, float("nan"))
        if at == at:  # not NaN
            record.stages[name] = at - before
            before = at
    after = marks["alerts"]
    for name, _ in AFTER_ALERTS:
        if marks[name] == marks[name] and after == after:
            record.stages[name] = marks[name] - after
            after = marks[name]


# --- The run ----------------------------------------------------------------------------------


def generate(args: argparse.Namespace, scenario_dir: Path) -> tuple[Any, float]:
    from core.settings import Settings
    from services.config.domain import load_domain_config
    from services.demo.kommun import build_kommun, write_kommun_config
    from services.demo.scenario import generate_from_design

    started = time.perf_counter()
    kommun = build_kommun(args.namnder, args.cost_centres, args.seed)
    config_dir = scenario_dir / "config"
    write_kommun_config(
        kommun,
        config_dir,
        Settings().config_dir,
        {"namnder": args.namnder, "cost_centres": args.cost_centres, "seed": args.seed},
    )
    domain = load_domain_config(config_dir)
    scenario = generate_from_design(kommun.design, domain, args.seed, None, args.years)
    return scenario, time.perf_counter() - started


def run(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    from core.errors import UserError
    from core.settings import Settings
    from services.demo.receivers import MailCatcher
    from services.demo.run import NOTIFIER_GROUP, AlertFeed, publish_events, service_process
    from services.processes.broker import EmbeddedBroker

    scenario, generate_s = generate(args, work_dir / "scenario")
    series = len(scenario.cost_budget(scenario.years[-1]))
    print(
        f"kommun: {args.namnder} nämnder, {args.cost_centres} cost centres, {series} cost "
        f"series a year, {len(scenario.years)} years ({len(scenario.costs):,} cost, "
        f"{len(scenario.volumes):,} volume, {len(scenario.budgets):,} budget events, "
        f"{len(scenario.period_closes)} closes), generated in {generate_s:.1f} s (the "
        "configuration written and loaded back, the events in memory)",
        flush=True,
    )
    history_years, story_year = scenario.years[:-1], scenario.years[-1]
    namnder = list(dict.fromkeys(e["org_unit"] for e in scenario.period_closes))
    env = {
        "BUDGETVAKT_CONFIG_DIR": str(work_dir / "scenario" / "config"),
        "BUDGETVAKT_ALERTS_FROM": f"{story_year}-01",
        **args.extra_env,
    }
    topics = Settings().topics()
    watched = (topics.cost, topics.volume, topics.budget, topics.period_close)
    broker = EmbeddedBroker(log_path=work_dir / "tansu.log")
    mail = MailCatcher()
    worker_processes = [
        service_process(
            "worker",
            broker.bootstrap_servers,
            work_dir / f"worker-{i}",
            work_dir / f"worker-{i}.log",
            env=env,
        )
        for i in range(args.workers)
    ]
    notifier = service_process(
        "notifier",
        broker.bootstrap_servers,
        work_dir / "notifier",
        work_dir / "notifier.log",
        env={
            **env,
            "BUDGETVAKT_SMTP_PORT": str(mail.port),
            "BUDGETVAKT_NOTIFIER_GROUP_ID": NOTIFIER_GROUP,
        },
    )
    workers = Workers(worker_processes, watched)
    memory = MemoryWatch(lambda: [p.pid for p in worker_processes])
    feed: AlertFeed | None = None
    clock: AckClock | None = None
    started: list[Any] = []
    closes: list[CloseRecord] = []
    emitted_at: dict[str, float] = {}
    other_alerts = 0
    warming: dict[str, int] = {}
    published: dict[str, int] = {}
    phases: dict[str, float] = {}
    timeout = args.wait_timeout_s
    try:
        broker.start()
        started.append(broker)
        mail.start()
        started.append(mail)
        for process in worker_processes:
            process.start(wait=False)
        notifier.start(wait=False)
        for process in (*worker_processes, notifier):
            process.wait_ready()
        memory.start()
        feed = AlertFeed(broker.bootstrap_servers, topics.alert)
        clock = AckClock(broker.bootstrap_servers)

        def publish(events: Sequence[dict[str, Any]]) -> None:
            for topic, n in publish_events(broker.bootstrap_servers, events, topics).items():
                published[topic] = published.get(topic, 0) + n

        def settle(what: str, period: str | None = None) -> None:
            wait_for(lambda: workers.counted(published), timeout, f"{what}: counted", workers)
            wait_for(partial(workers.current, period), timeout, f"{what}: forecast", workers)

        def collect(record: CloseRecord | None) -> None:
            nonlocal other_alerts
            assert feed is not None
            for alert in feed.new():
                emitted_at[alert.event_id] = alert.emitted_at.timestamp()
                if alert.status == "improved":
                    other_alerts += 1  # held for the recipient's next digest on purpose
                elif record is not None and alert.emitted_at.timestamp() >= record.trigger.acked_at:
                    record.trigger.alert_event_ids.append(alert.event_id)
                else:
                    other_alerts += 1

        def wait_delivered() -> None:
            wait_for(
                lambda: feed is not None and feed.delivered_by(NOTIFIER_GROUP),
                timeout,
                "notifications delivered",
                workers,
            )

        def idle(next_period: str) -> None:
            """The quiet weeks between a month's closes and the next month's postings, cut
            short: until every nämnd's next month is warmed (or ``--idle-s`` passed)."""
            mark = time.monotonic()

            def warmed() -> bool:
                done = {w for s in workers.statuses() for w in s.get("warmed", [])}
                return all(f"{n} {next_period}" in done for n in namnder)

            try:
                wait_for(warmed, args.idle_s, f"{next_period} warmed", workers)
                what = "every nämnd warmed"
            except UserError:
                what = "not every nämnd warmed"
            waited = time.monotonic() - mark
            phases[f"idle_before_{next_period}_s"] = waited
            print(f"idle before {next_period}: {waited:.1f} s ({what})", flush=True)

        by_period: dict[str, list[dict[str, Any]]] = {}
        for event in (*scenario.costs, *scenario.volumes):
            by_period.setdefault(event["period"], []).append(event)

        mark = time.monotonic()
        publish(scenario.budgets)
        settle("budgets")
        phases["budgets_s"] = time.monotonic() - mark
        for year in history_years:
            mark = time.monotonic()
            publish([e for m in range(1, 13) for e in by_period.get(f"{year}-{m:02d}", [])])
            settle(f"{year} postings")
            publish([e for e in scenario.period_closes if e["period"][:4] == str(year)])
            settle(f"{year} closes")
            phases[f"history_{year}_s"] = time.monotonic() - mark
            print(f"{year}: loaded in bulk in {phases[f'history_{year}_s']:.1f} s", flush=True)
        collect(None)
        for month in range(1, args.months + 1):
            period = f"{story_year}-{month:02d}"
            mark = time.monotonic()
            publish(by_period.get(period, []))
            settle(f"{period} postings")
            postings_s = time.monotonic() - mark
            collect(None)
            notes = []
            for close in (e for e in scenario.period_closes if e["period"] == period):
                record = CloseRecord(
                    close["org_unit"], period, Trigger("close", period, close["event_id"], 0.0)
                )
                runs_before, seconds_before = workers.forecast_histogram()
                clock.send(topics.period_close, close, record.trigger)
                published[topics.period_close] = published.get(topics.period_close, 0) + 1
                wait_for(
                    lambda: workers.counted(published), timeout, f"{period} close counted", workers
                )
                wait_for(
                    partial(workers.current, period),
                    timeout,
                    f"{period} {record.namnd} close forecast",
                    workers,
                )
                record.forecast_s = time.time() - record.trigger.acked_at
                runs_after, seconds_after = workers.forecast_histogram()
                record.forecast_runs = runs_after - runs_before
                record.forecast_run_s = seconds_after - seconds_before
                collect(record)
                if record.trigger.alert_event_ids:
                    wait_delivered()
                closes.append(record)
                notes.append(
                    f"{record.namnd} {record.forecast_s:.1f} s/"
                    f"{len(record.trigger.alert_event_ids)}"
                )
            print(
                f"{period}: postings {postings_s:.1f} s; close → forecast s/alert changes: "
                + ", ".join(notes),
                flush=True,
            )
            if args.idle_s and month < args.months:
                idle(f"{story_year}-{month + 1:02d}")
        wait_delivered()
        collect(None)
        memory.sample()
        final = workers.statuses()
        warming = {
            "warmed": sum(len(s.get("warmed", [])) for s in final),
            "given_way": sum(int(s.get("warm_given_way", 0)) for s in final),
        }
    finally:
        memory.stop()
        stoppers: list[Callable[[], object]] = [c.close for c in (clock, feed) if c is not None]
        stoppers += [notifier.stop, *(p.stop for p in worker_processes)]
        stoppers += [part.stop for part in reversed(started)]
        for stop in stoppers:
            try:
                stop()
            except Exception as err:  # report and go on stopping the rest
                print(f"warning: stopping failed: {type(err).__name__}: {err}", file=sys.stderr)

    on_topic_at: dict[str, float] = {}
    for i in range(args.workers):
        on_topic_at.update(alert_topic_times(work_dir / f"worker-{i}.log"))
    samples, unmatched = mail_samples(
        mail.mails, [c.trigger for c in closes], emitted_at, on_topic_at
    )
    by_trigger = {c.trigger.event_id: c for c in closes}
    for sample in samples:
        by_trigger[sample.trigger_event_id].mails.append(sample.total_s)
    worker_logs = [work_dir / f"worker-{i}.log" for i in range(args.workers)]
    for close in closes:
        close_stages(close, worker_logs, work_dir / "notifier.log")
    return {
        "closes": closes,
        "mails": len(mail.mails),
        "mails_unmatched": unmatched,
        "alerts_other": other_alerts,
        "memory": memory.per_worker_mib(),
        "slowest_scrape_s": workers.slowest_scrape_s,
        "warming": warming,
        "phases": phases,
        "generate_s": generate_s,
        "namnder": namnder,
        "series_per_year": series,
    }


def summarise(closes: Sequence[CloseRecord]) -> dict[str, Any]:
    with_mail = [c for c in closes if c.mails]
    return {
        "forecast_s": percentile_row([c.forecast_s for c in closes]),
        "forecast_run_s": percentile_row([c.forecast_run_s for c in closes if c.forecast_runs]),
        "mail_s": percentile_row([m for c in with_mail for m in c.mails]),
        "last_mail_per_close_s": percentile_row([max(c.mails) for c in with_mail]),
        "stages_s": {
            name: percentile_row([c.stages[name] for c in with_mail if name in c.stages])
            for name, _ in (*STAGES, *AFTER_ALERTS)
        },
    }


def format_row(name: str, row: Mapping[str, float | int], width: int = 40) -> str:
    if not row.get("count"):
        return f"  {name:<{width}} {0:>5}"
    return (
        f"  {name:<{width}} {row['count']:>5} {row['p50']:>8.2f} {row['p90']:>8.2f} "
        f"{row['p99']:>8.2f} {row['max']:>8.2f}"
    )


def print_report(result: Mapping[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    closes: list[CloseRecord] = result["closes"]
    print(f"{'close':<13} {'forecast s':>10} {'runs':>5} {'run s':>7} {'alerts':>6} "
          f"{'mails':>5} {'mail p50':>8} {'last mail':>9}")  # fmt: skip
    for c in closes:
        p50 = f"{percentile_row(c.mails)['p50']:.2f}" if c.mails else "-"
        last = f"{max(c.mails):.2f}" if c.mails else "-"
        print(
            f"{c.period} {c.namnd:<5} {c.forecast_s:>10.2f} {c.forecast_runs:>5.0f} "
            f"{c.forecast_run_s:>7.2f} {len(c.trigger.alert_event_ids):>6} {len(c.mails):>5} "
            f"{p50:>8} {last:>9}"
        )
    summary = summarise(closes)
    with_mail = sum(1 for c in closes if c.mails)
    print(
        f"summary: {len(closes)} closes, {with_mail} with mail; {result['mails']} e-mails "
        f"received ({result['mails_unmatched']} not from a measured close); "
        f"{result['alerts_other']} alert events outside a close"
    )
    print(f"  {'seconds':<40} {'count':>5} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    print(format_row("close acked → forecast current", summary["forecast_s"]))
    print(format_row("  forecast runs' own duration", summary["forecast_run_s"]))
    print(format_row("close acked → alert e-mail received", summary["mail_s"]))
    print(format_row("  per close, its last e-mail", summary["last_mail_per_close_s"]))
    print("  where a close's time to its last e-mail goes (closes with mail, from the logs)")
    print(f"  {'stage, seconds':<72} {'count':>5} {'p50':>8} {'p90':>8} {'p99':>8} {'max':>8}")
    for name, label in (*STAGES, *AFTER_ALERTS):
        print(format_row(label, summary["stages_s"][name], width=72))
    for i, mem in enumerate(result["memory"]):
        print(
            f"worker {i}: peak RSS {mem['peak_rss_mib']:.0f} MiB (worker and forecast pool, "
            f"{mem['processes']} processes), sum of per-process peaks "
            f"{mem['sum_of_peaks_mib']:.0f} MiB"
        )
    print(f"slowest /metrics answer of a worker: {result['slowest_scrape_s']:.1f} s")
    warming = result.get("warming", {})
    print(
        f"caches warmed while idle: {warming.get('warmed', 0)} nämnd-months, "
        f"{warming.get('given_way', 0)} warm-ups gave way to a close"
    )
    p99 = summary["mail_s"].get("p99")
    if p99 is not None:
        verdict = "met" if p99 <= TARGET_P99_S else "NOT met"
        print(f"target p99 close → mail ≤ {TARGET_P99_S:g} s: {verdict} (p99 {p99:.2f} s)")
    peak = max((m["peak_rss_mib"] for m in result["memory"]), default=0.0)
    verdict = "met" if peak <= TARGET_MEMORY_MIB else "NOT met"
    print(f"target ≤ {TARGET_MEMORY_MIB:.0f} MiB per worker: {verdict} (peak {peak:.0f} MiB)")
    return summary


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namnder", type=int, default=8, help="nämnder (1–8)")
    parser.add_argument("--cost-centres", type=int, default=1500, help="cost centres in all")
    parser.add_argument("--years", type=int, default=4, help="years, the forecast year included")
    parser.add_argument("--months", type=int, default=12, help="months of the forecast year")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (one group)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument(
        "--wait-timeout-s",
        type=float,
        default=900.0,
        help="the longest wait for any one step (counting, forecasting, delivering)",
    )
    parser.add_argument(
        "--forecast-interval-s", type=float, help="set BUDGETVAKT_FORECAST_INTERVAL_S"
    )
    parser.add_argument(
        "--digest-window-s", type=float, help="set BUDGETVAKT_NOTIFIER_DIGEST_WINDOW_S"
    )
    parser.add_argument(
        "--idle-s",
        type=float,
        default=0.0,
        help="after each month's closes, wait until every nämnd's next month is warmed, at "
        "most this long (the weeks before the next postings; 0: no wait)",
    )
    parser.add_argument("--json", type=Path, help="write the figures and every close here")
    parser.add_argument("--keep", action="store_true", help="keep the logs and data")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a smoke run: 2 nämnder, 24 cost centres, 2 years, 3 months of the last",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.namnder, args.cost_centres, args.years, args.months = 2, 24, 2, 3
    if not 1 <= args.months <= 12:
        parser.error("--months must be between 1 and 12")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.years < 2:
        parser.error("--years must be at least 2 (history, then the forecast year)")
    args.extra_env = {}
    if args.forecast_interval_s is not None:
        args.extra_env["BUDGETVAKT_FORECAST_INTERVAL_S"] = str(args.forecast_interval_s)
    if args.digest_window_s is not None:
        args.extra_env["BUDGETVAKT_NOTIFIER_DIGEST_WINDOW_S"] = str(args.digest_window_s)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    from core.errors import UserError
    from services.demo.run import _sigterm_as_interrupt

    os.environ.update(args.extra_env)  # what the children will use
    from core.settings import Settings
    from services.notifier.settings import NotifierSettings

    print(f"machine: {describe()}")
    print(
        f"settings: {args.namnder} nämnder, {args.cost_centres} cost centres, {args.years} "
        f"years (the last one month by month, {args.months} months), {args.workers} worker(s), "
        f"seed {args.seed}, forecast interval {Settings().forecast_interval_s:g} s, digest "
        f"window {NotifierSettings().digest_window_s:g} s, model {Settings().forecast_model}, "
        f"warming while idle {Settings().forecast_warm_while_idle}, idle up to {args.idle_s:g} s "
        "after a month's closes",
        flush=True,
    )
    work_dir = Path(tempfile.mkdtemp(prefix="bench-kommun-size-"))
    ok = False
    started = time.monotonic()
    try:
        with _sigterm_as_interrupt():
            result = run(args, work_dir)
        ok = True
    except UserError as err:
        sys.exit(f"failed: {err} (logs in {work_dir})")
    except KeyboardInterrupt:
        sys.exit(f"interrupted; everything started is stopped (logs in {work_dir})")
    finally:
        if ok and not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    print(f"run: {time.monotonic() - started:.0f} s wall")
    summary = print_report(result, args)
    if args.json:
        document = {
            "machine": describe(),
            "command": " ".join(sys.argv),
            "settings": {k: v for k, v in vars(args).items() if k not in ("json",)},
            "summary": summary,
            **{k: v for k, v in result.items() if k != "closes"},
            "closes": [{**asdict(c), "trigger": asdict(c.trigger)} for c in result["closes"]],
        }
        args.json.write_text(
            json.dumps(document, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
        )
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
