"""The rule in tests/conftest.py: a test that needs a server or an external tool and is not marked
``integration`` fails, so ``pytest -m "not integration"`` stays a run without them."""

from __future__ import annotations

import pytest

from tests.conftest import integration_program

MARKERS_INI = """
[pytest]
markers =
    integration: test
"""

# The fixture names are the real ones; their bodies here start nothing.
FILE_WITH_FIXTURES = """
import pytest

@pytest.fixture
def broker():
    return "fake"

@pytest.fixture
def notifier_setup(broker):
    return broker

def test_unmarked_asks_for_the_broker(broker):
    pass

def test_unmarked_gets_it_through_another_fixture(notifier_setup):
    pass

@pytest.mark.integration
def test_marked_asks_for_the_broker(broker):
    pass

def test_unmarked_without_it():
    pass

def test_unmarked_asks_for_it_at_run_time(request):
    request.getfixturevalue("broker")
"""

# The audit hook stops the start before anything is executed, so the programs need not exist.
FILE_STARTING_PROGRAMS = """
import subprocess, sys
import pytest

def test_unmarked_runs_promtool():
    subprocess.run(["/nowhere/promtool", "check", "config", "x.yml"])

def test_unmarked_swallows_the_error_and_still_fails():
    try:
        subprocess.Popen(["chromium", "--headless"])
    except RuntimeError:
        pass

def test_unmarked_runs_the_demo():
    subprocess.run([sys.executable, "-m", "services", "demo"])

def test_unmarked_runs_an_ordinary_command():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

@pytest.mark.integration
def test_marked_may_start_tansu():
    with pytest.raises(FileNotFoundError):
        subprocess.run(["/nowhere/tansu-v0.6.0-510f3e2", "broker"])
"""


def run_inner(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeini(MARKERS_INI)
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(test_inner=source)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rf")


def test_an_unmarked_test_that_asks_for_an_integration_fixture_fails(
    pytester: pytest.Pytester,
) -> None:
    result = run_inner(pytester, FILE_WITH_FIXTURES)
    result.assert_outcomes(passed=2, failed=1, errors=2)
    result.stdout.fnmatch_lines_random(
        [
            "*test_unmarked_asks_for_the_broker uses broker but is not marked integration*",
            "*test_unmarked_gets_it_through_another_fixture uses broker but is not marked*",
            "*test_unmarked_asks_for_it_at_run_time uses broker but is not marked integration*",
        ]
    )


def test_an_unmarked_test_that_starts_an_integration_program_fails(
    pytester: pytest.Pytester,
) -> None:
    result = run_inner(pytester, FILE_STARTING_PROGRAMS)
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines_random(
        [
            "*test_unmarked_runs_promtool starts promtool but is not marked integration*",
            "*test_unmarked_swallows_the_error_and_still_fails starts chromium*",
            "*test_unmarked_runs_the_demo starts budgetvakt demo*",
        ]
    )


@pytest.mark.parametrize(
    ("argv", "started"),
    [
        (["/root/.calfkit/bin/tansu-v0.6.0-510f3e2", "broker"], "tansu-v0.6.0-510f3e2"),
        (["/usr/lib/postgresql/17/bin/pg_ctl", "start"], "pg_ctl"),
        (["/usr/bin/prometheus-alertmanager", "--config.file=x"], "prometheus-alertmanager"),
        (["/srv/.venv/bin/python3.11", "-m", "services", "broker"], "budgetvakt broker"),
        (["/srv/.venv/bin/budgetvakt", "demo", "--seed", "1"], "budgetvakt demo"),
        (["/srv/.venv/bin/python", "-m", "services", "notifier"], None),
        (["/srv/.venv/bin/budgetvakt", "report", "--period", "2024-08"], None),
        (["/usr/bin/git", "status"], None),
        ([], None),
    ],
)
def test_integration_program_names_what_a_command_line_starts(
    argv: list[str], started: str | None
) -> None:
    assert integration_program(argv) == started
