"""The demo's monthly follow-up after the August close: users, ``budgetvakt web`` and the API.

As the people would: the avdelningschef of äldreomsorg explains the deviation, adds a decided
åtgärd and adjusts the forecast with it; an enhetschef comments on her enhet; the controller
approves the delår forecast per avdelning, then the förvaltning and the nämnd. Everything goes
through ``/api/v1`` of a real ``budgetvakt web`` process (:class:`services.web.client.ApiClient`),
so the demo exercises the login, CSRF tokens, permissions and the audit trail.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.domain import DomainConfig
from core.swedish import format_mnkr
from services.followup.users import add_user
from services.processes.supervised import Supervised, free_port, http_ok, port_in_use
from services.web.client import ApiClient

#: Fictional people of config/routing.yaml; the password is the demo's, printed for the reader.
DEMO_PASSWORD = "budgetvakt-demo"
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("eva-sandberg", "avdelningschef", "AO"),
    ("karin-holm", "enhetschef", "1110"),
    ("erik-sjoberg", "controller", "VON"),
    ("helena-dahl", "forvaltningschef", "VOF"),
)
WEB_START_TIMEOUT_S = 60.0


@dataclass
class FollowUpResult:
    web: Supervised
    url: str  # the äldreomsorg page of the period
    approved: list[str]


def start_web(database_url: str, port: int, log_path: Path) -> Supervised:
    """``budgetvakt web`` on ``port`` (the configured one if free; 0 or taken: any free port)."""
    if port == 0 or port_in_use("127.0.0.1", port):
        port = free_port()
    return Supervised(
        [sys.executable, "-m", "services", "web", "--port", str(port)],
        name="budgetvakt web",
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/login"),
        env={"BUDGETVAKT_DATABASE_URL": database_url},
        log_path=log_path,
        start_timeout_s=WEB_START_TIMEOUT_S,
        new_session=True,
    )


def web_port(web: Supervised) -> int:
    return int(web.command[web.command.index("--port") + 1])


def run_follow_up(
    engine: Any, web: Supervised, domain: DomainConfig, period: str
) -> FollowUpResult:
    """Create the demo users, start ``web`` and do the month's follow-up of ``period``."""
    for username, role, node in DEMO_USERS:
        add_user(
            engine, domain.org, username=username, role=role, node=node, password=DEMO_PASSWORD
        )
    web.start()
    base = f"http://127.0.0.1:{web_port(web)}"
    nodes = f"/api/v1/periods/{period}/nodes"

    def as_user(username: str) -> ApiClient:
        client = ApiClient(base)
        answer = client.login(username, DEMO_PASSWORD)
        if answer.status != 200:
            raise RuntimeError(f"demo login of {username} failed: HTTP {answer.status}")
        return client

    chef = as_user("eva-sandberg")
    ao = chef.ok("GET", f"{nodes}/AO")
    driver = ao.get("driver") or {}
    reason = f"Underskottet ({format_mnkr(ao['deviation_sek'] or 0.0)} mnkr mot budget)"
    if driver:
        name, amount = driver["name"].lower(), format_mnkr(driver["deviation_sek"])
        reason += f" drivs främst av {name} ({amount} mnkr"
        if driver.get("volume_effect_sek") is not None:
            reason += (
                f", varav volym {format_mnkr(driver['volume_effect_sek'])}"
                f" och pris {format_mnkr(driver['price_effect_sek'])} mnkr"
            )
        reason += ")"
    chef.ok(
        "PUT",
        f"{nodes}/AO/comment",
        {
            "text": reason + ". Fler beviljade hemtjänsttimmar än planerat och vikarier med "
            "övertid vid sjukfrånvaro. En plan för ekonomi i balans tas fram till nämnden i "
            "september."
        },
    )
    saving = 4_000_000.0
    chef.ok(
        "POST",
        f"{nodes}/AO/measures",
        {
            "text": "Bemanningsöversyn i hemtjänsten: schemaläggning som minskar vikarietimmar "
            "och övertid",
            "responsible": "Eva Sandberg, avdelningschef äldreomsorg",
            "amount_sek": saving,
            "status": "beslutad",
            "decided": f"{period[:4]}-09-10",
        },
    )
    # The åtgärd works from September: a third of the year's saving falls in this year.
    chef.ok(
        "PUT",
        f"{nodes}/AO/forecast",
        {
            "full_year_sek": ao["forecast_full_year_sek"] - saving / 3,
            "reason": "Beslutad bemanningsöversyn minskar kostnaderna september–december "
            f"med cirka {format_mnkr(saving / 3)} mnkr.",
        },
    )
    as_user("karin-holm").ok(
        "PUT",
        f"{nodes}/1110/comment",
        {"text": "Två nya brukare med dubbelbemanning sedan juni ger fler timmar än planerat."},
    )
    controller = as_user("erik-sjoberg")
    approved: list[str] = []
    known = [n for n in domain.org.nodes.values() if domain.org.is_known(n.id)]
    order = [n.id for n in known if n.level == "avdelning"]
    order += [n.id for n in known if n.level == "forvaltning"]
    order.append(domain.org.root.id)
    for unit in order:
        controller.ok("POST", f"{nodes}/{unit}/approve", {"comment": "Delårsprognosen granskad."})
        approved.append(unit)
    return FollowUpResult(web, f"{base}/perioder/{period}/noder/AO", approved)
