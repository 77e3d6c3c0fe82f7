"""Shared pytest set-up and the rule that keeps the ``integration`` marker honest.

Fixtures: the ones every area shares live in ``tests/fixtures.py``; each area keeps its own in
``tests/<area>/fixtures.py``. All are registered here.

The marker: ``pytest -m "not integration"`` is the fast run that needs no broker, database,
browser or Prometheus tool. A test that is not marked ``integration`` therefore fails

- at set-up, before any server starts, when it requests one of ``INTEGRATION_FIXTURES`` (directly,
  through another fixture, or with ``request.getfixturevalue``), and
- at the moment it starts one of ``INTEGRATION_PROGRAMS`` or a demo/broker command itself (an
  audit hook sees every ``subprocess.Popen``), which catches helpers that are not fixtures.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest_plugins = [
    "pytester",  # tests/test_integration_marker.py runs pytest on small test files
    "tests.contract.fixtures",
    "tests.forecasts.fixtures",
    "tests.streams.fixtures",
    "tests.compose.fixtures",
    "tests.services.demo.fixtures",
    "tests.services.notifier.fixtures",
    "tests.services.snapshots.fixtures",
    "tests.services.followup.fixtures",
    "tests.services.web.fixtures",
    "tests.observability.fixtures",
    "tests.services.reports.fixtures",
    # After the area modules it imports helpers from, so that pytest rewrites their asserts.
    "tests.fixtures",
    # Imports tests.fixtures and tests.streams.fixtures, so after both.
    "tests.end_to_end.fixtures",
]

INTEGRATION = "integration"

#: Fixtures that start a server or need an installed external tool.
INTEGRATION_FIXTURES = frozenset(
    {
        "broker",  # the embedded Tansu broker
        "bootstrap_servers",
        "stream_case",  # real worker processes
        "notifier_case",  # the notifier, in-process or as a process
        "postgres_cluster",
        "postgres_url",
        "smtp_catcher",
        "webhook_catcher",
        "promtool",
        "amtool",
        "alertmanager_binary",
        "prometheus_binary",
        "web_server",  # budgetvakt web on uvicorn
    }
)

#: External programs that only integration tests may start, by file name (a "-v…" version
#: suffix dropped: the bundled broker is tansu-v0.6.0-510f3e2).
INTEGRATION_PROGRAMS = frozenset(
    {
        "tansu",
        "initdb",
        "pg_ctl",
        "postgres",
        "chromium",
        "chromium-browser",
        "promtool",
        "amtool",
        "prometheus",
        "prometheus-alertmanager",
        "alertmanager",
    }
)

#: ``budgetvakt`` commands that start a broker themselves.
INTEGRATION_COMMANDS = frozenset({"demo", "broker", "web"})


def is_integration(item: pytest.Item) -> bool:
    return item.get_closest_marker(INTEGRATION) is not None


def integration_fixtures_of(item: pytest.Item) -> list[str]:
    return sorted(INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def integration_program(argv: Sequence[str]) -> str | None:
    """What an integration test starts with this command line, or None."""
    if not argv:
        return None
    program = os.path.basename(argv[0])
    if program in INTEGRATION_PROGRAMS or program.split("-v")[0] in INTEGRATION_PROGRAMS:
        return program
    if program == "budgetvakt":
        command = argv[1:2]
    elif program.startswith("python") and list(argv[1:3]) == ["-m", "services"]:
        command = argv[3:4]
    else:
        return None
    if command and command[0] in INTEGRATION_COMMANDS:
        return f"budgetvakt {command[0]}"
    return None


@dataclass
class _Guard:
    """A test being set up or run, and the integration programs it tried to start."""

    item: pytest.Item
    integration: bool
    violations: list[str] = field(default_factory=list)


# A stack, so that a pytest run inside a test (pytester) guards its own tests. Teardown is left
# out on purpose: a session fixture (the broker, the PostgreSQL cluster) stops during whichever
# test happens to run last.
_guards: list[_Guard] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _guards or _guards[-1].integration or event != "subprocess.Popen":
        return
    guard = _guards[-1]
    executable, argv = args[0], args[1]
    if isinstance(argv, (str, bytes, os.PathLike)):
        argv = [argv]
    argv = [os.fsdecode(a) for a in argv]
    if executable is not None:
        argv = [os.fsdecode(executable), *argv[1:]]
    started = integration_program(argv)
    if started is None:
        return
    message = (
        f"{guard.item.nodeid} starts {started} but is not marked {INTEGRATION}: "
        f"add @pytest.mark.{INTEGRATION} (or a module-level pytestmark)"
    )
    guard.violations.append(message)
    raise RuntimeError(message)


def pytest_configure(config: pytest.Config) -> None:
    # An audit hook cannot be removed again; it does nothing outside a guarded unit test.
    if not getattr(sys, "_budgetvakt_integration_audit", False):
        sys.addaudithook(_audit)
        sys._budgetvakt_integration_audit = True  # type: ignore[attr-defined]


def _fail_if_integration_fixtures(item: pytest.Item) -> None:
    needed = integration_fixtures_of(item)
    if needed:
        pytest.fail(
            f"{item.nodeid} uses {', '.join(needed)} but is not marked {INTEGRATION}: "
            f"add @pytest.mark.{INTEGRATION} (or a module-level pytestmark)",
            pytrace=False,
        )


@contextmanager
def _guarding(item: pytest.Item) -> Iterator[None]:
    guard = _Guard(item, is_integration(item))
    _guards.append(guard)
    try:
        yield
    finally:
        _guards.remove(guard)
    if guard.violations:
        # Also when the test caught the RuntimeError raised at the start.
        pytest.fail("\n".join(guard.violations), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if not is_integration(item):
        _fail_if_integration_fixtures(item)  # before any fixture starts a server
    with _guarding(item):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    # Catches what the set-up check cannot see: request.getfixturevalue("postgres_url").
    if fixturedef.argname in INTEGRATION_FIXTURES and _guards and not _guards[-1].integration:
        pytest.fail(
            f"{_guards[-1].item.nodeid} uses {fixturedef.argname} but is not marked "
            f"{INTEGRATION}: add @pytest.mark.{INTEGRATION} (or a module-level pytestmark)",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _guarding(item):
        return (yield)
