"""Ingest benchmark: events per second through one worker and through two, end to end.

Starts the embedded broker (or uses BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS), starts real
``budgetvakt worker`` processes, publishes contract-v1 cost events with kafka-python and measures
from the first send until every event is counted in the workers' /metrics and the nämnd total of
``budgetvakt_actual_ytd_sek`` equals the published sum (visible in the aggregates).

The events model a larger municipality than the demo: ``--units`` cost centres (a generated org
tree in a temporary config dir), published month by month as an ERP export would be, shuffled
within the month, with several postings per cost centre, category and month.

    .venv/bin/python bench/ingest.py                  # 1 and 2 workers, 60 000 events each
    .venv/bin/python bench/ingest.py --events 20000 --workers 1
    .venv/bin/python -m bench.ingest --tiny            # a smoke run: 600 events, 1 worker
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402
from core.settings import DEFAULT_CONFIG_DIR  # noqa: E402
from services.processes.broker import EmbeddedBroker  # noqa: E402
from services.processes.budgetvakt import BudgetvaktProcess  # noqa: E402
from services.processes.scrape import sum_metric  # noqa: E402
from services.processes.supervised import ProcessFailed, wait_until  # noqa: E402

CATEGORIES = ("salaries", "substitutes", "overtime", "sick_pay", "premises", "revenue_fees")


def write_config(target: Path, units: int) -> list[str]:
    """The shipped categories, accounts, rules and checkpoints plus an org tree with ``units``
    cost centres."""
    target.mkdir(parents=True)
    for name in ("categories.yaml", "accounts.yaml", "rules.yaml", "checkpoints.yaml"):
        shutil.copy(DEFAULT_CONFIG_DIR / name, target / name)
    ids = [f"{5000 + i}" for i in range(units)]
    per_avdelning = math.ceil(units / 5)
    avdelningar = []
    for a in range(5):
        children = [
            {"id": uid, "name": f"Enhet {uid}", "level": "enhet"}
            for uid in ids[a * per_avdelning : (a + 1) * per_avdelning]
        ]
        avdelningar.append(
            {"id": f"AVD{a}", "name": f"Avdelning {a}", "level": "avdelning", "children": children}
        )
    org = {
        "municipality": "Benchkommun",
        "tree": {
            "id": "NMD",
            "name": "Nämnden",
            "level": "namnd",
            "children": [
                {
                    "id": "FVG",
                    "name": "Förvaltningen",
                    "level": "forvaltning",
                    "children": avdelningar,
                }
            ],
        },
    }
    (target / "org.yaml").write_text(json.dumps(org), encoding="utf-8")  # JSON is valid YAML
    return ids


def make_events(count: int, units: list[str], seed: int) -> list[tuple[bytes, bytes, float]]:
    """(key, value, amount) tuples; month by month, shuffled within the month."""
    rng = random.Random(seed)
    per_month = math.ceil(count / 24)
    events: list[tuple[bytes, bytes, float]] = []
    for month_index in range(24):
        year, month = 2024 + month_index // 12, 1 + month_index % 12
        batch = []
        for _ in range(min(per_month, count - len(events))):
            unit = rng.choice(units)
            amount = round(rng.uniform(100, 50_000), 2)
            event = {
                "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                "type": "cost",
                "org_unit": unit,
                "period": f"{year}-{month:02d}",
                "category": rng.choice(CATEGORIES),
                "amount_sek": amount,
            }
            batch.append((unit.encode(), json.dumps(event).encode(), amount))
        rng.shuffle(batch)
        events.extend(batch)
    return events


class Worker(BudgetvaktProcess):
    """One ``budgetvakt worker`` (under cProfile with ``profile``)."""

    def __init__(
        self, env: dict[str, str], workdir: Path, index: int, profile: Path | None = None
    ) -> None:
        python_args: list[str] = []
        if profile is not None:
            python_args = ["-m", "cProfile", "-o", str(profile / f"worker{index}.prof")]
        super().__init__(
            "worker",
            env=env,
            data_dir=workdir / f"worker{index}-data",
            log_path=workdir / f"worker{index}.log",
            python_args=python_args,
            cwd=REPO,
        )

    def partitions(self) -> set[int] | None:
        try:
            with urllib.request.urlopen(self.url("/ready"), timeout=5) as resp:
                return set(json.loads(resp.read())["partitions"])
        except (OSError, ValueError):  # not ready yet (503 included)
            return None

    def totals(self, topic: str) -> tuple[float, float, float]:
        """(events accepted on ``topic``, duplicates, nämnd-level actual YTD summed over years).

        Replays after a rebalance show as duplicates, so "handled" would overshoot: count accepted.
        """
        try:
            samples = self.samples()
        except OSError:
            return 0.0, 0.0, 0.0
        events = "budgetvakt_events_total"
        return (
            sum_metric(samples, events, topic=topic, outcome="accepted"),
            sum_metric(samples, events, topic=topic, outcome="duplicate"),
            sum_metric(samples, "budgetvakt_actual_ytd_sek", level="namnd"),
        )


def wait(condition: Callable[[], bool], timeout_s: float, what: str, workers: list[Worker]) -> None:
    def check() -> bool:
        for w in workers:
            w.check_alive()
        return condition()

    try:
        wait_until(check, timeout_s, what, interval_s=1.0)
    except (TimeoutError, ProcessFailed) as err:
        raise SystemExit(str(err)) from None


def run(
    bootstrap: str, n_workers: int, events: list[tuple[bytes, bytes, float]], args: Any
) -> dict[str, float]:
    from kafka import KafkaProducer

    run_id = uuid.uuid4().hex[:8]
    topic = f"bench-{run_id}.cost"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{run_id}-"))
    env = {
        "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "BUDGETVAKT_APP_ID": f"bench-{run_id}",
        "BUDGETVAKT_CONFIG_DIR": str(args.config_dir),
        "BUDGETVAKT_BROKER_SESSION_TIMEOUT_S": "6",
        "BUDGETVAKT_TOPIC_COST": topic,
        "BUDGETVAKT_TOPIC_VOLUME": f"bench-{run_id}.volume",
        "BUDGETVAKT_TOPIC_BUDGET": f"bench-{run_id}.budget",
        "BUDGETVAKT_TOPIC_PERIOD_CLOSE": f"bench-{run_id}.period-close",
        "BUDGETVAKT_TOPIC_DEAD_LETTER": f"bench-{run_id}.dead-letter",
    }
    if args.producer_max_batch_size:
        env["BUDGETVAKT_PRODUCER_MAX_BATCH_SIZE"] = str(args.producer_max_batch_size)
    workers: list[Worker] = []
    try:
        for i in range(n_workers):
            workers.append(Worker(env, workdir, i, args.profile).start(wait=False))

        def settled() -> bool:
            parts = [w.partitions() for w in workers]
            if any(p is None or not p for p in parts):
                return False
            union: set[int] = set()
            for p in parts:
                assert p is not None
                if union & p:
                    return False
                union |= p
            return len(union) == args.partitions

        wait(settled, 120, "workers ready with disjoint partitions", workers)
        expected_sum = math.fsum(amount for _, _, amount in events)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=50, batch_size=1024 * 1024
        )
        t0 = time.monotonic()
        for key, value, _ in events:
            producer.send(topic, key=key, value=value)
        producer.flush()
        t_published = time.monotonic() - t0
        producer.close()

        def caught_up() -> bool:
            totals = [w.totals(topic) for w in workers]
            return sum(t[0] for t in totals) >= len(events)

        wait(caught_up, 900, "all events handled", workers)
        t_handled = time.monotonic() - t0
        final = [w.totals(topic) for w in workers]
        duplicates = sum(t[1] for t in final)
        actual = sum(t[2] for t in final)
        if abs(actual - expected_sum) > 1e-6 * abs(expected_sum):
            raise SystemExit(f"aggregates wrong: {actual} != {expected_sum}")
        return {
            "workers": n_workers,
            "events": len(events),
            "publish_s": t_published,
            "end_to_end_s": t_handled,
            "events_per_s": len(events) / t_handled,
            "replayed_duplicates": duplicates,
        }
    finally:
        for w in workers:
            w.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--units", type=int, default=200, help="cost centres in the org tree")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to run")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--producer-max-batch-size",
        type=int,
        default=0,
        help="override BUDGETVAKT_PRODUCER_MAX_BATCH_SIZE (default: the setting, 1 for Tansu)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", type=Path, help="write a cProfile of each worker here")
    parser.add_argument(
        "--tiny", action="store_true", help="600 events, 20 cost centres, 1 worker (smoke run)"
    )
    args = parser.parse_args()
    if args.tiny:
        args.events, args.units, args.workers = 600, 20, "1"

    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-config-") as config_tmp:
        args.config_dir = Path(config_tmp) / "config"
        units = write_config(args.config_dir, args.units)
        events = make_events(args.events, units, args.seed)
        print(
            f"events: {len(events)} cost events, {args.units} cost centres, 24 months, "
            f"{args.partitions} partitions"
        )
        bootstrap = os.environ.get("BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS", "")
        broker = None
        if not bootstrap:
            broker = EmbeddedBroker(log_path=Path(config_tmp) / "tansu.log")
            bootstrap = broker.start()
            print(f"broker: embedded Tansu at {bootstrap}")
        else:
            print(f"broker: {bootstrap}")
        try:
            for n in (int(x) for x in args.workers.split(",")):
                result = run(bootstrap, n, events, args)
                print(
                    f"{n} worker(s): {result['events']} events, published in "
                    f"{result['publish_s']:.1f} s, all in the aggregates after "
                    f"{result['end_to_end_s']:.1f} s → {result['events_per_s']:,.0f} events/s "
                    f"end to end ({result['events_per_s'] / n:,.0f} per worker); "
                    f"{result['replayed_duplicates']:.0f} replayed as duplicates"
                )
        finally:
            if broker is not None:
                broker.stop()


if __name__ == "__main__":
    main()
