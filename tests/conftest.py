"""Shared pytest set-up. Each area keeps its fixtures in ``tests/<area>/fixtures.py``."""

pytest_plugins = [
    "tests.contract.fixtures",
    "tests.forecasts.fixtures",
    "tests.streams.fixtures",
    "tests.compose.fixtures",
    "tests.scenario.fixtures",
    "tests.notifier.fixtures",
    "tests.db.fixtures",
    "tests.observability.fixtures",
    "tests.report.fixtures",
]
