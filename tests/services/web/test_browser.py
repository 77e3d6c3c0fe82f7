"""``budgetvakt web`` in a real headless browser (Debian's Chromium driven by Playwright): an
enhetschef comments and adjusts (refused without a reason) and cannot approve; the controller
approves; a later change freezes the approved version, and the audit trail shows it all."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.services.followup.fixtures import PERIOD
from tests.services.reports.fixtures import chromium_binary
from tests.services.web.fixtures import USERS, WebServer

pytestmark = pytest.mark.integration


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_binary(), headless=True)
        try:
            yield launched
        finally:
            launched.close()


def log_in(page: Page, server: WebServer, username: str) -> None:
    page.goto(f"{server.url}/")
    assert "/login" in page.url  # nobody gets in without logging in
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", USERS[username][2])
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/")


def log_out(page: Page) -> None:
    page.click("header button[type=submit]")
    page.wait_for_url("**/login")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_follow_up_as_enhetschef_then_controller(web_server: WebServer, browser: Browser) -> None:
    page = browser.new_page()
    node_url = f"{web_server.url}/perioder/{PERIOD}/noder/1110"

    # A wrong password stays on the login page.
    page.goto(f"{web_server.url}/login")
    page.fill("input[name=username]", "karin")
    page.fill("input[name=password]", "fel-losenord")
    page.click("button[type=submit]")
    assert "Fel användarnamn eller lösenord" in page.inner_text("main")

    log_in(page, web_server, "karin")
    page.click(f"a[href='/perioder/{PERIOD}']")
    tree = page.inner_text("main")
    assert "Hemtjänst Norr" in tree and "Äldreomsorg" in tree
    assert "Hemtjänst Syd" not in tree  # a sibling enhet is not karin's
    page.goto(node_url)

    page.fill("textarea[name=text]", "Fler beviljade timmar än budgeterat.")
    page.click("button[value=comment]")
    assert "Fler beviljade timmar än budgeterat." in page.inner_text("#comment")

    page.fill("input[name=full_year_mnkr]", "91,5")
    page.click("text=Spara prognos")
    assert "Motivering krävs" in page.inner_text("[role=alert]")
    assert page.inner_text("#adjusted-forecast").strip() == "–"
    page.fill("input[name=full_year_mnkr]", "91,5")
    page.fill("textarea[name=reason]", "En placering upphör i oktober")
    page.click("text=Spara prognos")
    adjusted = page.inner_text("#adjusted-forecast")
    assert "91,5" in adjusted and "placering upphör" in adjusted

    # An åtgärd: added as beslutad, then reported genomförd with its realised amount.
    page.fill("form[action$=atgarder] input[name=text]", "Schemaläggning utan delade turer")
    page.fill("form[action$=atgarder] input[name=responsible]", "Karin Holm")
    page.fill("form[action$=atgarder] input[name=amount_mnkr]", "1,2")
    page.select_option("form[action$=atgarder] select[name=status]", "beslutad")
    page.fill("form[action$=atgarder] input[name=decided]", "2024-04-10")
    page.click("text=Lägg till åtgärd")
    measures = page.inner_text("#measures")
    assert "Schemaläggning utan delade turer" in measures and "beslutad" in measures
    page.select_option("#measures select[name=status]", "genomford")
    page.fill("#measures input[name=realised_mnkr]", "0,8")
    page.click("#measures button[type=submit]")
    row = page.inner_text("#measures tbody tr")
    assert "genomförd" in row and "0,8" in row and "1,2" in row

    # No approve button for an enhetschef, and a forged approval is refused by the server.
    assert page.locator("text=Godkänn prognosen").count() == 0
    token = page.get_attribute("input[name=csrf_token]", "value")
    forged = page.request.post(
        f"{web_server.url}/perioder/{PERIOD}/noder/AO/godkann",
        form={"csrf_token": token or ""},
        max_redirects=0,
    )
    assert forged.status == 403
    other = page.goto(f"{web_server.url}/perioder/{PERIOD}/noder/LSS")
    assert other is not None and other.status == 403
    log_out(page)

    log_in(page, web_server, "cecilia")
    page.goto(f"{web_server.url}/perioder/{PERIOD}/noder/AO")
    page.fill("form[action$=godkann] input[name=comment]", "Granskad av controller")
    page.click("text=Godkänn prognosen")
    assert "Godkänd av cecilia" in page.inner_text("#approval-status")

    # A change after the approval: version 2 is current, version 1 is frozen with its approval.
    page.goto(node_url)
    page.fill("textarea[name=text]", "Kompletterad analys efter godkännandet.")
    page.click("button[value=comment]")
    page.goto(f"{web_server.url}/perioder/{PERIOD}/noder/AO")
    assert "Inte godkänd för version 2" in page.inner_text("#approval-status")
    versions = page.inner_text("#versions")
    assert "1 (fryst)" in versions and "2 (aktuell)" in versions and "cecilia" in versions
    audit = page.inner_text("#audit")
    assert "godkännande" in audit and "cecilia" in audit
    page.goto(node_url)
    trail = page.inner_text("#audit")
    for expected in (
        "karin",
        "cecilia",
        "kommentar",
        "förvaltningens prognos",
        "ny åtgärd",
        "ändrad åtgärd",
        "ny version",
    ):
        assert expected in trail
    # The nämnd's budget (over 1 000 mnkr) keeps its digit groups together: a no-break space.
    page.goto(f"{web_server.url}/perioder/{PERIOD}")
    table = page.inner_html("table")
    assert re.search(r"\d&nbsp;\d{3},\d", table)
    assert not re.search(r"\d \d{3},\d", table)
