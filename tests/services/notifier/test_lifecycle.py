"""The alert lifecycle in the notifier's delivery logic: worsened mailed like firing, improved only
in the next digest, one item per alert, nothing twice across a restart.

The delivery logic with its real SQLite store; the SMTP and webhook channels are recording
stand-ins (pure logic; the real relay is in test_delivery.py)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from contract.output_records import AlertEvent
from core.domain import DomainConfig
from services.notifier.engine import Deliverer, Notification, latest_per_alert
from services.notifier.metrics import NotifierMetrics
from services.notifier.render import EVENT_IDS_HEADER, MailContext
from services.notifier.routing import Routing
from services.notifier.send import EMAIL_REJECTED, DeliveryError
from services.notifier.sent_store import SentStore
from services.notifier.settings import NotifierSettings, SmtpSettings
from tests.services.notifier.fixtures import make_alert


class RecordingEmail:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.refuse = False

    async def send(self, message: EmailMessage) -> None:
        if self.refuse:
            raise DeliveryError(EMAIL_REJECTED, "relay refused (test)")
        self.sent.append(message)


class RecordingWebhooks:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any], str]] = []

    async def post(self, url: str, payload: dict[str, Any], idempotency_key: str) -> None:
        self.posts.append((url, payload, idempotency_key))


class Harness:
    def __init__(self, store_path: Path, domain: DomainConfig, routing: Routing) -> None:
        self.store_path = store_path
        self.domain = domain
        self.routing = routing
        self.email = RecordingEmail()
        self.webhooks = RecordingWebhooks()
        self.dead: list[bytes] = []
        self.open()

    def open(self) -> None:
        """(Re)start: a new store connection on the same file, as after a notifier restart."""
        self.store = SentStore(self.store_path)

        async def dead_letter(key: bytes | None, value: bytes) -> None:
            self.dead.append(value)

        self.deliverer = Deliverer(
            NotifierSettings(retries=0),
            SmtpSettings(),
            self.domain,
            self.store,
            NotifierMetrics(),
            self.email,  # type: ignore[arg-type]
            self.webhooks,  # type: ignore[arg-type]
            dead_letter,
            MailContext(self.routing),
        )

    def restart(self) -> None:
        self.store.close()
        self.open()

    def mail(self, recipient: str, *alerts: AlertEvent) -> None:
        notification = Notification(self.routing.recipients[recipient], "email", list(alerts))
        asyncio.run(self.deliverer.deliver(notification))


def event(unit: str, status: str, sequence: int, **kwargs: Any) -> AlertEvent:
    return AlertEvent.model_validate(make_alert(unit, status=status, sequence=sequence, **kwargs))


def test_improved_waits_for_the_next_digest_and_survives_a_restart(
    tmp_path: Path, domain: DomainConfig, routing: Routing
) -> None:
    h = Harness(tmp_path / "notifier.sqlite", domain, routing)
    fired = event("1110", "firing", 1, severity="critical")
    h.mail("karin-holm", fired)
    assert len(h.email.sent) == 1

    improved = event("1110", "improved", 2, severity="warning", forecast_sek=13_500_000)
    h.mail("karin-holm", improved)
    assert len(h.email.sent) == 1, "an improvement never makes a mail of its own"

    h.restart()
    h.mail("karin-holm", improved)  # the round replayed after a crash before the commit
    assert len(h.email.sent) == 1

    other = event("1110", "firing", 1, category="sick_pay")
    h.mail("karin-holm", other)
    assert len(h.email.sent) == 2
    digest = h.email.sent[-1]
    assert digest[EVENT_IDS_HEADER].split() == [improved.event_id, other.event_id]
    body = digest.get_content()
    assert "Förbättrade larm, fortfarande aktiva" in body
    assert "Förbättrat sedan förra meddelandet" in body

    # Delivered now: neither the next digest nor a replay carries it again.
    h.restart()
    h.mail("karin-holm", improved, other)
    later = event("1110", "worsened", 2, category="sick_pay", severity="critical")
    h.mail("karin-holm", later)
    assert len(h.email.sent) == 3
    assert h.email.sent[-1][EVENT_IDS_HEADER].split() == [later.event_id]


def test_worsened_is_mailed_at_once_like_firing(
    tmp_path: Path, domain: DomainConfig, routing: Routing
) -> None:
    h = Harness(tmp_path / "notifier.sqlite", domain, routing)
    worse = event("1120", "worsened", 2, severity="critical", change="underskottet har ökat")
    h.mail("johan-ek", worse)
    assert len(h.email.sent) == 1
    assert "Sedan förra meddelandet: underskottet har ökat" in h.email.sent[0].get_content()


def test_one_item_per_alert_the_latest_event(
    tmp_path: Path, domain: DomainConfig, routing: Routing
) -> None:
    h = Harness(tmp_path / "notifier.sqlite", domain, routing)
    first = event("1110", "firing", 1, forecast_sek=14_000_000)
    worse = event("1110", "worsened", 2, severity="critical", forecast_sek=16_000_000)
    other = event("1210", "firing", 1)
    h.mail("erik-sjoberg", first, other, worse)
    (mail,) = h.email.sent
    body = mail.get_content()
    assert body.count("Hemtjänst Norr (1110)") == 1
    assert "Prognos helår 2025: 16,0 mnkr" in body and "14,0 mnkr" not in body
    assert "budgetvakt har 2 budgetlarm" in body
    # Every event is accounted for (the superseded one too), so none comes back later.
    assert set(mail[EVENT_IDS_HEADER].split()) == {first.event_id, worse.event_id, other.event_id}
    h.mail("erik-sjoberg", first)
    assert len(h.email.sent) == 1
    assert [a.event_id for a in latest_per_alert([first, other, worse])] == [
        worse.event_id,
        other.event_id,
    ]


def test_a_json_webhook_gets_improvements_at_once(
    tmp_path: Path, domain: DomainConfig, routing: Routing
) -> None:
    h = Harness(tmp_path / "notifier.sqlite", domain, routing)
    office = routing.recipients["ekonomienheten"]
    improved = event("1110", "improved", 2)
    asyncio.run(h.deliverer.deliver(Notification(office, "webhook", [improved])))
    assert [payload["status"] for _, payload, _ in h.webhooks.posts] == ["improved"]


def test_a_failed_digest_keeps_its_improvements_for_the_next(
    tmp_path: Path, domain: DomainConfig, routing: Routing
) -> None:
    h = Harness(tmp_path / "notifier.sqlite", domain, routing)
    improved = event("1110", "improved", 2)
    fired = event("1110", "firing", 1, category="sick_pay")
    h.email.refuse = True
    h.mail("karin-holm", improved, fired)
    assert len(h.dead) == 1 and not h.email.sent
    h.email.refuse = False
    again = event("1110", "firing", 1, category="agency_staff")
    h.mail("karin-holm", again)
    assert h.email.sent[0][EVENT_IDS_HEADER].split() == [improved.event_id, again.event_id]


def test_a_teams_channel_is_a_digest_and_waits_for_it_too(
    tmp_path: Path, domain: DomainConfig, routing: Routing
) -> None:
    h = Harness(tmp_path / "notifier.sqlite", domain, routing)
    erik = routing.recipients["erik-sjoberg"]
    improved = event("1110", "improved", 2)
    asyncio.run(h.deliverer.deliver(Notification(erik, "webhook", [improved])))
    assert h.webhooks.posts == []
    fired = event("1120", "firing", 1)
    asyncio.run(h.deliverer.deliver(Notification(erik, "webhook", [fired])))
    (post,) = h.webhooks.posts
    containers = [
        b for b in post[1]["attachments"][0]["content"]["body"] if b["type"] == "Container"
    ]
    assert len(containers) == 2  # the improvement rode along
