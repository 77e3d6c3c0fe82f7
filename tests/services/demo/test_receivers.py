"""The local SMTP server and webhook receiver (services.demo.receivers) and the scrape helper."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

from services.demo.receivers import MailCatcher, WebhookCatcher
from services.processes.scrape import parse_samples, sum_metric


def post(url: str, body: object) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_mail_catcher_keeps_and_saves_each_message(tmp_path: Path) -> None:
    catcher = MailCatcher(save_dir=tmp_path / "mail").start()
    try:
        message = EmailMessage()
        message["From"] = "budgetvakt@storvik.example"
        message["To"] = "chef@storvik.example"
        message["Subject"] = "Larm: övertid"
        message["X-Budgetvakt-Event-Ids"] = "a@1 b@2"
        message.set_content("Prognosen för övertid ligger över budget.")
        with smtplib.SMTP("127.0.0.1", catcher.port, timeout=10) as client:
            client.send_message(message, to_addrs=["chef@storvik.example", "ek@storvik.example"])
        [mail] = catcher.wait_for_mails(1)
    finally:
        catcher.stop()
    assert mail.recipients == ("chef@storvik.example", "ek@storvik.example")
    assert mail.to == "chef@storvik.example"
    assert mail.subject == "Larm: övertid"
    assert mail.body.strip() == "Prognosen för övertid ligger över budget."
    assert mail.event_ids == ["a@1", "b@2"]
    assert not mail.over_tls and mail.login is None
    assert mail.path == tmp_path / "mail" / "0001.eml"
    assert b"Subject: Larm:" in mail.path.read_bytes()
    assert catcher.handler.to("ek@storvik.example") == [mail]


def test_mail_catcher_refuses_recipients_when_told() -> None:
    catcher = MailCatcher().start()
    catcher.handler.refuse_rcpt = "550 5.7.1 Relaying denied"
    try:
        with (
            smtplib.SMTP("127.0.0.1", catcher.port, timeout=10) as client,
            pytest.raises(smtplib.SMTPRecipientsRefused),
        ):
            client.sendmail("a@storvik.example", ["b@storvik.example"], "Subject: x\n\ny\n")
    finally:
        catcher.stop()
    assert catcher.handler.rcpt_attempts == 1
    assert catcher.mails == []


def test_webhook_catcher_answers_its_status_and_keeps_only_accepted_posts() -> None:
    hooks = WebhookCatcher().start()
    try:
        assert post(hooks.url("/teams"), {"n": 1}) == 200
        hooks.refuse_next = 1
        assert post(hooks.url("/teams"), {"n": 2}) == 503
        assert post(hooks.url("/case"), {"n": 3}) == 200
        hooks.status = 500
        assert post(hooks.url("/case"), {"n": 4}) == 500
    finally:
        hooks.stop()
    assert [h.body for h in hooks.snapshot()] == [{"n": 1}, {"n": 3}]
    assert [h.body for h in hooks.snapshot("/case")] == [{"n": 3}]
    assert hooks.snapshot()[0].headers["Content-Type"] == "application/json"


def test_scrape_helpers_parse_with_prometheus_client_and_sum_by_labels() -> None:
    text = (
        "# TYPE budgetvakt_events_total counter\n"
        'budgetvakt_events_total{topic="cost",outcome="accepted"} 5\n'
        'budgetvakt_events_total{topic="cost",outcome="duplicate"} 2\n'
        'budgetvakt_events_total{topic="budget",outcome="accepted"} 1\n'
    )
    samples = parse_samples(text)
    assert ("budgetvakt_events_total", {"topic": "cost", "outcome": "accepted"}, 5.0) in samples
    assert sum_metric(samples, "budgetvakt_events_total", topic="cost") == 7
    assert sum_metric(samples, "budgetvakt_events_total", outcome="accepted") == 6
    assert sum_metric(samples, "budgetvakt_events_total", topic="volume") == 0
