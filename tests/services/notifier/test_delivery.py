"""The notifier end to end, in-process: alert events on the embedded broker, a real SMTP server,
a real HTTP server for webhooks, the shipped routing (webhooks pointed at the local server)."""

from __future__ import annotations

import json

import pytest

from services.processes.scrape import sum_metric
from services.processes.supervised import wait_until
from tests.services.notifier.fixtures import NotifierCase, make_alert

pytestmark = pytest.mark.integration

KARIN = "karin.holm@storvik.example"  # enhetschef 1110, from info
JOHAN = "johan.ek@storvik.example"  # enhetschef 1120
MARIA = "maria.lund@storvik.example"  # enhetschef 1210
EVA = "eva.sandberg@storvik.example"  # avdelningschef AO, from warning
ERIK = "erik.sjoberg@storvik.example"  # controller AO, from warning, also Teams
SOFIA = "sofia.berglund@storvik.example"  # enhetschef 3110
ANNA = "anna.wikstrom@storvik.example"  # controller LSS + IFO, from warning
HELENA = "helena.dahl@storvik.example"  # förvaltningschef: critical, avdelning level and up
JONAS = "jonas.alm@storvik.example"  # nämndsekreterare: critical, förvaltning/nämnd level
# routing_with_local_webhooks sends each recipient's webhook to /<recipient id>.
TEAMS_PATH = "/erik-sjoberg"
CASE_SYSTEM_PATH = "/ekonomienheten"
SARA = "sara.oberg@storvik.example"  # förvaltningscontroller: warning, förvaltning/nämnd level


def test_routes_a_burst_as_one_digest_per_recipient(notifier_case: NotifierCase) -> None:
    notifier = notifier_case.start_in_process()
    burst = [
        make_alert("1110", severity="warning", forecast_sek=14_500_000, budget_sek=12_400_000),
        make_alert(
            "1120",
            severity="critical",
            category="substitutes",
            forecast_sek=31_400_000,
            budget_sek=27_800_000,
        ),
        make_alert(
            "1210",
            severity="warning",
            category="agency_staff",
            forecast_sek=5_300_000,
            budget_sek=4_000_000,
        ),
        make_alert(
            "3110",
            severity="info",
            category="purchased_care",
            forecast_sek=41_000_000,
            budget_sek=40_600_000,
        ),
        make_alert(
            "VOF",
            severity="critical",
            category="salaries",
            forecast_sek=690_000_000,
            budget_sek=668_200_000,
        ),
    ]
    notifier_case.publish(burst)
    mails = notifier_case.smtp.wait_for_mails(9)
    wait_until(lambda: len(notifier_case.hooks.snapshot()) >= 5, 30, "5 webhook calls")

    by_recipient = {}
    for mail in mails:
        assert mail.to not in by_recipient, f"two mails to {mail.to}"
        by_recipient[mail.to] = mail
    assert set(by_recipient) == {KARIN, JOHAN, MARIA, EVA, ERIK, SOFIA, HELENA, JONAS, SARA}
    assert ANNA not in by_recipient  # 3110's info alert is below her warning threshold

    karin = by_recipient[KARIN]
    assert karin.subject == (
        "Hemtjänst Norr: övertid och fyllnadstid prognos 14,5 mnkr för 2025, 2,1 mnkr över budget"
    )
    assert karin.event_ids == [burst[0]["event_id"]]
    assert "Hej Karin Holm," in karin.body
    assert (
        "Varning · Nytt larm · Hemtjänst Norr (1110), Vård- och omsorgsnämnden · augusti 2025"
        in karin.body
    )
    assert "14,5 mnkr, −2,1 mnkr mot budget 12,4 mnkr" in karin.body
    assert "Begärd åtgärd: Kommentera avvikelsen för Hemtjänst Norr i månadsuppföljningen." in (
        karin.body
    )
    assert "Ansvarig controller: Erik Sjöberg, erik.sjoberg@storvik.example" in karin.body
    assert "innehåller inga uppgifter om enskilda" in karin.body

    for address in (EVA, ERIK):  # the avdelning's digest: three alerts, one mail
        digest = by_recipient[address]
        assert digest.subject == (
            "Hemtjänst Syd: vikarier och timavlönade prognos 31,4 mnkr för 2025, 3,6 mnkr över "
            "budget – och 2 larm till"
        )
        assert sorted(digest.event_ids) == sorted(a["event_id"] for a in burst[:3])
        assert "31,4 mnkr, −3,6 mnkr mot budget 27,8 mnkr" in digest.body
        assert "5,3 mnkr, −1,3 mnkr mot budget 4,0 mnkr" in digest.body
        assert "Kritisk · Nytt larm · Hemtjänst Syd (1120)" in digest.body

    for address in (HELENA, JONAS, SARA):  # the förvaltning-level critical
        top = by_recipient[address]
        assert top.event_ids == [burst[4]["event_id"]]
        assert "690,0 mnkr, −21,8 mnkr mot budget 668,2 mnkr" in top.body

    teams = notifier_case.hooks.snapshot(TEAMS_PATH)
    assert len(teams) == 1
    card = teams[0].body["attachments"][0]["content"]
    assert len([b for b in card["body"] if b["type"] == "Container"]) == 3
    case_system = notifier_case.hooks.snapshot(CASE_SYSTEM_PATH)
    # Every warning and critical, one JSON request each; the info alert is not among them.
    assert sorted(h.body["event_id"] for h in case_system) == sorted(
        a["event_id"] for a in burst if a["severity"] != "info"
    )
    first = next(h for h in case_system if h.body["org_unit"] == "1120")
    assert first.body["values"]["deviation"] == pytest.approx(-3_600_000)
    assert first.headers["Idempotency-Key"] == f"{burst[1]['event_id']}:ekonomienheten"

    def counted() -> bool:
        samples = notifier.samples()
        return sum_metric(samples, "budgetvakt_notifier_sent_total", channel="webhook") == 5

    wait_until(counted, 10, "metrics updated")
    samples = notifier.samples()
    assert sum_metric(samples, "budgetvakt_notifier_alerts_consumed_total") == 5
    assert sum_metric(samples, "budgetvakt_notifier_sent_total", channel="email") == 9
    assert sum_metric(samples, "budgetvakt_notifier_failures_total") == 0
    assert sum_metric(samples, "budgetvakt_notifier_dead_letter_total") == 0
    # One observation per alert and notification: the 9 mails carry 1+1+1+3+3+1+1+1+1 alerts,
    # the Teams card 3 and the JSON requests 1 each.
    assert sum_metric(samples, "budgetvakt_notifier_delivery_seconds_count") == 13 + 3 + 4
    assert len(notifier_case.smtp.handler.snapshot()) == 9


def test_firing_improved_resolved_gives_two_mails_the_improvement_in_the_second(
    notifier_case: NotifierCase,
) -> None:
    notifier = notifier_case.start_in_process()
    # Info alerts of an enhet reach its enhetschef only.
    firing = make_alert("1110", severity="info", status="firing", sequence=1)
    notifier_case.publish([firing])
    first = notifier_case.smtp.wait_for_mails(1)[0]
    assert first.subject.startswith("Hemtjänst Norr: övertid och fyllnadstid prognos 14,5 mnkr")
    assert "Information · Nytt larm · Hemtjänst Norr (1110)" in first.body

    improved = make_alert(
        "1110", severity="info", status="improved", sequence=2, forecast_sek=13_000_000
    )
    notifier_case.publish([improved])
    # Consumed and committed, but no mail of its own: it waits for Karin's next digest.
    wait_until(
        lambda: sum_metric(notifier.samples(), "budgetvakt_notifier_alerts_consumed_total") == 2,
        30,
        "the improvement consumed",
    )
    resolved = make_alert(
        "1110", severity="info", status="resolved", sequence=3, resolution="within_limits"
    )
    assert resolved["alert_id"] == firing["alert_id"]
    notifier_case.publish([resolved])
    mails = notifier_case.smtp.wait_for_mails(2)
    assert [m.to for m in mails] == [KARIN, KARIN]
    second = mails[1]
    assert (
        second.subject
        == "Hemtjänst Norr: övertid och fyllnadstid åter inom gränserna (augusti 2025)"
    )
    assert "Information · Åter inom gränserna · Hemtjänst Norr (1110)" in second.body
    assert "Förbättrat" not in second.body  # one item per alert: the latest event
    assert second.event_ids == [improved["event_id"], resolved["event_id"]]
    assert "åtgärdad" not in second.body.lower()
    assert len(notifier_case.smtp.handler.snapshot()) == 2


def test_a_repeated_alert_event_is_not_sent_again(notifier_case: NotifierCase) -> None:
    notifier = notifier_case.start_in_process()
    alert = make_alert("1110", severity="info")
    notifier_case.publish([alert])
    notifier_case.smtp.wait_for_mails(1)
    notifier_case.publish([alert])  # the worker re-sent it (at-least-once upstream)
    wait_until(
        lambda: sum_metric(notifier.samples(), "budgetvakt_notifier_duplicates_skipped_total") == 1,
        30,
        "the repeat counted as a duplicate",
    )
    samples = notifier.samples()
    assert sum_metric(samples, "budgetvakt_notifier_alerts_consumed_total") == 2
    assert sum_metric(samples, "budgetvakt_notifier_sent_total", channel="email") == 1
    assert len(notifier_case.smtp.handler.snapshot()) == 1


def test_refusing_relay_is_retried_then_dead_lettered(notifier_case: NotifierCase) -> None:
    notifier_case.smtp.handler.refuse_rcpt = "550 5.7.1 Relaying denied"
    notifier = notifier_case.start_in_process()
    alert = make_alert("1110", severity="info")  # reaches Karin only, by e-mail
    notifier_case.publish([alert])
    [record] = notifier_case.dead_letters(1)
    assert record["kind"] == "email_rejected"
    assert "550" in record["reason"] and "Relaying denied" in record["reason"]
    assert record["recipient"] == "karin-holm"
    assert record["channel"] == "email"
    assert record["attempts"] == 3  # BUDGETVAKT_NOTIFIER_RETRIES=2
    assert record["event_ids"] == [alert["event_id"]]
    assert record["alerts"][0]["message"] == alert["message"]
    assert notifier_case.smtp.handler.rcpt_attempts == 3
    assert notifier_case.smtp.handler.snapshot() == []

    wait_until(
        lambda: (
            sum_metric(
                notifier.samples(), "budgetvakt_notifier_dead_letter_total", reason="email_rejected"
            )
            == 1
        ),
        10,
        "dead letter counted",
    )
    samples = notifier.samples()
    assert sum_metric(samples, "budgetvakt_notifier_failures_total", channel="email") == 3
    assert sum_metric(samples, "budgetvakt_notifier_sent_total") == 0

    # The notifier carries on: once the relay accepts again, the next alert is delivered.
    notifier_case.smtp.handler.refuse_rcpt = None
    notifier_case.publish([make_alert("1110", severity="info", category="sick_pay")])
    [mail] = notifier_case.smtp.wait_for_mails(1)
    assert "Sjuklön" in mail.body


def test_unreachable_webhook_is_dead_lettered(notifier_case: NotifierCase) -> None:
    notifier_case.hooks.status = 503
    notifier = notifier_case.start_in_process()
    alert = make_alert("VOF", severity="warning")  # reaches only the JSON case system
    notifier_case.publish([alert])
    [record] = notifier_case.dead_letters(1)
    assert record["kind"] == "webhook_rejected"
    assert "HTTP 503" in record["reason"]
    assert CASE_SYSTEM_PATH not in record["reason"]  # URLs may carry tokens: host only
    samples = notifier.samples()
    assert sum_metric(samples, "budgetvakt_notifier_failures_total", channel="webhook") == 3


def test_malformed_records_are_dead_lettered_and_the_notifier_goes_on(
    notifier_case: NotifierCase,
) -> None:
    notifier = notifier_case.start_in_process()
    bad_field = make_alert("1110", severity="info")
    bad_field["org_unit_name"] = "19121212-1212"
    bad_field["personnummer"] = "19121212-1212"  # unknown field, and a personal id's shape
    as_key = make_alert("1110", severity="info")
    as_key["values"] = {"121212-1212": 1.0}  # a personal id as a key
    extra = make_alert("1110", severity="info")
    extra["personnummer"] = 1
    good = make_alert("1110", severity="info", category="sick_pay")
    notifier_case.publish(
        [
            b"{not json",
            json.dumps(bad_field).encode(),
            b"",
            json.dumps(as_key).encode(),
            json.dumps(extra).encode(),
            good,
        ]
    )
    records = notifier_case.dead_letters(5)
    assert [r["kind"] for r in records] == ["malformed"] * 5
    reasons = [r["reason"] for r in records]
    assert reasons[0].startswith("not an alert.v1 event: not valid JSON: Expecting property")
    assert reasons[1] == (
        "not an alert.v1 event: the value at $.org_unit_name contains a Swedish personal "
        "identity number (redacted); events must not carry personal data"
    )
    assert reasons[2] == "empty record"
    assert reasons[3].startswith("not an alert.v1 event: a key at $.values contains a Swedish")
    assert (
        reasons[4] == "not an alert.v1 event: field 'personnummer': Extra inputs are not permitted"
    )
    assert all("1212" not in r for r in reasons)  # the reason never quotes the input
    assert all(r["topic"] == notifier_case.alert_topic for r in records)
    # By default the dead letter keeps a hash of the bytes, never the bytes.
    assert all(r["original"] is None and len(r["original_sha256"]) == 64 for r in records)
    assert "1212" not in json.dumps(records)

    [mail] = notifier_case.smtp.wait_for_mails(1)
    assert mail.event_ids == [good["event_id"]]
    samples = notifier.samples()
    assert sum_metric(samples, "budgetvakt_notifier_dead_letter_total", reason="malformed") == 5
    assert sum_metric(samples, "budgetvakt_notifier_alerts_consumed_total") == 1


def test_json_webhook_gets_an_alerts_firing_before_its_resolved_also_after_a_retry(
    notifier_case: NotifierCase,
) -> None:
    notifier_case.hooks.refuse_next = 1  # the first POST fails once and is retried
    notifier_case.start_in_process()
    firing = make_alert("VOF", severity="warning", status="firing", sequence=1)
    resolved = make_alert("VOF", severity="warning", status="resolved", sequence=2)
    notifier_case.publish([firing, resolved])
    wait_until(lambda: len(notifier_case.hooks.snapshot()) >= 2, 30, "two webhook calls")
    received = [hook.body["event_id"] for hook in notifier_case.hooks.snapshot()]
    assert received == [firing["event_id"], resolved["event_id"]]
