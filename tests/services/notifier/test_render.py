"""Swedish texts and webhook bodies; the sent-store; the metric names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contract.output_records import AlertEvent
from core.domain import DomainConfig
from services.notifier.render import (
    EVENT_IDS_HEADER,
    build_email,
    email_body,
    json_payload,
    subject,
    teams_card,
)
from services.notifier.routing import Routing
from services.notifier.sent_store import SentStore
from services.notifier.service import metric_names
from tests.services.notifier.fixtures import make_alert


def alert(unit: str, **kwargs: object) -> AlertEvent:
    return AlertEvent.model_validate(make_alert(unit, **kwargs))  # type: ignore[arg-type]


def test_subjects(domain: DomainConfig) -> None:
    norr = alert("1110")
    assert subject([norr], domain) == "budgetvakt: avvikelse, Hemtjänst Norr"
    resolved = alert("1110", status="resolved", sequence=2)
    assert subject([resolved], domain) == "budgetvakt: åtgärdad avvikelse, Hemtjänst Norr"
    burst = [norr, alert("1120", severity="critical"), alert("1210", category="substitutes")]
    assert subject(burst, domain) == "budgetvakt: 3 avvikelser (1 kritisk), Äldreomsorg"
    across = [norr, alert("3110")]
    assert subject(across, domain) == "budgetvakt: 2 avvikelser, Vård- och omsorgsförvaltningen"


def test_digest_body_lists_every_alert_in_swedish(domain: DomainConfig, routing: Routing) -> None:
    erik = routing.recipients["erik-sjoberg"]
    alerts = [
        alert("1110", forecast_sek=14_500_000, budget_sek=12_400_000),
        alert(
            "1120",
            severity="critical",
            category="substitutes",
            forecast_sek=31_400_000,
            budget_sek=27_800_000,
        ),
        alert("1210", status="resolved", sequence=2, period="2025-09"),
    ]
    body = email_body(erik, alerts, domain)
    assert body.startswith("Hej Erik Sjöberg,\n\nbudgetvakt har 3 avvikelser för Äldreomsorg:")
    # Most severe first, then arrival order.
    assert (
        body.index("Kritisk · Utlöst · Hemtjänst Syd (1120)")
        < body.index("Varning · Utlöst · Hemtjänst Norr (1110)")
        < body.index("Varning · Åtgärdad · Särskilt boende Ekbacken (1210)")
    )
    assert "Period: augusti 2025 (2025-08)" in body
    assert "Period: september 2025 (2025-09)" in body
    assert "Kategori: Övertid och fyllnadstid" in body
    assert "Kategori: Vikarier och timavlönade" in body
    assert "14,5 mnkr, −2,1 mnkr mot budget 12,4 mnkr" in body
    assert "31,4 mnkr, −3,6 mnkr mot budget 27,8 mnkr" in body
    assert "Du får det här meddelandet som Controller Äldreomsorg." in body


def test_email_headers(domain: DomainConfig, routing: Routing) -> None:
    karin = routing.recipients["karin-holm"]
    alerts = [alert("1110"), alert("1110", category="sick_pay")]
    message = build_email(karin, alerts, domain, "budgetvakt <budgetvakt@storvik.example>")
    assert message["To"] == "Karin Holm <karin.holm@storvik.example>"
    assert message["From"] == "budgetvakt <budgetvakt@storvik.example>"
    assert message[EVENT_IDS_HEADER].split() == [a.event_id for a in alerts]
    assert message["Message-ID"].endswith("@storvik.example>")
    assert message.get_content_charset() == "utf-8"


def test_webhook_bodies(domain: DomainConfig, routing: Routing) -> None:
    office = routing.recipients["ekonomienheten"]
    one = alert("1120", severity="critical")
    payload = json_payload(office, one, domain)
    assert payload["event_id"] == one.event_id
    assert payload["values"] == one.values
    assert payload["severity_sv"] == "Kritisk" and payload["status_sv"] == "Utlöst"
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
    assert containers[0]["items"][0]["text"] == "Kritisk · Utlöst"  # most severe first
    assert containers[0]["items"][0]["color"] == "Attention"
    assert containers[0]["items"][1]["text"] == one.message


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
