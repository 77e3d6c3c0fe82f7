"""Every process pool in the code and the benches starts its children with spawn.

A pool that forks after LightGBM's OpenMP threads have started deadlocks its children (the
forecast_speed bench once hung that way), so a pool without ``mp_context`` fails here."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "contract", "forecasts", "streams", "services", "bench", "testing")


def pools_without_spawn(source: str) -> list[int]:
    """Line numbers of ``ProcessPoolExecutor(...)`` without ``mp_context`` and of
    ``multiprocessing.Pool(...)`` / ``get_context("fork")`` calls."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        forking_context = any(
            isinstance(a, ast.Constant) and a.value in ("fork", "forkserver") for a in node.args
        )
        unspawned_executor = name == "ProcessPoolExecutor" and "mp_context" not in {
            k.arg for k in node.keywords
        }
        pool = name == "Pool" and isinstance(func, ast.Attribute)
        if unspawned_executor or pool or (name == "get_context" and forking_context):
            lines.append(node.lineno)
    return lines


def test_every_process_pool_uses_spawn() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line}"
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for line in pools_without_spawn(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_check_finds_a_forking_pool() -> None:
    source = (
        "import multiprocessing\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "a = ProcessPoolExecutor(2)\n"
        "b = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context('spawn'))\n"
        "c = multiprocessing.Pool(2)\n"
        "d = multiprocessing.get_context('fork')\n"
    )
    assert pools_without_spawn(source) == [3, 5, 6]
