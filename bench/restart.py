"""Restart benchmark: how long a successor of a SIGKILLed worker takes to be ready and exact.

One ``budgetvakt worker`` on the embedded broker ingests ``--events`` cost events (the ingest
bench's municipality); then it is killed with SIGKILL three times, and each time a successor
starts:

1. on the same data dir, killed between batches (the local store is trusted: only the rest of
   the changelog is read);
2. on the same data dir with the marker a batch in progress on every partition leaves
   (``streams.local_store``: every partition's local store is discarded and recovered from the
   changelog);
3. on an empty data dir (everything from the changelog).

Measured from the successor's start until ``/ready`` answers and until the nämnd total of
``budgetvakt_actual_ytd_sek`` equals the published sum.

    .venv/bin/python -m bench.restart                 # 60 000 events
    .venv/bin/python -m bench.restart --tiny          # a smoke run: 600 events
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.ingest import Worker, make_events, wait, write_config  # noqa: E402
from bench.machine import describe  # noqa: E402
from services.processes.broker import EmbeddedBroker  # noqa: E402
from services.processes.scrape import sum_metric  # noqa: E402
from streams.local_store import MARKER_NAME  # noqa: E402


def successor(
    env: dict[str, str], workdir: Path, index: int, topic: str, expected: float
) -> tuple[float, float, float]:
    """Start worker ``index``; (seconds to ready, seconds to exact totals, store rebuilds)."""
    worker = Worker(env, workdir, index)
    t0 = time.monotonic()
    worker.start(wait=False)
    wait(lambda: worker.partitions() is not None, 300, "successor ready", [worker])
    ready = time.monotonic() - t0

    def exact() -> bool:
        return abs(worker.totals(topic)[2] - expected) <= 1e-6 * abs(expected)

    wait(exact, 600, "successor's totals exact", [worker])
    caught_up = time.monotonic() - t0
    rebuilds = sum_metric(worker.samples(), "budgetvakt_table_store_rebuilds_total")
    worker.stop(signal.SIGKILL)
    return ready, caught_up, rebuilds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tiny", action="store_true", help="600 events, 20 cost centres (smoke)")
    args = parser.parse_args()
    if args.tiny:
        args.events, args.units = 600, 20
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        workdir = Path(tmp)
        config_dir = workdir / "config"
        units = write_config(config_dir, args.units)
        events = make_events(args.events, units, args.seed)
        expected = math.fsum(amount for _, _, amount in events)
        broker = EmbeddedBroker(log_path=workdir / "tansu.log")
        bootstrap = broker.start()
        run_id = uuid.uuid4().hex[:8]
        topic = f"bench-{run_id}.cost"
        env = {
            "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "BUDGETVAKT_APP_ID": f"bench-{run_id}",
            "BUDGETVAKT_CONFIG_DIR": str(config_dir),
            "BUDGETVAKT_BROKER_SESSION_TIMEOUT_S": "6",
            "BUDGETVAKT_TOPIC_COST": topic,
        }
        try:
            from kafka import KafkaProducer

            first = Worker(env, workdir, 0).start(wait=False)
            wait(lambda: first.partitions() is not None, 120, "worker ready", [first])
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50)
            for key, value, _ in events:
                producer.send(topic, key=key, value=value)
            producer.flush()
            producer.close()
            wait(lambda: first.totals(topic)[0] >= len(events), 900, "ingest", [first])
            first.stop(signal.SIGKILL)
            print(f"{len(events)} events ingested by one worker, then SIGKILL")

            # Every successor of worker 0 uses worker 0's data dir by giving it index 0.
            ready, exact, rebuilds = successor(env, workdir, 0, topic, expected)
            print(
                f"same data dir, killed between batches: ready {ready:.1f} s, exact "
                f"{exact:.1f} s, {rebuilds:.0f} partitions rebuilt"
            )
            tables = workdir / "worker0-data" / "v1" / "tables"
            (tables / MARKER_NAME).write_text('{"partitions": [0, 1, 2, 3]}', encoding="utf-8")
            ready, exact, rebuilds = successor(env, workdir, 0, topic, expected)
            print(
                f"same data dir, killed mid-batch on every partition: ready {ready:.1f} s, "
                f"exact {exact:.1f} s, {rebuilds:.0f} partitions rebuilt"
            )
            ready, exact, rebuilds = successor(env, workdir, 1, topic, expected)
            print(f"empty data dir: ready {ready:.1f} s, exact {exact:.1f} s")
        finally:
            broker.stop()
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
