"""The /api/v1 of ``budgetvakt web`` against a real server process, for every role: what each
may do, and that it is refused (401, 403, 422, 409) where it does not belong. Every test runs on
SQLite and on the private PostgreSQL (fixture ``database_url``)."""

from __future__ import annotations

import pytest

from tests.services.followup.fixtures import PERIOD
from tests.services.web.fixtures import ApiClient, WebServer, logged_in

pytestmark = pytest.mark.integration

NODE = f"/api/v1/periods/{PERIOD}/nodes"
REQUIRED_FIELDS = {
    "budget_full_year_sek",
    "actual_ytd_sek",
    "forecast_full_year_sek",
    "forecast_low_sek",
    "forecast_high_sek",
    "adjusted_full_year_sek",
    "comment",
    "measures",
    "approved",
}
MEASURE = {
    "text": "Översyn av vikarieanvändning",
    "responsible": "Anna Berg",
    "amount_sek": 2_500_000,
    "status": "beslutad",
    "decided": "2024-04-15",
}


def test_nothing_without_a_login(web_server: WebServer) -> None:
    anonymous = ApiClient(web_server.url)
    assert anonymous.call("GET", "/api/v1/periods").status == 401
    assert anonymous.call("GET", f"{NODE}/AO").status == 401
    assert anonymous.call("PUT", f"{NODE}/AO/comment", {"text": "x"}).status == 401
    assert anonymous.call("POST", f"{NODE}/AO/approve").status == 401
    assert anonymous.login("anna", "fel-losenord").status == 401
    assert anonymous.login("nobody", "fel-losenord").status == 401
    missing = anonymous.call("POST", "/api/v1/login", {"username": "anna"}, csrf=False)
    assert (missing.status, missing.body["field"]) == (422, "password")


def test_login_gives_a_cookie_and_a_csrf_token_that_writes_need(web_server: WebServer) -> None:
    client = ApiClient(web_server.url)
    answer = client.login("anna")
    assert answer.status == 200 and len(answer.body["csrf_token"]) >= 32
    cookie = next(iter(client.cookies))
    assert cookie.name == "budgetvakt_session" and cookie.has_nonstandard_attr("HttpOnly")
    periods = client.call("GET", "/api/v1/periods").body
    assert periods == {"periods": [PERIOD], "namnder": {"VON": [PERIOD]}}
    no_token = client.call("PUT", f"{NODE}/AO/comment", {"text": "t"}, csrf=False)
    wrong_token = client.call("PUT", f"{NODE}/AO/comment", {"text": "t"}, csrf="forged")
    assert (no_token.status, wrong_token.status) == (403, 403)
    assert "X-CSRF-Token" in no_token.body["detail"]
    assert client.call("POST", "/api/v1/logout").status == 200
    assert client.call("GET", "/api/v1/periods").status == 401


def test_enhetschef_writes_only_for_their_enhet(web_server: WebServer) -> None:
    karin = logged_in(web_server, "karin")  # enhetschef of 1110
    node = karin.call("GET", f"{NODE}/1110")
    assert node.status == 200 and set(node.body) >= REQUIRED_FIELDS
    assert node.body["forecast_low_sek"] <= node.body["forecast_full_year_sek"]
    assert node.body["forecast_full_year_sek"] <= node.body["forecast_high_sek"]
    assert (node.body["approved"], node.body["comment"], node.body["measures"]) == (False, None, [])
    assert karin.call("GET", f"{NODE}/AO").status == 200  # the node above: context
    assert karin.call("GET", f"{NODE}/1120").status == 403  # a sibling enhet
    assert karin.call("GET", f"{NODE}/LSS").status == 403

    comment = karin.call("PUT", f"{NODE}/1110/comment", {"text": "Fler timmar än planerat"})
    assert comment.status == 200 and comment.body["comment"] == "Fler timmar än planerat"
    assert karin.call("PUT", f"{NODE}/AO/comment", {"text": "x"}).status == 403
    assert karin.call("PUT", f"{NODE}/1120/comment", {"text": "x"}).status == 403

    no_reason = karin.call("PUT", f"{NODE}/1110/forecast", {"full_year_sek": 9.1e7})
    blank_reason = karin.call(
        "PUT", f"{NODE}/1110/forecast", {"full_year_sek": 9.1e7, "reason": "  "}
    )
    assert (no_reason.status, no_reason.body["field"]) == (422, "reason")
    assert (blank_reason.status, blank_reason.body["field"]) == (422, "reason")
    adjusted = karin.call(
        "PUT",
        f"{NODE}/1110/forecast",
        {"full_year_sek": 9.1e7, "reason": "En placering upphör i oktober"},
    )
    assert adjusted.status == 200 and adjusted.body["adjusted_full_year_sek"] == 9.1e7
    assert adjusted.body["forecast_full_year_sek"] == node.body["forecast_full_year_sek"]

    measure = karin.call("POST", f"{NODE}/1110/measures", MEASURE)
    assert measure.status == 201
    assert measure.body["measures"][0]["status"] == "beslutad"
    assert karin.call("POST", f"{NODE}/1110/approve").status == 403
    assert karin.call("POST", f"{NODE}/AO/approve").status == 403


def test_avdelningschef_writes_in_the_subtree_only(web_server: WebServer) -> None:
    anna = logged_in(web_server, "anna")  # avdelningschef of AO
    assert anna.call("PUT", f"{NODE}/AO/comment", {"text": "Vikarier"}).status == 200
    assert anna.call("PUT", f"{NODE}/1120/comment", {"text": "Syd"}).status == 200
    assert anna.call("POST", f"{NODE}/AO/measures", MEASURE).status == 201
    assert anna.call("PUT", f"{NODE}/LSS/comment", {"text": "x"}).status == 403
    assert anna.call("GET", f"{NODE}/IFO").status == 403
    assert anna.call("POST", f"{NODE}/AO/approve").status == 403
    measures = anna.call("GET", f"{NODE}/AO").body["measures"]
    changed = anna.call(
        "PATCH",
        f"{NODE}/AO/measures/{measures[0]['id']}",
        {"status": "genomford", "realised_sek": 1_200_000},
    )
    assert changed.status == 200
    assert changed.body["measures"][0]["realised_sek"] == 1_200_000


def test_invalid_input_is_422_naming_the_field(web_server: WebServer) -> None:
    anna = logged_in(web_server, "anna")
    cases = {
        "status": {**MEASURE, "status": "klar"},
        "amount_sek": {k: v for k, v in MEASURE.items() if k != "amount_sek"},
        "decided": {**MEASURE, "decided": "15/4"},
        "text": {**MEASURE, "text": ""},
    }
    for field, body in cases.items():
        answer = anna.call("POST", f"{NODE}/AO/measures", body)
        assert (answer.status, answer.body.get("field")) == (422, field), answer
    not_a_number = anna.call("PUT", f"{NODE}/AO/forecast", {"full_year_sek": "ett", "reason": "r"})
    assert (not_a_number.status, not_a_number.body["field"]) == (422, "full_year_sek")
    bad_period = anna.call("GET", "/api/v1/periods/2024-13/nodes/AO")
    assert (bad_period.status, bad_period.body["field"]) == (422, "period")
    assert anna.call("GET", "/api/v1/periods/2030-01/nodes/AO").status == 404
    assert anna.call("GET", f"{NODE}/NOPE").status == 404


def test_forvaltningschef_reads_everything_and_writes_nothing(web_server: WebServer) -> None:
    fredrik = logged_in(web_server, "fredrik")
    for unit in ("VON", "VOF", "AO", "LSS", "2110"):
        assert fredrik.call("GET", f"{NODE}/{unit}").status == 200
    assert fredrik.call("PUT", f"{NODE}/VOF/comment", {"text": "x"}).status == 403
    assert fredrik.call("POST", f"{NODE}/AO/approve").status == 403


def test_controller_approves_per_avdelning_then_the_namnd(web_server: WebServer) -> None:
    cecilia = logged_in(web_server, "cecilia")
    anna = logged_in(web_server, "anna")
    assert anna.call("PUT", f"{NODE}/AO/comment", {"text": "Före godkännandet"}).status == 200
    early = cecilia.call("POST", f"{NODE}/VON/approve")
    assert early.status == 409 and "AO, IFO, LSS" in early.body["detail"]
    enhet = cecilia.call("POST", f"{NODE}/1110/approve")
    assert (enhet.status, enhet.body["field"]) == (422, "org_unit")
    for unit in ("AO", "LSS", "IFO"):
        answer = cecilia.call("POST", f"{NODE}/{unit}/approve", {"comment": "Granskad"})
        assert answer.status == 200 and answer.body["approved"] is True
        assert answer.body["approval"]["snapshot_version"] == 1
    assert cecilia.call("POST", f"{NODE}/VON/approve").body["approved"] is True

    # A change after the approval: a new snapshot version, AO and VON are no longer approved.
    assert anna.call("PUT", f"{NODE}/AO/comment", {"text": "Efter"}).status == 200
    after = anna.call("GET", f"{NODE}/AO").body
    assert (after["approved"], after["snapshot_version"]) == (False, 2)
    lss = cecilia.call("GET", f"{NODE}/LSS").body
    assert (lss["approved"], lss["snapshot_version"]) == (True, 2)  # carried over
    assert cecilia.call("GET", f"{NODE}/VON").body["approved"] is False
