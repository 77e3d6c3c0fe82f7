"""Fixtures of the web tests: ``budgetvakt web`` as a real uvicorn process on a free port, over a
snapshot store (SQLite, or the private PostgreSQL) with one real snapshot and one user per role.
"""

from __future__ import annotations

import http.cookiejar
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.followup.users import add_user
from services.processes.supervised import Supervised, free_port, http_ok
from services.snapshots import make_engine, write_snapshot
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


def start_web(database_url: str, tmp_path: Path) -> Supervised:
    port = free_port()
    return Supervised(
        [sys.executable, "-m", "services", "web", "--port", str(port)],
        name="budgetvakt web",
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/login"),
        env={
            "BUDGETVAKT_DATABASE_URL": database_url,
            "BUDGETVAKT_DATA_DIR": str(tmp_path / "data"),
            "BUDGETVAKT_LOG_FORMAT": "json",
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


@dataclass
class Answer:
    status: int
    body: Any


class ApiClient:
    """A JSON client with its own cookie jar: one logged-in user (or none)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.csrf_token: str | None = None

    def call(
        self, method: str, path: str, body: Any = None, *, csrf: str | bool | None = True
    ) -> Answer:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        token = self.csrf_token if csrf is True else (csrf or None)
        if token:
            request.add_header("X-CSRF-Token", token)
        try:
            with self.opener.open(request, timeout=30) as response:
                return Answer(response.status, json.loads(response.read() or b"null"))
        except urllib.error.HTTPError as err:
            payload = err.read()
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = payload.decode("utf-8", "replace")
            return Answer(err.code, parsed)

    def login(self, username: str, password: str | None = None) -> Answer:
        answer = self.call(
            "POST",
            "/api/v1/login",
            {"username": username, "password": password or USERS[username][2]},
            csrf=False,
        )
        if answer.status == 200:
            self.csrf_token = answer.body["csrf_token"]
        return answer


def logged_in(server: WebServer, username: str) -> ApiClient:
    client = ApiClient(server.url)
    answer = client.login(username)
    assert answer.status == 200, answer
    return client
