"""The benches under ``bench/``, each with its tiny size and the figures it must print.

``tests/bench/test_benches_run.py`` runs every one of them once at that size, so a bench that
hangs, crashes or stops printing its figures fails the tests instead of rotting unnoticed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "bench"
#: Printed first by every bench (``bench.machine.describe``), so each figure says where it ran.
MACHINE_LINE = r"(?m)^machine: \d+ cores, .+, Python 3\.\d+\.\d+"


@dataclass(frozen=True)
class Bench:
    module: str  # bench.<name>
    tiny_args: tuple[str, ...]
    figures: tuple[str, ...]  # regular expressions its output must match
    starts_broker: bool = False
    timeout_s: float = 240.0

    @property
    def name(self) -> str:
        return self.module.rsplit(".", 1)[1]


BENCHES = (
    Bench(
        "bench.forecast_speed",
        ("--tiny",),
        (r"(?m)^auto\s+60\s+2\s+[\d.]+\s+[\d.]+$", r"(?m)^prophet\s+2\s+2\s+[\d.]+\s+[\d.]+$"),
    ),
    Bench(
        "bench.forecast_accuracy",
        ("--tiny",),
        (r"cutoff\s+8: auto median [\d.]+ %", r"real series by source: .*Tourism"),
    ),
    Bench(
        "bench.forecaster_owners",
        ("--tiny",),
        (
            r"(?m)^close of one nämnd +median [\d.]+ s",
            r"(?m)^close of one nämnd \(month 6, N0\) +[\d.]+ s  forecasts computed +0 ",
        ),
    ),
    Bench("bench.validation", ("--tiny",), (r"(?m)^parse_event budget\s+[\d.]+ µs/event",)),
    Bench(
        "bench.fuzz",
        ("--tiny",),
        (
            r"(?m)^parse_event: 2,000 inputs in [\d.]+ s .*= 2,000; .* 0 failures$",
            r"(?m)^publish reader: [\d,]+ lines .*",
            r"(?m)^forecast readers: 100 files .* = 100$",
        ),
    ),
    Bench(
        "bench.interval_coverage",
        ("--tiny",),
        (r"(?m)^overall: [\d.]+ % inside the 80 % interval$", r"(?m)^target overall 75–85 %"),
    ),
    Bench(
        "bench.ingest",
        ("--tiny",),
        (r"1 worker\(s\): 600 events, .* events/s end to end .*; 0 replayed as duplicates",),
        starts_broker=True,
    ),
    Bench(
        "bench.restart",
        ("--tiny",),
        (
            r"same data dir, killed between batches: ready [\d.]+ s, exact [\d.]+ s, 0 part",
            r"killed mid-batch on every partition: .* 4 partitions rebuilt",
            r"empty data dir: ready [\d.]+ s, exact [\d.]+ s",
        ),
        starts_broker=True,
    ),
    Bench(
        "bench.alert_latency",
        ("--tiny",),
        (r"(?m)^run: \d+ s; \d+ of 6 closes changed alerts", r"close acked → mail received +\d+"),
        starts_broker=True,
    ),
    Bench(
        "bench.kommun_size",
        ("--tiny",),
        (
            r"(?m)^kommun: 2 nämnder, 24 cost centres, 288 cost series a year",
            r"close acked → forecast current +6 ",
            r"(?m)^worker 0: peak RSS [1-9]\d* MiB",
        ),
        starts_broker=True,
    ),
    Bench(
        "bench.demo_time",
        ("--runs", "1"),
        (r"(?m)^run 1: [\d.]+ s wall, [1-9]\d* events published", r"(?m)^median [\d.]+ s"),
        starts_broker=True,
    ),
)


def bench_modules() -> set[str]:
    """Every runnable bench under ``bench/`` (a module with a ``__main__`` block)."""
    return {
        f"bench.{path.stem}"
        for path in BENCH_DIR.glob("*.py")
        if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")
    }


def run_bench(bench: Bench) -> subprocess.CompletedProcess[str]:
    """``python -m bench.<name> <tiny args>`` from the repository root, on its own broker.

    ``subprocess.TimeoutExpired`` when it runs longer than ``bench.timeout_s`` (the child is
    killed): a hanging bench."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BUDGETVAKT_")}
    return subprocess.run(
        [sys.executable, "-m", bench.module, *bench.tiny_args],
        cwd=REPO,
        env={**env, "BUDGETVAKT_LOG_FORMAT": "json", "COLUMNS": "160"},
        capture_output=True,
        text=True,
        timeout=bench.timeout_s,
        check=False,
    )
