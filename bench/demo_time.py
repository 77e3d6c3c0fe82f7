"""Wall time of ``budgetvakt demo`` end to end (broker start → worker ready → replay → stop).

Runs the demo as a user would (a subprocess, its own data dir) ``--runs`` times and prints each
run's wall time, the number of events, and the machine.

    .venv/bin/python -m bench.demo_time --runs 3
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from bench.machine import describe


def run_once() -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="budgetvakt-demo-bench-") as data_dir:
        env = {**os.environ, "BUDGETVAKT_DATA_DIR": data_dir, "COLUMNS": "160"}
        env.pop("BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS", None)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "services", "demo"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"demo failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr}")
    events = re.search(r"Publicerade (\d+) händelser", proc.stdout)
    return wall, int(events.group(1)) if events else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {describe()}")
    walls = []
    for i in range(args.runs):
        wall, events = run_once()
        walls.append(wall)
        print(f"run {i + 1}: {wall:.1f} s wall, {events} events published and aggregated")
    walls.sort()
    print(f"median {walls[len(walls) // 2]:.1f} s, max {walls[-1]:.1f} s (target: < 180 s)")


if __name__ == "__main__":
    main()
