"""A kommun on a consumer group whose workers come and go produces what one worker produces.

Issue 15, item 3. Six nämnder (tests/end_to_end/fixtures.py: three enheter each, salaries,
substitutes and hemtjänsttimmar, two history years, a forecast year with overruns in two
nämnder and a correction) go through the embedded broker twice, on topics of their own:

* run A: one worker;
* run B: three workers in one consumer group over six partitions; one of them is killed with
  SIGKILL in the middle of a month's postings, and a fourth is started while the postings of a
  later month flow.

The producer feeds the forecast year month by month and waits (never sleeps) until the postings
show in the gauges and every nämnd's close is evaluated and snapshotted by its owner, so the
alerts are decided on the same state in both runs. Then everything of run B must equal run A:
every money and volume gauge summed across the workers (to the öre), the last forecast per node
and category on the forecast topic, every alert event (no alert lost, none twice), every
snapshot (one per nämnd and closed month, none missing or duplicated), and every alert reaches
its nämnd's controller by e-mail exactly once.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from core.hierarchy import UNMAPPED_ID
from services.demo.receivers import MailCatcher
from services.processes.scrape import sum_metric
from services.processes.supervised import free_port, wait_until
from services.snapshots import upgrade
from tests.end_to_end.fixtures import (
    COMPARED_GAUGES,
    NAMNDER,
    YEAR,
    KommunEvents,
    KommunRun,
    alert_events,
    controller_address,
    duplicated,
    feed,
    final_forecasts,
    kommun_events,
    money_gauges,
    owner_of,
    snapshot_rows,
)
from tests.fixtures import REFUSING_WEBHOOK_ENV
from tests.services.notifier.fixtures import NotifierProcess
from tests.services.snapshots.fixtures import PostgresCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MONTHS = 8  # January to the delårsrapport's August: closes, overruns, worsening and correction
KILL_MONTH = 4  # a worker is killed between the two halves of April's postings
ADD_MONTH = 6  # a fourth worker starts just before June's postings


def _produce(run: KommunRun, events: KommunEvents, hook: Any = None) -> dict[str, Any]:
    feed(run, events, MONTHS, hook)
    return {
        "gauges": money_gauges(run),
        "forecasts": final_forecasts(run),
        "alerts": alert_events(run),
        "snapshots": snapshot_rows(run.database_url),
    }


def _differences(what: str, a: Mapping[Any, Any], b: Mapping[Any, Any], shown: int = 8) -> str:
    """'' when equal, else what differs (the first few keys)."""
    if a == b:
        return ""
    only_a = sorted(set(a) - set(b), key=str)
    only_b = sorted(set(b) - set(a), key=str)
    changed = sorted((k for k in set(a) & set(b) if a[k] != b[k]), key=str)
    lines = [
        f"{what}: {len(only_a)} only in run A, {len(only_b)} only in run B, {len(changed)} differ"
    ]
    lines += [f"  only A: {k}" for k in only_a[:shown]]
    lines += [f"  only B: {k}" for k in only_b[:shown]]
    if all(isinstance(a[k], Mapping) for k in changed):  # nested: name the differing keys
        lines += [
            f"  differs {k}: " + _differences("", a[k], b[k], 3).replace("\n", "\n  ")
            for k in changed[:shown]
        ]
    else:
        lines += [f"  differs {k}: A {a[k]} B {b[k]}" for k in changed[:shown]]
    return "\n".join(lines)


def _by_transition(alerts: list[dict[str, Any]]) -> dict[tuple[str, int], Any]:
    return {(a["alert_id"], a["sequence"]): a for a in alerts}


def _start_notifier(run: KommunRun, tmp_path: Path, smtp: MailCatcher) -> NotifierProcess:
    port = free_port()
    return NotifierProcess(
        {
            **run.env,
            **REFUSING_WEBHOOK_ENV,
            "BUDGETVAKT_DATA_DIR": str(tmp_path / "notifier"),
            "BUDGETVAKT_NOTIFIER_WEB_PORT": str(port),
            "BUDGETVAKT_NOTIFIER_GROUP_ID": f"notifier-{uuid.uuid4().hex[:8]}",
            "BUDGETVAKT_NOTIFIER_DEAD_LETTER_TOPIC": f"{run.app_id}.notify-dl",
            "BUDGETVAKT_NOTIFIER_ROUTING_FILE": str(run.config_dir / "routing.yaml"),
            "BUDGETVAKT_SMTP_PORT": str(smtp.port),
        },
        port,
        tmp_path / "notifier.log",
    ).start()


def _comings_and_goings(
    killed: list[int], added: list[int]
) -> Callable[[KommunRun, int, int], None]:
    def hook(run: KommunRun, month: int, half: int) -> None:
        if (month, half) == (KILL_MONTH, 1):
            # In the middle of the month's ingest: its first half was just acknowledged by the
            # broker and is being processed. The victim holds nämnder (or, on a worker that
            # does not report them, partitions): it has work to lose.
            owners = [i for i, w in enumerate(run.workers) if w.alive() and _holds_work(w)]
            assert owners, "no worker holds a nämnd or partition before the kill"
            killed.append(owners[0])
            run.kill(run.workers[owners[0]])
        if (month, half) == (ADD_MONTH, 0):
            added.append(len(run.workers))
            run.start_worker(wait=False)  # joins while the month's postings flow

    return hook


def test_a_consumer_group_whose_workers_come_and_go_equals_one_worker(
    kommun_runs: Callable[[str, str], KommunRun],
    postgres_cluster: PostgresCluster,
    tmp_path: Path,
) -> None:
    events = kommun_events()
    databases = [postgres_cluster.create_database() for _ in range(2)]
    smtp = MailCatcher().start()
    notifier: NotifierProcess | None = None
    runs: list[KommunRun] = []
    try:
        urls = [postgres_cluster.url(name) for name in databases]
        for url in urls:
            upgrade(url)

        # Run A: one worker.
        single = kommun_runs("run-a", urls[0])
        runs.append(single)
        single.start_worker()
        a = _produce(single, events)
        for worker in single.workers:
            worker.stop()

        # Run B: three workers, one killed, one added, a notifier mailing every alert.
        group = kommun_runs("run-b", urls[1])
        runs.append(group)
        for _ in range(3):
            group.start_worker(wait=False)
        for worker in group.workers:
            worker.wait_ready()
        notifier = _start_notifier(group, tmp_path, smtp)
        killed: list[int] = []
        added: list[int] = []
        b = _produce(group, events, _comings_and_goings(killed, added))
        [new] = added
        new_partitions = (group.workers[new].ready() or {}).get("partitions")

        problems: list[str] = []
        # What one worker produced is what the feature promises, whatever run B does.
        expected_snapshots = {
            (namnd, f"{YEAR}-{m:02d}", 1) for namnd in NAMNDER for m in range(1, MONTHS + 1)
        }
        of_namnder = {key for key in a["snapshots"] if key[0] != UNMAPPED_ID}
        if of_namnder != expected_snapshots:
            problems.append(
                "run A: snapshots are not one per nämnd and closed month: "
                f"{sorted(of_namnder ^ expected_snapshots)[:12]}"
            )
        absent = [name for name in COMPARED_GAUGES if not any(k[0] == name for k in a["gauges"])]
        if absent or not a["forecasts"]:
            problems.append(f"run A: no samples of {absent}, {len(a['forecasts'])} forecasts")
        statuses = Counter(alert["status"] for alert in a["alerts"])
        alerting_namnder = {
            namnd for (namnd, _, _, _), _ in _nodes_with_alerts(a["alerts"]).items()
        }
        if not (statuses["firing"] and statuses["worsened"] and statuses["resolved"]):
            problems.append(f"run A: the overruns did not fire, worsen and resolve: {statuses}")
        if not {"SN", "VON"} <= alerting_namnder:
            problems.append(f"run A: alerts only in {sorted(alerting_namnder)}")
        for run_name, produced in (("A", a), ("B", b)):
            transitions = [(x["alert_id"], x["sequence"]) for x in produced["alerts"]]
            if duplicated(transitions):
                problems.append(f"run {run_name}: alerts sent twice {duplicated(transitions)[:8]}")
        # Run B against run A.
        problems += [
            *(
                _differences(
                    f"gauge {name}",
                    {k: v for k, v in a["gauges"].items() if k[0] == name},
                    {k: v for k, v in b["gauges"].items() if k[0] == name},
                )
                for name in COMPARED_GAUGES
            ),
            _differences("last forecast per node", a["forecasts"], b["forecasts"]),
            _differences("alert events", _by_transition(a["alerts"]), _by_transition(b["alerts"])),
            _differences("snapshots (nämnd, period, version)", a["snapshots"], b["snapshots"]),
        ]
        if not new_partitions:
            problems.append("run B: the added worker owns no partition at the end")

        # Every alert of run B reaches its nämnd's controller once (the routing sends each
        # nämnd's alerts, of every level and severity, to its controller only).
        required, deferrable = _mail_expectations(b["alerts"])

        def mailed() -> Counter[tuple[str, str]]:
            return Counter((m.to, event_id) for m in smtp.mails for event_id in m.event_ids)

        def notifier_done() -> bool:
            # It read every alert event, every mail it sent has arrived, and they cover every
            # alert: a second mail of one would have been sent by then.
            assert notifier is not None
            samples = notifier.samples()
            return (
                sum_metric(samples, "budgetvakt_notifier_alerts_consumed_total") == len(b["alerts"])
                and sum_metric(samples, "budgetvakt_notifier_sent_total", channel="email")
                == len(smtp.mails)
                and set(mailed()) >= required
            )

        try:
            wait_until(notifier_done, 60, "every alert of run B read and mailed")
        except TimeoutError as err:
            samples = notifier.samples()
            consumed = sum_metric(samples, "budgetvakt_notifier_alerts_consumed_total")
            sent = sum_metric(samples, "budgetvakt_notifier_sent_total", channel="email")
            problems.append(
                f"notifier: {err} (read {consumed:.0f} of {len(b['alerts'])} alert events, "
                f"sent {sent:.0f} mails, {len(smtp.mails)} arrived)"
            )
        mail_counts = mailed()
        twice = sorted(key for key, n in mail_counts.items() if n > 1)
        unmailed = sorted(required - set(mail_counts))
        unknown = sorted(set(mail_counts) - required - deferrable)
        if twice or unmailed or unknown:
            problems.append(
                f"alert mails: {len(twice)} mailed twice {twice[:4]}, {len(unmailed)} not mailed "
                f"{unmailed[:4]}, {len(unknown)} not on the alert topic {unknown[:4]}"
            )
        problems = [p for p in problems if p]
        assert not problems, f"killed worker {killed}, added worker {added}\n" + "\n".join(problems)
    finally:
        if notifier is not None:
            notifier.stop()
        smtp.stop()
        for run in runs:  # before their database goes (the fixture keeps their logs)
            for worker in run.workers:
                worker.stop()
        for name in databases:
            postgres_cluster.drop_database(name)


def _mail_expectations(
    alerts: list[dict[str, Any]],
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(recipient, event id) that must be mailed, and those that may still wait.

    An event on the topic twice is reported as such; the notifier's sent-store mails it once.
    Nobody is routed alerts about omappad. An ``improved`` event waits for the recipient's next
    mail (docs/alerting.md): it must have gone out once a later close mailed that recipient
    something else, else it may still wait."""
    mails = [
        (controller_address(owner_of(x["org_unit"])), f"{x['alert_id']}@{x['sequence']}", x)
        for x in alerts
        if owner_of(x["org_unit"]) != UNMAPPED_ID
    ]
    latest_mail: dict[str, str] = {}
    for to, _, alert in mails:
        if alert["status"] != "improved":
            latest_mail[to] = max(latest_mail.get(to, ""), alert["period"])
    required: set[tuple[str, str]] = set()
    deferrable: set[tuple[str, str]] = set()
    for to, event_id, alert in mails:
        waits = alert["status"] == "improved" and alert["period"] >= latest_mail.get(to, "")
        (deferrable if waits else required).add((to, event_id))
    return required, deferrable


def _holds_work(worker: Any) -> bool:
    try:
        with urllib.request.urlopen(worker.url("/forecasts/status"), timeout=5) as resp:
            owned = json.loads(resp.read()).get("owned")
    except (OSError, ValueError):
        return False
    if owned is not None:
        return any(owner in NAMNDER for owner in owned)
    return bool((worker.ready() or {}).get("partitions"))


def _nodes_with_alerts(alerts: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], int]:
    counts: Counter[tuple[str, str, str, str]] = Counter(
        (owner_of(a["org_unit"]), a["org_unit"], a["rule"], a["status"]) for a in alerts
    )
    return dict(counts)
