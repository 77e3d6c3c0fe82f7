"""Swedish texts and webhook bodies; the sent-store; the metric names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

from contract.output_records import AlertEvent
from core.domain import DomainConfig
from services.notifier.render import (
    EVENT_IDS_HEADER,
    SIGN_LEGEND,
    MailContext,
    build_email,
    email_body,
    headline,
    json_payload,
    method_sv,
    subject,
    teams_card,
)
from services.notifier.routing import Routing
from services.notifier.sent_store import SentStore
from services.notifier.service import metric_names
from services.notifier.settings import NotifierSettings
from tests.services.notifier.fixtures import make_alert


def alert(unit: str, **kwargs: object) -> AlertEvent:
    return AlertEvent.model_validate(make_alert(unit, **kwargs))  # type: ignore[arg-type]


SEPT_12 = datetime(2025, 9, 12, 8, 0, tzinfo=UTC).isoformat()  # a Friday
CONTEXT_URL = "https://ekonomi.storvik.example/budgetvakt"


def context(routing: Routing) -> MailContext:
    settings = NotifierSettings(report_base_url=CONTEXT_URL + "/")
    return MailContext(routing, settings.report_url)


def full_alert(**fields: object) -> AlertEvent:
    """A worsened critical vikarie alert with every lifecycle field the rules send."""
    values = {
        "low": 30_100_000.0,
        "high": 32_900_000.0,
        "volume_effect": -2_500_000.0,
        "price_effect": -1_100_000.0,
        "interval_coverage": 0.81,
    }
    return alert(
        "1120",
        severity="critical",
        status="worsened",
        sequence=2,
        category="substitutes",
        forecast_sek=31_400_000,
        budget_sek=27_800_000,
        values=values,
        title="Hemtjänst Syd: vikarier 31,4 mnkr helårsprognos 2025, 3,6 mnkr över budget",
        change="underskottet har ökat från 1,2 till 3,6 mnkr sedan juni",
        method="auto",
        emitted_at=SEPT_12,
        **fields,
    )


def test_subject_is_the_title_or_says_unit_what_period_amount_and_direction(
    domain: DomainConfig,
) -> None:
    assert subject([full_alert()], domain) == (
        "Hemtjänst Syd: vikarier 31,4 mnkr helårsprognos 2025, 3,6 mnkr över budget"
    )
    # An event without a title (before the rules sent one) gets the same parts from its values.
    norr = alert("1110")
    assert subject([norr], domain) == (
        "Hemtjänst Norr: övertid och fyllnadstid prognos 14,5 mnkr för 2025, 2,1 mnkr över budget"
    )
    ytd = alert(
        "AO",
        category="substitutes",
        values={"actual_ytd": 69_200_000.0, "budget_ytd": 46_500_000.0},
    )
    ytd_values = dict(ytd.values)
    del ytd_values["forecast"], ytd_values["budget"]
    ytd = ytd.model_copy(update={"values": ytd_values})
    assert subject([ytd], domain) == (
        "Äldreomsorg: vikarier och timavlönade 69,2 mnkr t.o.m. augusti 2025, 22,7 mnkr över budget"
    )
    surplus = alert("1110", forecast_sek=11_000_000, budget_sek=12_400_000)
    assert subject([surplus], domain).endswith("1,4 mnkr under budget")
    hours = alert(
        "1120",
        category="home_care_hours",
        values={"actual_ytd": 145_459.0, "plan_ytd": 138_334.0},
    )
    hours = hours.model_copy(
        update={"values": {k: hours.values[k] for k in ("actual_ytd", "plan_ytd")}}
    )
    assert subject([hours], domain) == (
        "Hemtjänst Syd: hemtjänsttimmar 145 459 timmar t.o.m. augusti 2025, 7 125 timmar över plan"
    )
    resolved = alert("1110", status="resolved", sequence=2, resolution="within_limits")
    assert subject([resolved], domain) == (
        "Hemtjänst Norr: övertid och fyllnadstid åter inom gränserna (augusti 2025)"
    )
    closed = alert("1110", status="resolved", sequence=3, resolution="year_closed")
    assert subject([closed], domain) == (
        "Hemtjänst Norr: övertid och fyllnadstid 2025, avslutat: året är stängt"
    )
    improved = alert("1210", status="improved", sequence=2, title="Ekbacken: övertid 1,0 mnkr")
    assert subject([improved], domain) == "Förbättrat: Ekbacken: övertid 1,0 mnkr"
    # A digest: the most urgent item's headline and how many more.
    burst = [norr, full_alert(), alert("1210", category="sick_pay")]
    assert subject(burst, domain) == (
        "Hemtjänst Syd: vikarier 31,4 mnkr helårsprognos 2025, 3,6 mnkr över budget"
        " – och 2 larm till"
    )
    for text in (subject([a], domain) for a in (norr, resolved, closed, ytd)):
        assert "avvikelse" not in text.lower() and "åtgärdad" not in text.lower()


def test_body_says_what_to_do(domain: DomainConfig, routing: Routing) -> None:
    johan = routing.recipients["johan-ek"]
    body = email_body(johan, [full_alert()], domain, context(routing))
    expected = [
        "Hej Johan Ek,",
        "budgetvakt har ett budgetlarm för Hemtjänst Syd efter stängningen av augusti 2025:",
        "Hemtjänst Syd: vikarier 31,4 mnkr helårsprognos 2025, 3,6 mnkr över budget",
        "Kritisk · Försämrat sedan förra meddelandet · Hemtjänst Syd (1120), "
        "Vård- och omsorgsnämnden · augusti 2025 · Vikarier och timavlönade",
        "Budget helår 2025: 27,8 mnkr",
        "Prognos helår 2025: 31,4 mnkr (80 %-intervall 30,1–32,9 mnkr)",
        "Avvikelse (budget − prognos): −3,6 mnkr (underskott)",
        "Förklaring av avvikelsen: volym −2,5 mnkr, pris och produktivitet −1,1 mnkr",
        "Prognosmetod: en kombination av prognosmodeller, vägd efter hur väl de har träffat "
        "tidigare år. Intervallet har träffat i 81 % av fallen i efterhand.",
        "Sedan förra meddelandet: underskottet har ökat från 1,2 till 3,6 mnkr sedan juni",
        # 10 working days after Friday 12 September 2025.
        "Begärd åtgärd: Lämna en åtgärdsplan för Hemtjänst Syd till controller Erik Sjöberg "
        "senast 26 september 2025.",
        "Ansvarig controller: Erik Sjöberg, erik.sjoberg@storvik.example",
        f"Rapport: {CONTEXT_URL}/rapporter/delarsrapport-2025-08.html",
        SIGN_LEGEND,
        "Du får det här meddelandet som Enhetschef Hemtjänst Syd.",
        "Det är skickat automatiskt av budgetvakt och innehåller inga uppgifter om enskilda.",
    ]
    lines = body.splitlines()
    positions = [lines.index(line) for line in expected]
    assert positions == sorted(positions), "parts out of order"
    assert "personuppgifter" not in body


def test_warning_asks_for_a_comment_and_the_nämnd_for_a_plan(
    domain: DomainConfig, routing: Routing
) -> None:
    warning = alert("2110", severity="warning", emitted_at=SEPT_12)
    body = email_body(routing.recipients["lena-strand"], [warning], domain, context(routing))
    assert "Begärd åtgärd: Kommentera avvikelsen för LSS boende i månadsuppföljningen." in body
    assert "Ansvarig controller: Anna Wikström, anna.wikstrom@storvik.example" in body
    namnd = alert("VON", severity="critical", category="total", emitted_at=SEPT_12)
    body = email_body(routing.recipients["helena-dahl"], [namnd], domain, context(routing))
    assert (
        "Begärd åtgärd: Förvaltningen tar fram en plan för ekonomi i balans till nämnden; "
        "underlag till controller Sara Öberg senast 26 september 2025." in body
    )
    assert "Vård- och omsorgsnämnden: nettokostnad prognos" in body


def test_after_the_december_close_it_is_utfall(domain: DomainConfig, routing: Routing) -> None:
    closed = full_alert(year_closed=True, period="2025-12").model_copy(update={"title": None})
    body = email_body(routing.recipients["johan-ek"], [closed], domain, context(routing))
    assert "Utfall helår 2025: 31,4 mnkr" in body
    assert "Avvikelse (budget − utfall): −3,6 mnkr (underskott)" in body
    assert "Prognos" not in body and "prognos 31,4" not in body and "80 %-intervall" not in body
    assert (
        "Begärd åtgärd: Förklara avvikelsen för Hemtjänst Syd i verksamhetsberättelsen för 2025."
        in body
    )
    assert subject([closed], domain).startswith(
        "Hemtjänst Syd: vikarier och timavlönade utfall 31,4"
    )


def test_resolutions_are_never_called_fixed(domain: DomainConfig, routing: Routing) -> None:
    back = alert("1110", status="resolved", sequence=2, resolution="within_limits")
    ended = alert("1110", status="resolved", sequence=2, resolution="year_closed", period="2025-12")
    karin = routing.recipients["karin-holm"]
    back_body = email_body(karin, [back], domain, context(routing))
    assert "Varning · Åter inom gränserna · Hemtjänst Norr (1110)" in back_body
    assert "Begärd åtgärd" not in back_body  # nothing to do when it is back within limits
    ended_body = email_body(karin, [ended], domain, context(routing))
    assert "Avslutat: året är stängt" in ended_body
    assert "verksamhetsberättelsen för 2025" in ended_body
    for body in (back_body, ended_body):
        assert "åtgärdad" not in body.lower()


def test_old_events_render_without_the_new_fields(domain: DomainConfig, routing: Routing) -> None:
    """An event from before the lifecycle fields, with no routing context at all."""
    old = alert("1110")
    body = email_body(routing.recipients["karin-holm"], [old], domain)
    assert (
        "Varning · Nytt larm · Hemtjänst Norr (1110), Vård- och omsorgsnämnden · augusti 2025"
        in body
    )
    assert "Prognos helår 2025: 14,5 mnkr" in body
    for absent in (
        "Sedan förra",
        "Begärd åtgärd",
        "Ansvarig controller",
        "Rapport:",
        "Prognosmetod",
    ):
        assert absent not in body


def test_digest_orders_groups_and_lists_each_alert_once(
    domain: DomainConfig, routing: Routing
) -> None:
    erik = routing.recipients["erik-sjoberg"]
    alerts = [
        alert("1210", status="improved", sequence=3, severity="info"),
        alert("1110", status="resolved", sequence=2),
        full_alert(),
    ]
    body = email_body(erik, alerts, domain, context(routing))
    assert body.index("Nya och försämrade larm") < body.index("1. Hemtjänst Syd")
    assert body.index("Avslutade larm") < body.index("2. Hemtjänst Norr")
    assert body.index("Förbättrade larm, fortfarande aktiva") < body.index("3. Särskilt boende")
    assert "budgetvakt har 3 budgetlarm för Äldreomsorg" in body
    assert (
        "Ansvarig controller för alla larm ovan: Erik Sjöberg, erik.sjoberg@storvik.example (du)"
        in (body)
    )


def test_method_in_words() -> None:
    assert method_sv("auto:fallback") is not None and "utan egen historisk" in str(
        method_sv("auto:fallback")
    )
    assert str(method_sv("auto+prelim")).endswith("(preliminär: månaden är inte stängd)")
    assert method_sv("newmodel") == "modellen newmodel"
    assert method_sv(None) is None


def test_email_headers(domain: DomainConfig, routing: Routing) -> None:
    karin = routing.recipients["karin-holm"]
    alerts = [alert("1110"), alert("1110", category="sick_pay")]
    superseded = alert("1110", sequence=0 + 1, category="sick_pay").model_copy(
        update={"event_id": "earlier@1"}
    )
    message = build_email(
        karin,
        alerts,
        domain,
        "budgetvakt <budgetvakt@storvik.example>",
        carried=[superseded, *alerts],
    )
    assert message["To"] == "Karin Holm <karin.holm@storvik.example>"
    assert message["From"] == "budgetvakt <budgetvakt@storvik.example>"
    assert message[EVENT_IDS_HEADER].split() == ["earlier@1", *(a.event_id for a in alerts)]
    assert message["Message-ID"].endswith("@storvik.example>")
    assert message.get_content_charset() == "utf-8"
    # A long subject with å, ä, ö survives the wire without a doubled space.
    ifo = (
        "Individ- och familjeomsorg: nettokostnad prognos 210,3 mnkr för 2023, "
        "28,9 mnkr över budget"
    )
    long = [alert("IFO", severity="critical", title=ifo), alert("3110"), alert("3120")]
    sent = build_email(karin, long, domain, "budgetvakt <budgetvakt@storvik.example>")
    received = message_from_bytes(sent.as_bytes(), policy=policy.default)
    assert received["Subject"] == subject(long, domain)
    assert "  " not in received["Subject"]
    assert received.get_content() == sent.get_content()


def test_webhook_bodies(domain: DomainConfig, routing: Routing) -> None:
    office = routing.recipients["ekonomienheten"]
    one = full_alert()
    payload = json_payload(office, one, domain, context(routing))
    assert payload["event_id"] == one.event_id
    assert payload["values"] == one.values
    assert payload["severity_sv"] == "Kritisk"
    assert payload["status_sv"] == "Försämrat sedan förra meddelandet"
    assert payload["title_sv"] == one.title
    assert payload["action_sv"].startswith("Lämna en åtgärdsplan för Hemtjänst Syd")
    assert payload["controller"] == {
        "id": "erik-sjoberg",
        "name": "Erik Sjöberg",
        "email": "erik.sjoberg@storvik.example",
    }
    assert payload["report_url"] == f"{CONTEXT_URL}/rapporter/delarsrapport-2025-08.html"
    assert payload["recipient"] == {
        "id": "ekonomienheten",
        "name": "Ekonomienheten",
        "role": "Ärendesystem",
    }
    json.dumps(payload)  # serialisable as is
    card = teams_card(routing.recipients["erik-sjoberg"], [alert("1110"), one], domain)
    content = card["attachments"][0]["content"]
    assert card["type"] == "message"
    assert content["type"] == "AdaptiveCard"
    containers = [b for b in content["body"] if b["type"] == "Container"]
    assert len(containers) == 2
    assert containers[0]["items"][0]["text"] == "Kritisk · Försämrat sedan förra meddelandet"
    assert containers[0]["items"][0]["color"] == "Attention"
    assert containers[0]["items"][1]["text"] == one.title
    assert containers[0]["items"][2]["text"] == one.message
    facts = {f["title"]: f["value"] for f in containers[0]["items"][3]["facts"]}
    assert facts["Prognos helår 2025"] == "31,4 mnkr (80 %-intervall 30,1–32,9 mnkr)"
    assert "inga uppgifter om enskilda" in content["body"][-1]["text"]


def test_store_remembers_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "notifier.sqlite"
    store = SentStore(path)
    assert not store.was_sent("a@1", "karin-holm", "email")
    store.record_sent(["a@1", "b@1"], "karin-holm", "email")
    store.record_sent(["a@1"], "karin-holm", "email")  # a repeat is harmless
    store.close()
    store = SentStore(path)
    assert store.was_sent("a@1", "karin-holm", "email")
    assert store.was_sent("b@1", "karin-holm", "email")
    assert not store.was_sent("a@1", "karin-holm", "webhook")
    assert not store.was_sent("a@1", "johan-ek", "email")
    assert store.count() == 2
    store.record_sent(["old@1"], "johan-ek", "email", at=datetime.now(UTC) - timedelta(days=500))
    assert store.prune(timedelta(days=400)) == 1
    assert store.count() == 2
    store.close()


def test_metric_names_are_the_contract() -> None:
    assert metric_names() == {
        "budgetvakt_notifier_alerts_consumed_total",
        "budgetvakt_notifier_sent_total",
        "budgetvakt_notifier_failures_total",
        "budgetvakt_notifier_dead_letter_total",
        "budgetvakt_notifier_duplicates_skipped_total",
        "budgetvakt_notifier_delivery_seconds",
        "budgetvakt_pii_blocked_total",  # streams.pii_egress, shared with the worker
    }


def test_category_names_in_swedish(domain: DomainConfig) -> None:
    from services.notifier.render import category_sv

    assert category_sv("overtime", domain) == "Övertid och fyllnadstid"
    assert category_sv("home_care_hours", domain) == "Hemtjänsttimmar"
    assert category_sv("total", domain) == "Totalt, alla kategorier"
    assert category_sv(None, domain) is None


def test_headline_of_other_rule_kinds_without_a_title(domain: DomainConfig) -> None:
    def only(unit: str, category: str, **values: float) -> AlertEvent:
        return alert(unit, category=category).model_copy(update={"values": values})

    month = only("2110", "substitutes", actual_month=1_400_000.0, limit=909_000.0)
    assert headline(month, domain) == (
        "LSS boende: vikarier och timavlönade 1,4 mnkr i augusti 2025, 0,5 mnkr över gränsen"
    )
    agency = only("1210", "agency_staff", amount=600_000.0, budget=0.0)
    assert headline(agency, domain) == (
        "Särskilt boende Ekbacken: inhyrd personal 600 tkr för 2025, 600 tkr över budget"
    )
    sick = only("1220", "sick_leave_hours", share_pct=8.1)
    assert headline(sick, domain) == (
        "Särskilt boende Lindgården: sjukfrånvaro 8,1 % av schemalagd tid t.o.m. augusti 2025"
    )


def test_forecast_change_and_volumes_keep_the_sign_convention(
    domain: DomainConfig, routing: Routing
) -> None:
    worse = alert("AO", category="total", forecast_sek=605_700_000).model_copy(
        update={
            "values": {
                "forecast": 605_700_000.0,
                "previous_forecast": 593_900_000.0,
                "deviation": -11_800_000.0,
            }
        }
    )
    assert headline(worse, domain) == (
        "Äldreomsorg: nettokostnad prognos 605,7 mnkr för 2025, 11,8 mnkr sämre än förra prognosen"
    )
    body = email_body(routing.recipients["eva-sandberg"], [worse], domain)
    assert "Förra månadens prognos: 593,9 mnkr" in body
    assert "Förändring (förra − nya prognosen): −11,8 mnkr (sämre)" in body
    assert "Avvikelse (budget" not in body  # it is not a deviation from the budget
    calmer = worse.model_copy(update={"status": "resolved", "sequence": 2})
    assert headline(calmer, domain) == (
        "Äldreomsorg: försämrad helårsprognos för nettokostnad åter inom gränserna (augusti 2025)"
    )
    hours = alert("1120", category="home_care_hours").model_copy(
        update={"values": {"actual_ytd": 145_459.0, "plan_ytd": 138_334.0, "excess": 7_125.0}}
    )
    body = email_body(routing.recipients["johan-ek"], [hours], domain)
    assert "Avvikelse (plan − utfall): −7 125 timmar (över plan)" in body


def test_a_long_digest_starts_with_its_headlines_and_names_the_controller_once(
    domain: DomainConfig, routing: Routing
) -> None:
    alerts = [
        alert(unit, category=c) for unit in ("1110", "1120") for c in ("overtime", "sick_pay")
    ]
    body = email_body(routing.recipients["eva-sandberg"], alerts, domain, context(routing))
    overview, details = body.split("I detalj:")
    assert overview.count("Hemtjänst Norr: övertid och fyllnadstid prognos") == 1
    assert overview.count("Hemtjänst Syd: sjuklön prognos") == 1
    assert "Ansvarig controller: " not in details  # said once, for all
    assert (
        details.count(
            "Ansvarig controller för alla larm ovan: Erik Sjöberg, erik.sjoberg@storvik.example"
        )
        == 1
    )
    assert details.count(f"Rapport: {CONTEXT_URL}/rapporter/delarsrapport-2025-08.html") == 1
    assert details.count("Begärd åtgärd: ") == 4  # one action per unit: not shared
    one_unit = [alert("1110", category=c) for c in ("overtime", "sick_pay")]
    body = email_body(routing.recipients["karin-holm"], one_unit, domain, context(routing))
    assert body.count("Begärd åtgärd") == 1
    assert (
        "Begärd åtgärd för alla larm ovan: Kommentera avvikelsen för Hemtjänst Norr i "
        "månadsuppföljningen." in body
    )


def test_a_digest_does_not_repeat_a_total_two_rules_quote(
    domain: DomainConfig, routing: Routing
) -> None:
    deficit = alert("AO", category="total", forecast_sek=605_700_000, budget_sek=590_500_000)
    worse = alert("AO", category="total", rule="forecast_deterioration").model_copy(
        update={"values": {"forecast": 605_700_000.0, "previous_forecast": 593_900_000.0}}
    )
    body = email_body(routing.recipients["eva-sandberg"], [deficit, worse], domain)
    assert body.count("Prognos helår 2025: 605,7 mnkr") == 1
    assert "Förra månadens prognos: 593,9 mnkr" in body


def test_a_year_to_date_overrun_is_not_shown_as_the_years_deviation(
    domain: DomainConfig, routing: Routing
) -> None:
    """A staffing rule's own deviation is the year to date's (−1,2 mnkr) while the forecast is
    7,1 mnkr over the year's budget: each figure is named with what it compares."""
    base = full_alert()
    ytd_values = {
        **base.values,
        "actual_ytd": 6_100_000.0,
        "budget_ytd": 4_900_000.0,
        "deviation": -1_200_000.0,
        "budget": 20_000_000.0,
        "forecast": 27_100_000.0,
    }
    ytd_alert = base.model_copy(update={"values": ytd_values})
    body = email_body(routing.recipients["johan-ek"], [ytd_alert], domain, context(routing))
    assert "Avvikelse t.o.m. augusti 2025 (budget − utfall): −1,2 mnkr (underskott)" in body
    assert "Avvikelse helår 2025 (budget − prognos): −7,1 mnkr (underskott)" in body
    assert "Avvikelse (budget − prognos): −1,2" not in body
