"""The import contract of pyproject.toml ([tool.importlinter]) bites: each wrong arrow fails it.

`make test` runs `lint-imports` on the real tree. Here a copy of the packages gets one module that
imports against the layers, and `lint-imports` must fail and name that import and its contract.
And one Kafka client per process: the worker talks to the broker through Faust's aiokafka only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "contract", "forecasts", "streams", "services")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def copy_of_the_tree(target: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    # The copy is the working directory, which lint-imports puts first on sys.path, so the
    # installed (editable) packages of the real tree are not the ones analysed. A wide console
    # keeps each contract's verdict on one line.
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tree,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("breach", "statement", "contract", "arrow"),
    [
        (
            "forecasts/_breach.py",
            "import streams.app",
            "Layers",
            "forecasts._breach -> streams.app",
        ),
        (
            "streams/_breach.py",
            "from services import worker",
            "Layers",
            "streams._breach -> services.worker",
        ),
        (
            "contract/_breach.py",
            "from forecasts.engine import forecast_panel",
            "Layers",
            "contract._breach -> forecasts.engine",
        ),
        (
            "core/_breach.py",
            "from contract.records import CostEvent",
            "Layers",
            "core._breach -> contract.records",
        ),
        (
            "forecasts/_breach.py",
            "from aiokafka import AIOKafkaProducer",
            "forecasts is pure",
            "forecasts._breach -> aiokafka",
        ),
        (
            "forecasts/_breach.py",
            "import sqlalchemy",
            "forecasts is pure",
            "forecasts._breach -> sqlalchemy",
        ),
        (
            "core/_breach.py",
            "import faust",
            "contract and core",
            "core._breach -> faust",
        ),
        (
            "services/_breach.py",
            "from testing import processes",
            "Production code imports no test code",
            "services._breach -> testing",
        ),
        (
            "streams/_breach.py",
            "from tests.conftest import domain",
            "Production code imports no test code",
            "streams._breach -> tests",
        ),
    ],
)
def test_lint_imports_fails_on_a_wrong_arrow_and_names_it(
    tmp_path: Path, breach: str, statement: str, contract: str, arrow: str
) -> None:
    tree = copy_of_the_tree(tmp_path)
    (tree / breach).write_text(f'"""A deliberate breach of the layers."""\n\n{statement}\n')

    result = lint_imports(tree)

    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
    assert f"{arrow} (l.3)" in result.stdout, result.stdout


def test_the_worker_process_loads_aiokafka_and_not_kafka_python() -> None:
    # What `budgetvakt worker` imports before it runs the app (the CLI registers every command).
    code = (
        "import sys, services.cli, services.worker, streams.app, streams.forecasting\n"
        "kafka_python = sorted(m for m in sys.modules if m.split('.')[0] == 'kafka')\n"
        "print('aiokafka' in sys.modules, kafka_python)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split(maxsplit=1) == ["True", "[]\n"]


def test_the_demo_without_its_extra_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.errors import UserError
    from services.demo.receivers import MailCatcher

    monkeypatch.setitem(sys.modules, "aiosmtpd.controller", None)  # as if not installed
    with pytest.raises(UserError, match=r"pip install 'budgetvakt\[demo\]'"):
        MailCatcher()
