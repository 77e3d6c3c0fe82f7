"""Fixtures of the web tests: ``budgetvakt web`` as a real uvicorn process on a free port, over a
snapshot store (SQLite, or the private PostgreSQL) with one real snapshot and one user per role.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.followup.users import add_user
from services.processes.supervised import Supervised, free_port, http_ok
from services.snapshots import make_engine, write_snapshot
from services.web.client import Answer
from services.web.client import ApiClient as BaseClient
from tests.services.followup.fixtures import PERIOD
from tests.services.snapshots.fixtures import ForecastCase

#: username → (role, node, password). Every role, tied to nodes of config/org.yaml.
USERS: dict[str, tuple[str, str, str]] = {
    "karin": ("enhetschef", "1110", "losenord-karin"),  # Hemtjänst Norr, under AO
    "anna": ("avdelningschef", "AO", "losenord-anna"),  # Äldreomsorg
    "ivar": ("avdelningschef", "IFO", "losenord-ivar"),  # Individ- och familjeomsorg
    "cecilia": ("controller", "VON", "losenord-cecilia"),
    "fredrik": ("forvaltningschef", "VOF", "losenord-fredrik"),
}


@dataclass
class WebServer:
    url: str  # http://127.0.0.1:PORT
    database_url: str
    process: Supervised


def seed_database(url: str, case: ForecastCase) -> None:
    from services.snapshots import upgrade

    upgrade(url)
    engine = make_engine(url)
    try:
        write_snapshot(
            engine,
            case.forecast,
            period=PERIOD,
            trigger="period_close",
            checkpoint="mars",
            org=case.domain.org,
        )
        for username, (role, node, password) in USERS.items():
            add_user(
                engine, case.domain.org, username=username, role=role, node=node, password=password
            )
    finally:
        engine.dispose()


def start_web(database_url: str, tmp_path: Path, config_dir: Path | None = None) -> Supervised:
    port = free_port()
    config = {"BUDGETVAKT_CONFIG_DIR": str(config_dir)} if config_dir is not None else {}
    return Supervised(
        [sys.executable, "-m", "services", "web", "--port", str(port)],
        name="budgetvakt web",
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/login"),
        env={
            "BUDGETVAKT_DATABASE_URL": database_url,
            "BUDGETVAKT_DATA_DIR": str(tmp_path / "data"),
            "BUDGETVAKT_LOG_FORMAT": "json",
            **config,
        },
        log_path=tmp_path / "web.log",
        start_timeout_s=60,
    )


@pytest.fixture
def web_server(
    database_url: str, forecast_case: ForecastCase, tmp_path: Path
) -> Iterator[WebServer]:
    """The web app over a seeded database (SQLite; PostgreSQL in the integration variant)."""
    seed_database(database_url, forecast_case)
    process = start_web(database_url, tmp_path)
    port = process.command[process.command.index("--port") + 1]
    with process:
        yield WebServer(f"http://127.0.0.1:{port}", database_url, process)


class ApiClient(BaseClient):
    """The API client; ``login(name)`` takes the password from USERS."""

    def login(self, username: str, password: str | None = None) -> Answer:
        return super().login(username, password or USERS[username][2])


def logged_in(server: WebServer, username: str) -> ApiClient:
    client = ApiClient(server.url)
    answer = client.login(username)
    assert answer.status == 200, answer
    return client
