"""Alert latency: an event published → the alert e-mail received by the SMTP server.

Starts what ``budgetvakt demo`` starts (``services.demo.run``): the embedded Tansu broker, one
``budgetvakt worker`` and one ``budgetvakt notifier`` process, a local SMTP server
(``services.demo.receivers.MailCatcher``, which stamps every message with ``time.time()`` on
arrival) and the local webhook receiver. The load is the demo's: the scenario
(``services.demo.scenario.generate_scenario``) replayed the way the demo replays it — budgets, then
both years month by month, each month's postings, and once the worker has counted them the
month's period close, then straight on to the next month.

Rules are evaluated when a month is closed (``streams.forecasting``), so the event that makes an
alert visible is the period close. Two kinds of measurement, each from the moment the broker
acknowledged the trigger (acks=all; the producer's ack callback notes ``time.time()``) to the
moment each resulting e-mail was received:

* **closes**: every month close whose evaluation changed an alert's state, both years;
* **probes**: in a few months of the last year, once that month's close and its e-mails are
  done, a mis-booking of ``PROBE_AMOUNT_SEK`` on the substitutes of ``PROBE_UNIT`` (a unit with
  no designed overrun) into the closed month, and after its e-mails its correction posting.

Alerts with status ``improved`` are not measured: the notifier holds them for the recipient's
next digest on purpose (``services.notifier.engine``), so a digest that carries one is timed
from the trigger of its other alerts.

A mail belongs to the trigger of the alerts its ``X-Budgetvakt-Event-Ids`` header names
(``services.notifier.render.EVENT_IDS_HEADER``); alerts come from the alert topic
(``services.demo.run.AlertFeed``) and are attributed to the trigger after which they appeared. Each
mail's latency is split at the alerts' ``emitted_at`` (the worker's forecast run that evaluated
the rules) and at the moment the worker had the mail's last alert acknowledged on the alert topic
(its ``alert_firing``/``alert_resolved`` log line, written after the flush):

    trigger acked → alert emitted_at   worker: consume, debounce tick, forecast, rule evaluation
    emitted_at → alert on the topic    worker: publish changed forecasts, then each alert flushed
    on the topic → mail received       notifier: fetch, digest window, render, SMTP

    .venv/bin/python bench/alert_latency.py [--seed N] [--json out.json]
    .venv/bin/python bench/alert_latency.py --digest-window-s 0.1 --forecast-interval-s 0.2
    .venv/bin/python -m bench.alert_latency --tiny   # a smoke run: 3 months of each year

Without the two options the worker and the notifier use their settings (the environment, else
the defaults: ``BUDGETVAKT_FORECAST_INTERVAL_S`` 0.5 s, ``BUDGETVAKT_NOTIFIER_DIGEST_WINDOW_S``
0.5 s); the values used are printed. Everything started is stopped, also on errors and Ctrl-C;
files go to a temporary directory that is removed after a successful run (kept on failure, or
with ``--keep``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402

TARGET_P99_S = 2.0
PROBE_UNIT = "2120"  # Daglig verksamhet: substitutes ≈ 4,5 mnkr a year, no designed overrun
PROBE_CATEGORY = "substitutes"
PROBE_AMOUNT_SEK = 2_500_000
DEFAULT_PROBE_MONTHS = (2, 5, 8, 11)
WORKER_ALERT_LOG_EVENTS = ("alert_firing", "alert_resolved")


@dataclass
class Trigger:
    """An event whose broker acknowledgement starts the clock."""

    kind: str  # "close", "probe_misbooking" or "probe_correction"
    period: str
    event_id: str
    sent_at: float
    acked_at: float = 0.0
    # The worker's last forecast run was behind its state when the trigger was sent: it was
    # still forecasting what came before (the month's postings), and the trigger waits for that.
    worker_busy: bool | None = None
    alert_event_ids: list[str] = field(default_factory=list)


@dataclass
class MailSample:
    kind: str
    period: str
    trigger_event_id: str
    worker_busy: bool | None
    recipients: list[str]
    alerts: int
    total_s: float
    worker_eval_s: float  # trigger acked → emitted_at
    worker_publish_s: float | None  # emitted_at → the mail's last alert acked on the topic
    notifier_s: float | None  # that → mail received


class AckClock:
    """A kafka-python producer kept open for the whole run; notes when each send was acked."""

    def __init__(self, bootstrap_servers: str) -> None:
        from kafka import KafkaProducer

        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            linger_ms=0,
            retries=5,
            max_in_flight_requests_per_connection=1,
        )
        self._lock = threading.Lock()

    def send(self, topic: str, event: Mapping[str, Any], trigger: Trigger) -> None:
        def on_ack(_: Any) -> None:
            with self._lock:
                trigger.acked_at = time.time()

        value = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        trigger.sent_at = time.time()
        future = self.producer.send(topic, key=str(event["org_unit"]).encode(), value=value)
        future.add_callback(on_ack)
        self.producer.flush()
        future.get(timeout=30)
        with self._lock:
            if not trigger.acked_at:  # the callback runs before get() returns; be sure anyway
                trigger.acked_at = time.time()

    def close(self) -> None:
        self.producer.close(timeout=10)


def percentile_row(values: Sequence[float]) -> dict[str, float | int]:
    import numpy as np

    if not values:
        return {"count": 0}
    data = np.asarray(values, dtype=float)
    return {
        "count": int(data.size),
        "p50": float(np.percentile(data, 50)),
        "p90": float(np.percentile(data, 90)),
        "p99": float(np.percentile(data, 99)),
        "max": float(data.max()),
    }


def alert_topic_times(log_path: Path) -> dict[str, float]:
    """event_id → when the worker had the alert acknowledged on the alert topic.

    The worker logs ``alert_firing``/``alert_resolved`` with the alert_id after the alert's
    flush; the n-th line of an alert_id is its sequence n (``event_id = alert_id@n``) because
    the bench's worker starts on an empty alert topic and runs once."""
    seen: dict[str, int] = {}
    out: dict[str, float] = {}
    if not log_path.exists():
        return out
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        start = line.find("{")  # Faust's logging puts its own prefix before the JSON
        if start < 0:
            continue
        try:
            record = json.loads(line[start:])
        except ValueError:
            continue
        if record.get("event") not in WORKER_ALERT_LOG_EVENTS or "alert_id" not in record:
            continue
        alert_id = str(record["alert_id"])
        seen[alert_id] = seen.get(alert_id, 0) + 1
        stamp = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
        out[f"{alert_id}@{seen[alert_id]}"] = stamp.timestamp()
    return out


def mail_samples(
    mails: Iterable[Any],
    triggers: Sequence[Trigger],
    emitted_at: Mapping[str, float],
    on_topic_at: Mapping[str, float],
) -> tuple[list[MailSample], int]:
    """One sample per received mail that carries a measured trigger's alerts; also the number of
    mails that carried none (alerts outside any measured trigger)."""
    from services.notifier.render import EVENT_IDS_HEADER

    trigger_of = {eid: t for t in triggers for eid in t.alert_event_ids}
    samples: list[MailSample] = []
    unmatched = 0
    for mail in mails:
        ids = [eid for eid in str(mail.message[EVENT_IDS_HEADER] or "").split() if eid]
        measured = [eid for eid in ids if eid in trigger_of]
        if not measured:
            unmatched += 1
            continue
        # A digest could mix two triggers' alerts: count it from the earliest (the longer wait).
        trigger = min((trigger_of[eid] for eid in measured), key=lambda t: t.acked_at)
        emitted = max(emitted_at[eid] for eid in measured)
        topic_times = [on_topic_at.get(eid) for eid in measured]
        on_topic = max(t for t in topic_times if t is not None) if all(topic_times) else None
        samples.append(
            MailSample(
                kind=trigger.kind,
                period=trigger.period,
                trigger_event_id=trigger.event_id,
                worker_busy=trigger.worker_busy,
                recipients=list(mail.recipients),
                alerts=len(ids),
                total_s=mail.received_at - trigger.acked_at,
                worker_eval_s=emitted - trigger.acked_at,
                worker_publish_s=None if on_topic is None else on_topic - emitted,
                notifier_s=None if on_topic is None else mail.received_at - on_topic,
            )
        )
    return samples, unmatched


def forecast_run_figures(worker_port: int) -> dict[str, float]:
    """Forecast runs and their mean duration, from the worker's own histogram."""
    from services.processes.scrape import scrape, sum_metric

    samples = scrape(worker_port)
    count = sum_metric(samples, "budgetvakt_forecast_duration_seconds_count")
    total = sum_metric(samples, "budgetvakt_forecast_duration_seconds_sum")
    within = {
        bound: sum_metric(samples, "budgetvakt_forecast_duration_seconds_bucket", le=bound)
        for bound in ("0.5", "1.0")
    }
    return {
        "runs": count,
        "mean_s": total / count if count else 0.0,
        "over_0_5_s": count - within["0.5"],
        "over_1_s": count - within["1.0"],
    }


def run(
    seed: int,
    probe_months: Sequence[int],
    extra_env: Mapping[str, str],
    work_dir: Path,
    months: int = 12,
) -> dict[str, Any]:
    """Replay the scenario's first ``months`` months of each year (all twelve unless a smoke
    run asks for fewer) and measure."""
    from core.settings import Settings
    from services.config.domain import load_domain_config
    from services.demo.receivers import MailCatcher, WebhookCatcher, routing_with_local_webhooks
    from services.demo.run import (
        CATCH_UP_TIMEOUT_S,
        NOTIFIER_GROUP,
        AlertFeed,
        _wait_caught_up,
        _wait_for,
        _wait_forecast,
        forecast_status,
        publish_events,
        service_process,
    )
    from services.demo.scenario import generate_scenario
    from services.processes.broker import EmbeddedBroker

    settings = Settings()
    domain = load_domain_config(settings.config_dir)
    topics = settings.topics()
    scenario = generate_scenario(seed=seed, years=2, domain=domain)  # replays both years
    history_year, story_year = scenario.years[0], scenario.years[-1]

    broker = EmbeddedBroker(log_path=work_dir / "tansu.log")
    mail = MailCatcher()
    hooks = WebhookCatcher()
    worker = service_process(
        "worker",
        broker.bootstrap_servers,
        work_dir / "worker",
        work_dir / "worker.log",
        env=extra_env,
    )
    notifier = service_process(
        "notifier",
        broker.bootstrap_servers,
        work_dir / "notifier",
        work_dir / "notifier.log",
        env={
            **extra_env,
            "BUDGETVAKT_SMTP_PORT": str(mail.port),
            "BUDGETVAKT_NOTIFIER_GROUP_ID": NOTIFIER_GROUP,
            "BUDGETVAKT_NOTIFIER_ROUTING_FILE": str(work_dir / "routing.yaml"),
        },
    )
    feed: AlertFeed | None = None
    clock: AckClock | None = None
    started: list[Any] = []
    triggers: list[Trigger] = []
    emitted_at: dict[str, float] = {}
    other_alerts = 0
    published: dict[str, int] = {}
    watched = (topics.cost, topics.volume, topics.budget, topics.period_close)
    run_started = time.monotonic()
    try:
        broker.start()
        started.append(broker)
        mail.start()
        started.append(mail)
        hooks.start()
        started.append(hooks)
        routing_with_local_webhooks(
            settings.config_dir / "routing.yaml", work_dir / "routing.yaml", hooks
        )
        worker.start(wait=False)
        notifier.start(wait=False)
        for process in (worker, notifier):
            process.wait_ready()
        feed = AlertFeed(broker.bootstrap_servers, topics.alert)
        clock = AckClock(broker.bootstrap_servers)

        def count(sent: Mapping[str, int]) -> None:
            for topic, n in sent.items():
                published[topic] = published.get(topic, 0) + n

        def collect(trigger: Trigger | None) -> int:
            """The alerts that appeared since the last call, to ``trigger`` if they came after
            its ack (the forecast run of a month's postings can evaluate before any close)."""
            nonlocal other_alerts
            assert feed is not None
            fresh = feed.new()
            for alert in fresh:
                emitted_at[alert.event_id] = alert.emitted_at.timestamp()
                if alert.status == "improved":
                    # Deferred by design to the recipient's next digest: not a latency.
                    other_alerts += 1
                elif trigger is not None and alert.emitted_at.timestamp() >= trigger.acked_at:
                    trigger.alert_event_ids.append(alert.event_id)
                else:
                    other_alerts += 1
            return len(fresh)

        def fire(
            trigger: Trigger, topic: str, event: dict[str, Any], year: int, month: int
        ) -> None:
            assert clock is not None
            collect(None)
            status = forecast_status(worker.port)
            trigger.worker_busy = status["state_version"] != status["current_state_version"]
            clock.send(topic, event, trigger)
            triggers.append(trigger)
            count({topic: 1})
            _wait_caught_up(worker, watched, published)
            _wait_forecast(worker, year, month, closed=True)
            collect(trigger)

        def wait_delivered() -> None:
            _wait_for(
                lambda: feed is not None and feed.delivered_by(NOTIFIER_GROUP),
                CATCH_UP_TIMEOUT_S,
                "notifications delivered",
                notifier.check_alive,
            )

        count(publish_events(broker.bootstrap_servers, scenario.budgets, topics))
        for year in (history_year, story_year):
            for month in range(1, months + 1):
                period = f"{year:04d}-{month:02d}"
                postings = [
                    e for e in (*scenario.costs, *scenario.volumes) if e["period"] == period
                ]
                count(publish_events(broker.bootstrap_servers, postings, topics))
                _wait_caught_up(worker, watched, published)
                for close in (e for e in scenario.period_closes if e["period"] == period):
                    fire(
                        Trigger("close", period, close["event_id"], 0.0),
                        topics.period_close,
                        close,
                        year,
                        month,
                    )
                fired = len(triggers[-1].alert_event_ids)
                note = f"{period}: close → {fired} alert changes"
                if year == story_year and month in probe_months:
                    wait_delivered()  # the probe is timed on its own, not behind the close's mail
                    for kind, sign in (("probe_misbooking", 1), ("probe_correction", -1)):
                        event_id = f"bench-{kind}-{PROBE_UNIT}-{period}"
                        probe: dict[str, Any] = {
                            "event_id": event_id,
                            "type": "cost",
                            "org_unit": PROBE_UNIT,
                            "period": period,
                            "category": PROBE_CATEGORY,
                            "amount_sek": sign * PROBE_AMOUNT_SEK,
                        }
                        trigger = Trigger(kind, period, event_id, 0.0)
                        fire(trigger, topics.cost, probe, year, month)
                        if not trigger.alert_event_ids:
                            print(f"warning: the {kind} probe of {period} changed no alert")
                        note += f"; {kind} → {len(trigger.alert_event_ids)}"
                        wait_delivered()
                print(note, flush=True)
        wait_delivered()
        collect(None)
        forecast_runs = forecast_run_figures(worker.port)
        replay_s = time.monotonic() - run_started
    finally:
        # Each part on its own: one that fails to stop must not leave the others running.
        stoppers: list[Callable[[], object]] = [c.close for c in (clock, feed) if c is not None]
        stoppers += [notifier.stop, worker.stop, *(part.stop for part in reversed(started))]
        for stop in stoppers:
            try:
                stop()
            except Exception as err:  # report and go on stopping the rest
                print(f"warning: stopping failed: {type(err).__name__}: {err}", file=sys.stderr)

    samples, unmatched = mail_samples(
        mail.mails, triggers, emitted_at, alert_topic_times(work_dir / "worker.log")
    )
    return {
        "samples": samples,
        "mails": len(mail.mails),
        "mails_unmatched": unmatched,
        "alerts_measured": sum(len(t.alert_event_ids) for t in triggers),
        "alerts_other": other_alerts,
        "closes_with_alerts": sum(1 for t in triggers if t.kind == "close" and t.alert_event_ids),
        "closes": sum(1 for t in triggers if t.kind == "close"),
        "triggers": [asdict(t) for t in triggers],
        "forecast_runs": forecast_runs,
        "wall_s": replay_s,
    }


def summarise(samples: Sequence[MailSample]) -> dict[str, Any]:
    """Per e-mail; and per trigger the last of its e-mails (the mails of one trigger arrive
    within a fraction of a second of each other, so they are not independent samples)."""
    closes = [s for s in samples if s.kind == "close"]
    probes = [s for s in samples if s.kind != "close"]
    split = [s for s in samples if s.worker_publish_s is not None]
    last_per_trigger: dict[str, float] = {}
    for sample in samples:
        previous = last_per_trigger.get(sample.trigger_event_id, 0.0)
        last_per_trigger[sample.trigger_event_id] = max(previous, sample.total_s)
    return {
        "total": {
            "closes": percentile_row([s.total_s for s in closes]),
            "closes_worker_idle": percentile_row([s.total_s for s in closes if not s.worker_busy]),
            "closes_worker_busy": percentile_row([s.total_s for s in closes if s.worker_busy]),
            "probes": percentile_row([s.total_s for s in probes]),
            "all": percentile_row([s.total_s for s in samples]),
            "last_mail_per_trigger": percentile_row(list(last_per_trigger.values())),
        },
        "stages": {
            "worker_eval": percentile_row([s.worker_eval_s for s in split]),
            "worker_publish": percentile_row([s.worker_publish_s or 0.0 for s in split]),
            "notifier": percentile_row([s.notifier_s or 0.0 for s in split]),
        },
    }


def format_row(name: str, row: Mapping[str, float | int]) -> str:
    if not row.get("count"):
        return f"  {name:<38} {0:>5}"
    return (
        f"  {name:<38} {row['count']:>5} {row['p50']:>7.2f} {row['p90']:>7.2f} "
        f"{row['p99']:>7.2f} {row['max']:>7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=2024, help="scenario seed (as the demo)")
    parser.add_argument("--json", type=Path, help="write the figures and every sample here")
    parser.add_argument(
        "--probe-months",
        default=",".join(str(m) for m in DEFAULT_PROBE_MONTHS),
        help="months of the last year that get a probe mis-booking and its correction",
    )
    parser.add_argument(
        "--forecast-interval-s", type=float, help="set BUDGETVAKT_FORECAST_INTERVAL_S"
    )
    parser.add_argument(
        "--digest-window-s", type=float, help="set BUDGETVAKT_NOTIFIER_DIGEST_WINDOW_S"
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs and data")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="a smoke run: the first 3 months of each year, a probe in March",
    )
    args = parser.parse_args()
    months = 3 if args.tiny else 12
    if args.tiny:
        args.probe_months = "3"

    import os

    from core.errors import UserError
    from services.demo.run import _sigterm_as_interrupt

    extra_env: dict[str, str] = {}
    if args.forecast_interval_s is not None:
        extra_env["BUDGETVAKT_FORECAST_INTERVAL_S"] = str(args.forecast_interval_s)
    if args.digest_window_s is not None:
        extra_env["BUDGETVAKT_NOTIFIER_DIGEST_WINDOW_S"] = str(args.digest_window_s)
    # What the children will use: their environment is this one plus extra_env.
    os.environ.update(extra_env)
    from core.settings import Settings
    from services.notifier.settings import NotifierSettings

    interval = Settings().forecast_interval_s
    window = NotifierSettings().digest_window_s
    probe_months = [int(m) for m in args.probe_months.split(",") if m.strip()]
    print(f"machine: {describe()}")
    print(
        f"settings: seed {args.seed}, forecast interval {interval:g} s, digest window "
        f"{window:g} s, probes: {PROBE_AMOUNT_SEK:,} kr on {PROBE_CATEGORY} of {PROBE_UNIT} "
        f"in months {probe_months} of the last year, then its correction"
    )
    work_dir = Path(tempfile.mkdtemp(prefix="bench-alert-latency-"))
    ok = False
    try:
        with _sigterm_as_interrupt():
            result = run(args.seed, probe_months, extra_env, work_dir, months)
        ok = True
    except UserError as err:
        sys.exit(f"failed: {err} (logs in {work_dir})")
    except KeyboardInterrupt:
        sys.exit(f"interrupted; everything started is stopped (logs in {work_dir})")
    finally:
        if ok and not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)

    samples: list[MailSample] = result["samples"]
    summary = summarise(samples)
    runs = result["forecast_runs"]
    print(
        f"run: {result['wall_s']:.0f} s; {result['closes_with_alerts']} of "
        f"{result['closes']} closes changed alerts; {result['alerts_measured']} alert events "
        f"measured ({result['alerts_other']} outside a measured trigger); {result['mails']} "
        f"e-mails received, {len(samples)} measured; worker: {runs['runs']:.0f} forecast runs, "
        f"mean {runs['mean_s']:.2f} s, {runs['over_0_5_s']:.0f} over 0.5 s, "
        f"{runs['over_1_s']:.0f} over 1 s"
    )
    print(f"  {'seconds, per e-mail':<38} {'count':>5} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    total = summary["total"]
    print(format_row("close acked → mail received", total["closes"]))
    print(format_row("  worker idle at the close", total["closes_worker_idle"]))
    print(format_row("  worker still forecasting postings", total["closes_worker_busy"]))
    print(format_row("probe posting acked → mail received", total["probes"]))
    print(format_row("all", total["all"]))
    print(format_row("  acked → alert emitted_at (worker)", summary["stages"]["worker_eval"]))
    print(format_row("  emitted_at → on alert topic (worker)", summary["stages"]["worker_publish"]))
    print(format_row("  on alert topic → received (notifier)", summary["stages"]["notifier"]))
    print(format_row("per trigger, its last mail", total["last_mail_per_trigger"]))
    p99 = summary["total"]["all"].get("p99")
    if p99 is not None:
        verdict = "met" if p99 <= TARGET_P99_S else "NOT met"
        print(f"target p99 ≤ {TARGET_P99_S:g} s: {verdict} (p99 {p99:.2f} s)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": describe(),
                    "command": " ".join(sys.argv),
                    "settings": {
                        "seed": args.seed,
                        "forecast_interval_s": interval,
                        "digest_window_s": window,
                        "probe_months": probe_months,
                        "probe_unit": PROBE_UNIT,
                        "probe_amount_sek": PROBE_AMOUNT_SEK,
                    },
                    "summary": summary,
                    **{k: v for k, v in result.items() if k != "samples"},
                    "samples": [asdict(s) for s in samples],
                },
                ensure_ascii=False,
                indent=1,
            ),
            encoding="utf-8",
        )
        print(f"written: {args.json}")


if __name__ == "__main__":
    main()
