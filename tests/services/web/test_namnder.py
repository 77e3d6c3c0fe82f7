"""``budgetvakt web`` over a kommun of two nämnder (VON, BUN) that closed the same month: each
user sees the nämnder of their nodes only, a kommun controller sees both, and today's URLs name
no nämnd (a node's nämnd is the one it is in)."""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.followup.users import add_user
from services.snapshots import make_engine, upgrade, write_snapshot
from services.web.client import ApiClient
from tests.services.followup.fixtures import PERIOD
from tests.services.snapshots.fixtures import KommunCase
from tests.services.web.fixtures import WebServer, start_web

pytestmark = pytest.mark.integration  # a real uvicorn process

NODE = f"/api/v1/periods/{PERIOD}/nodes"
PASSWORD = "losenord-kommun"
#: username → (role, nodes)
KOMMUN_USERS = {
    "vera": ("controller", ["VON"]),
    "bo": ("controller", ["BUN"]),
    "bea": ("enhetschef", ["B1110"]),
    "kim": ("controller", ["VON", "BUN"]),  # the kommun's ekonomichef
}


@pytest.fixture
def kommun_web(database_url: str, kommun_case: KommunCase, tmp_path: Path) -> Iterator[WebServer]:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        for forecast in kommun_case.forecasts.values():
            write_snapshot(
                engine, forecast, period=PERIOD, trigger="period_close", org=kommun_case.domain.org
            )
        for username, (role, nodes) in KOMMUN_USERS.items():
            add_user(
                engine,
                kommun_case.domain.org,
                username=username,
                role=role,
                node=nodes,
                password=PASSWORD,
            )
    finally:
        engine.dispose()
    process = start_web(database_url, tmp_path, kommun_case.config_dir)
    port = process.command[process.command.index("--port") + 1]
    with process:
        yield WebServer(f"http://127.0.0.1:{port}", database_url, process)


def _client(server: WebServer, username: str) -> ApiClient:
    client = ApiClient(server.url)
    assert client.login(username, PASSWORD).status == 200
    return client


def _page(client: ApiClient, path: str) -> tuple[int, str]:
    try:
        with client.opener.open(client.base_url + path, timeout=client.timeout_s) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace")


def test_a_user_of_one_namnd_cannot_read_the_other(kommun_web: WebServer) -> None:
    bo, vera = _client(kommun_web, "bo"), _client(kommun_web, "vera")
    bun = bo.call("GET", f"{NODE}/BUN")
    assert bun.status == 200 and bun.body["snapshot_version"] == 1
    assert bun.body["name"] == "Barn- och utbildningsnämnden"
    assert bo.call("GET", f"{NODE}/VON").status == 403
    assert bo.call("GET", f"{NODE}/1110").status == 403
    assert vera.call("GET", f"{NODE}/B1110").status == 403
    assert vera.call("PUT", f"{NODE}/BFS/comment", {"text": "x"}).status == 403
    assert bo.call("GET", "/api/v1/periods").body == {
        "periods": [PERIOD],
        "namnder": {"BUN": [PERIOD], "omappad": []},
    }
    assert bo.call("GET", "/api/v1/periods?namnd=VON").status == 404
    status, _ = _page(vera, f"/perioder/{PERIOD}/noder/BFS")
    assert status == 403
    status, html = _page(vera, f"/perioder/{PERIOD}")
    assert status == 200
    assert "Vård- och omsorgsnämnden" in html and "Barn- och utbildningsnämnden" not in html
    bea = _client(kommun_web, "bea")  # an enhetschef sees her enhet and the nodes above it
    assert bea.call("GET", f"{NODE}/BUN").status == 200
    assert bea.call("GET", f"{NODE}/B1120").status == 403


def test_a_kommun_controller_follows_both_and_versions_stay_per_namnd(
    kommun_web: WebServer,
) -> None:
    kim = _client(kommun_web, "kim")
    status, html = _page(kim, f"/perioder/{PERIOD}")
    assert status == 200
    assert 'id="namnd-VON"' in html and 'id="namnd-BUN"' in html
    assert kim.call("GET", "/api/v1/periods").body["namnder"] == {
        "VON": [PERIOD],
        "BUN": [PERIOD],
        "omappad": [],
    }
    assert kim.call("POST", f"{NODE}/BFS/approve").status == 200
    after = kim.call("PUT", f"{NODE}/B1110/comment", {"text": "Sjukfrånvaro"})
    assert after.status == 200 and after.body["snapshot_version"] == 2  # BUN's version 2
    assert kim.call("GET", f"{NODE}/AO").body["snapshot_version"] == 1  # VON untouched
    status, node_html = _page(kim, f"/perioder/{PERIOD}/noder/BFS")
    assert status == 200 and "Barn- och utbildningsförvaltningen" in node_html
