"""Every bench under bench/ runs once at its tiny size: exit 0, its figures and the machine line.

A bench that hangs (the forecast_speed fork deadlock once did), crashes or stops printing its
figures fails here. The runs go two at a time, longest first (the selected ones only), so the
benches that mostly wait on a broker overlap with those that compute.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from testing.benches import BENCHES, MACHINE_LINE, Bench, bench_modules, run_bench

BenchResult = subprocess.CompletedProcess[str] | subprocess.TimeoutExpired

PARAMS = [
    pytest.param(
        bench,
        id=bench.name,
        marks=[pytest.mark.integration, pytest.mark.slow] if bench.starts_broker else [],
    )
    for bench in BENCHES
]


@pytest.fixture(scope="module")
def bench_results(request: pytest.FixtureRequest) -> dict[str, BenchResult]:
    selected = [
        item.callspec.params["bench"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module and hasattr(item, "callspec")
    ]
    selected.sort(key=lambda b: (not b.starts_broker, -b.timeout_s))

    def run(bench: Bench) -> BenchResult:
        try:
            return run_bench(bench)
        except subprocess.TimeoutExpired as hung:
            return hung

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((b.module for b in selected), pool.map(run, selected), strict=True))


def test_every_bench_has_a_tiny_run() -> None:
    assert bench_modules() == {bench.module for bench in BENCHES}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("bench", PARAMS)
def test_bench_runs_and_prints_its_figures(
    bench: Bench, bench_results: dict[str, BenchResult]
) -> None:
    result = bench_results[bench.module]
    if isinstance(result, subprocess.TimeoutExpired):
        pytest.fail(
            f"{bench.module} {' '.join(bench.tiny_args)} hung: still running after "
            f"{bench.timeout_s:.0f} s; its output so far:\n{result.stdout!s}"
        )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(MACHINE_LINE, result.stdout), result.stdout[-4000:]
    for figure in bench.figures:
        assert re.search(figure, result.stdout), (figure, result.stdout[-4000:])
