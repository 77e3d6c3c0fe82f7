"""The notifier as the ``budgetvakt notifier`` process: killed mid-stream and restarted, and
mailing over STARTTLS with a login whose password never reaches the log."""

from __future__ import annotations

import base64
import os
import random
import signal
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from services.demo.receivers import MailCatcher
from services.notifier.sent_store import SentStore
from services.processes.scrape import sum_metric
from services.processes.supervised import wait_until
from tests.services.notifier.fixtures import NotifierCase, NotifierProcess, make_alert

pytestmark = pytest.mark.integration

# Enheter and their enhetschef (config/routing.yaml); info alerts reach only the chef.
CHEF_OF = {
    "1110": "karin.holm@storvik.example",
    "1120": "johan.ek@storvik.example",
    "1210": "maria.lund@storvik.example",
    "1220": "ahmed.karimi@storvik.example",
    "2110": "lena.strand@storvik.example",
    "2120": "lena.strand@storvik.example",
    "2130": "peter.nyberg@storvik.example",
    "3110": "sofia.berglund@storvik.example",
    "3120": "omar.haddad@storvik.example",
    "3130": "omar.haddad@storvik.example",
}
CATEGORIES = ("overtime", "substitutes", "sick_pay", "agency_staff", "premises", "other_costs")


def burst(categories: tuple[str, ...]) -> list[dict[str, object]]:
    return [
        make_alert(unit, severity="info", category=category)
        for category in categories
        for unit in CHEF_OF
    ]


@pytest.mark.slow
def test_kill_mid_stream_and_restart_delivers_every_notification_exactly_once(
    notifier_case: NotifierCase,
) -> None:
    # One send at a time, so the kill below lands inside an SMTP transaction: before the relay
    # has accepted that mail, after every earlier mail was accepted and recorded. (A kill in
    # the instant between "accepted" and "recorded" is the documented at-least-once window of
    # services/notifier/sent_store.py; this test does not aim at it.)
    notifier_case.extra_env.update(
        {
            "BUDGETVAKT_NOTIFIER_MAX_CONCURRENT_SENDS": "1",
            # Wide enough that each burst below is one round.
            "BUDGETVAKT_NOTIFIER_DIGEST_WINDOW_S": "1.5",
        }
    )
    handler = notifier_case.smtp.handler
    first = notifier_case.start_process()
    assert first.proc is not None
    killed = threading.Event()
    kill_at = handler.data_attempts  # set below, once the first burst is in

    def kill_inside_transaction(attempt: int) -> str | None:
        if attempt != kill_at or first.proc is None:
            return None
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
        killed.set()
        return "451 4.3.0 Try again later"  # never reaches the dead process; not kept

    handler.on_data = kill_inside_transaction

    def delivered_pairs() -> list[tuple[str, str]]:
        return [(m.to, event_id) for m in handler.snapshot() for event_id in m.event_ids]

    def expected_pairs(alerts: list[dict[str, object]]) -> set[tuple[str, str]]:
        return {(CHEF_OF[str(a["org_unit"])], str(a["event_id"])) for a in alerts}

    chefs = len(set(CHEF_OF.values()))  # 8 people for 10 enheter
    first_burst = burst(CATEGORIES[:2])
    notifier_case.publish(first_burst)
    wait_until(lambda: set(delivered_pairs()) >= expected_pairs(first_burst), 60, "the first burst")
    assert len(handler.snapshot()) == chefs  # one digest per chef

    # Second burst: the kill comes at a seeded-random mail of its round (not the first one, so
    # the round has delivered something that the restart must not send again).
    kill_at = handler.data_attempts + random.Random(20251123).randint(2, chefs - 1)
    second_burst = burst(CATEGORIES[2:4])
    notifier_case.publish(second_burst)
    wait_until(killed.is_set, 60, "the notifier killed inside an SMTP transaction")
    delivered_before_restart = len(handler.snapshot())
    assert chefs < delivered_before_restart < 2 * chefs

    second = notifier_case.start_process()
    third_burst = burst(CATEGORIES[4:])
    notifier_case.publish(third_burst)

    # Every (recipient, alert) pair once: count them across mails.
    expected = expected_pairs(first_burst + second_burst + third_burst)
    wait_until(
        lambda: len(delivered_pairs()) >= len(expected), 90, f"{len(expected)} notifications"
    )
    samples = second.samples()
    # The restart replayed the uncommitted round and skipped what it had already delivered.
    assert sum_metric(samples, "budgetvakt_notifier_duplicates_skipped_total") >= 1
    second.stop()
    pairs = delivered_pairs()
    assert len(pairs) == len(set(pairs)), "a notification was delivered twice"
    assert set(pairs) == expected, "a notification was lost"
    store = SentStore(notifier_case.tmp_path / "data" / "notifier.sqlite")
    try:
        assert store.count() == len(expected)
    finally:
        store.close()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "relay-cert.pem", directory / "relay-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_starttls_login_and_the_password_never_logged(
    notifier_case: NotifierCase, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    user, password = "budgetvakt-relay", "Hemligt-Lösen-7f3q9Z"
    relay = MailCatcher(tls_context=server_tls, credentials=(user, password)).start()
    try:
        notifier_case.smtp = relay
        notifier_case.extra_env.update(
            {
                "BUDGETVAKT_SMTP_STARTTLS": "true",
                "BUDGETVAKT_SMTP_CA_FILE": str(cert),
                "BUDGETVAKT_SMTP_USERNAME": user,
                "BUDGETVAKT_SMTP_PASSWORD": password,
                "BUDGETVAKT_LOG_LEVEL": "DEBUG",
            }
        )
        notifier: NotifierProcess = notifier_case.start_process()
        alert = make_alert("1110", severity="info")
        notifier_case.publish([alert])
        [mail] = relay.wait_for_mails(1)
        assert mail.over_tls
        assert mail.login == user
        assert mail.event_ids == [alert["event_id"]]
        assert notifier.stop() == 0
    finally:
        relay.stop()

    log = notifier.log_text()
    assert '"event": "notifier_started"' in log and '"smtp_login": true' in log
    assert '"event": "notification_sent"' in log
    for secret in (
        password,
        base64.b64encode(f"\0{user}\0{password}".encode()).decode(),  # AUTH PLAIN
        base64.b64encode(password.encode()).decode(),  # AUTH LOGIN
    ):
        assert secret not in log


def test_a_relay_without_the_right_password_is_dead_lettered_without_leaking_it(
    notifier_case: NotifierCase, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    relay = MailCatcher(tls_context=server_tls, credentials=("budgetvakt-relay", "right")).start()
    wrong = "Fel-Lösen-k2P8x"
    try:
        notifier_case.smtp = relay
        notifier_case.extra_env.update(
            {
                "BUDGETVAKT_SMTP_STARTTLS": "true",
                "BUDGETVAKT_SMTP_CA_FILE": str(cert),
                "BUDGETVAKT_SMTP_USERNAME": "budgetvakt-relay",
                "BUDGETVAKT_SMTP_PASSWORD": wrong,
                "BUDGETVAKT_LOG_LEVEL": "DEBUG",
            }
        )
        notifier = notifier_case.start_process()
        notifier_case.publish([make_alert("1110", severity="info")])
        [record] = notifier_case.dead_letters(1)
        assert record["kind"] == "email_rejected"
        assert record["reason"].startswith(f"relay 127.0.0.1:{relay.port} answered 535")
        assert notifier.stop() == 0
    finally:
        relay.stop()
    log = notifier.log_text()
    assert "notification_dead_lettered" in log
    assert wrong not in log and wrong not in record["reason"]
