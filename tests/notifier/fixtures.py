"""Notifier fixtures: a real SMTP server (aiosmtpd), a real HTTP server for webhooks, alert
events on the session broker, and the notifier itself in-process or as a child process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from core.settings import DEFAULT_CONFIG_DIR
from core.swedish import format_mnkr
from services.notifier.render import EVENT_IDS_HEADER
from services.processes.broker import EmbeddedBroker, free_port
from tests.streams.fixtures import KEPT_LOGS, wait_until

# --- Alerts --------------------------------------------------------------------------------------

ORG_NAMES = {
    "VON": ("Vård- och omsorgsnämnden", "namnd"),
    "VOF": ("Vård- och omsorgsförvaltningen", "forvaltning"),
    "AO": ("Äldreomsorg", "avdelning"),
    "LSS": ("LSS och socialpsykiatri", "avdelning"),
    "IFO": ("Individ- och familjeomsorg", "avdelning"),
    "1110": ("Hemtjänst Norr", "enhet"),
    "1120": ("Hemtjänst Syd", "enhet"),
    "1210": ("Särskilt boende Ekbacken", "enhet"),
    "1220": ("Särskilt boende Lindgården", "enhet"),
    "2110": ("LSS boende", "enhet"),
    "2120": ("Daglig verksamhet", "enhet"),
    "2130": ("Personlig assistans", "enhet"),
    "3110": ("Barn och familj", "enhet"),
    "3120": ("Vuxenenheten", "enhet"),
    "3130": ("Ekonomiskt bistånd", "enhet"),
}


def make_alert(
    org_unit: str,
    *,
    severity: str = "warning",
    status: str = "firing",
    sequence: int = 1,
    category: str = "overtime",
    period: str = "2025-08",
    budget_sek: float = 12_400_000.0,
    forecast_sek: float = 14_500_000.0,
    rule: str = "budget_overrun",
) -> dict[str, Any]:
    """An alert.v1 event as the worker would publish it; the message quotes Swedish numbers."""
    name, level = ORG_NAMES[org_unit]
    alert_id = f"{rule}:{org_unit}:{category}:{period[:4]}"
    deviation = budget_sek - forecast_sek
    if status == "firing":
        message = (
            f"Helårsprognosen för {category} i {name} är {format_mnkr(forecast_sek)} mnkr, "
            f"{format_mnkr(deviation)} mnkr mot budget {format_mnkr(budget_sek)} mnkr."
        )
    else:
        message = f"Prognosen för {category} i {name} ligger åter inom budget."
    return {
        "type": "alert",
        "event_id": f"{alert_id}@{sequence}",
        "alert_id": alert_id,
        "sequence": sequence,
        "rule": rule,
        "severity": severity,
        "status": status,
        "org_unit": org_unit,
        "org_unit_name": name,
        "level": level,
        "category": category,
        "period": period,
        "values": {"forecast": forecast_sek, "budget": budget_sek, "deviation": deviation},
        "message": message,
        "emitted_at": datetime.now(UTC).isoformat(),
    }


# --- SMTP ----------------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    envelope_to: list[str]
    message: EmailMessage
    over_tls: bool
    login: str | None

    @property
    def to(self) -> str:
        return self.envelope_to[0]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def event_ids(self) -> list[str]:
        return str(self.message[EVENT_IDS_HEADER]).split()


class MailHandler:
    """Collects accepted mail. ``refuse_rcpt`` answers every RCPT with that reply;
    ``on_data(n)`` runs before the n-th DATA is accepted (1-based) and may return a reply that
    refuses it instead (the message is then not kept)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mails: list[ReceivedMail] = []
        self.rcpt_attempts = 0
        self.data_attempts = 0
        self.refuse_rcpt: str | None = None
        self.on_data: Callable[[int], str | None] | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.rcpt_attempts += 1
        if self.refuse_rcpt is not None:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.data_attempts += 1
            attempt = self.data_attempts
        if self.on_data is not None:
            answer = self.on_data(attempt)
            if answer is not None:
                return answer
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = BytesParser(policy=default_policy).parsebytes(raw)
        login = None
        if isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode()
        with self.lock:
            self.mails.append(
                ReceivedMail(list(envelope.rcpt_tos), message, session.ssl is not None, login)
            )
        return "250 Message accepted"

    def snapshot(self) -> list[ReceivedMail]:
        with self.lock:
            return list(self.mails)

    def to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.snapshot() if address in m.envelope_to]


class SmtpCatcher:
    """An aiosmtpd server on a free loopback port (its own thread and event loop)."""

    def __init__(
        self,
        tls_context: Any = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.handler = MailHandler()
        self.port = free_port()
        self.credentials = credentials
        kwargs: dict[str, Any] = {}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=True)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        user, password = self.credentials
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    def start(self) -> SmtpCatcher:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def wait_for_mails(self, count: int, timeout_s: float = 30.0) -> list[ReceivedMail]:
        wait_until(
            lambda: len(self.handler.snapshot()) >= count,
            timeout_s,
            f"{count} mails (have {len(self.handler.snapshot())})",
        )
        return self.handler.snapshot()


# --- Webhooks ------------------------------------------------------------------------------------


@dataclass
class ReceivedHook:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class WebhookCatcher:
    """A threading HTTP server collecting JSON POSTs; ``status`` is what it answers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hooks: list[ReceivedHook] = []
        self.status = 200
        self.refuse_next = 0  # answer this many requests 503 first, then ``status``
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length).decode("utf-8"))
                status = catcher.status
                with catcher.lock:
                    if catcher.refuse_next > 0:
                        catcher.refuse_next -= 1
                        status = 503
                if 200 <= status < 300:
                    with catcher.lock:
                        catcher.hooks.append(ReceivedHook(self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookCatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self, path: str | None = None) -> list[ReceivedHook]:
        with self.lock:
            return [h for h in self.hooks if path is None or h.path == path]


# --- The notifier --------------------------------------------------------------------------------


def shipped_routing_with_local_hooks(hooks: WebhookCatcher, target: Path) -> Path:
    """config/routing.yaml with its webhook URLs pointed at the local catcher (same paths)."""
    data = yaml.safe_load((DEFAULT_CONFIG_DIR / "routing.yaml").read_text(encoding="utf-8"))
    for recipient in data["recipients"].values():
        webhook = recipient["channels"].get("webhook")
        if webhook is not None:
            path = "/" + webhook["url"].split("://", 1)[1].split("/", 1)[1]
            webhook["url"] = hooks.url(path)
    target.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return target


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode("utf-8")
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def metric(samples: Sequence[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
    )


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as resp:
            return bool(json.loads(resp.read())["ready"])
    except (OSError, ValueError):
        return False


class InProcessNotifier:
    """``run_notifier`` in a thread with its own event loop (settings from the environment)."""

    def __init__(self, web_port: int) -> None:
        self.web_port = web_port
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        from core.settings import Settings
        from services.config.domain import load_domain_config
        from services.notifier.routing import load_routing
        from services.notifier.service import NotifierSettings, run_notifier

        async def main() -> None:
            settings = Settings()
            domain = load_domain_config(settings.config_dir)
            notifier = NotifierSettings()
            routing = load_routing(notifier.resolved_routing_file(settings), domain.org)
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._started.set()
            await run_notifier(settings, domain, routing, self._stop)

        try:
            asyncio.run(main())
        except BaseException as err:
            self.error = err
        finally:
            self._started.set()

    def start(self) -> InProcessNotifier:
        self._thread.start()
        wait_until(lambda: self._started.is_set(), 30, "notifier thread started")
        wait_until(self.is_ready, 60, f"notifier on port {self.web_port} ready")
        return self

    def is_ready(self) -> bool:
        if self.error is not None:
            raise AssertionError(f"notifier failed: {self.error!r}") from self.error
        return ready(self.web_port)

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        return scrape(self.web_port)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "notifier did not stop within 30 s"
        if self.error is not None:
            raise AssertionError(f"notifier failed: {self.error!r}") from self.error


class NotifierProcess:
    """``python -m services notifier`` as a child process, its log in a file."""

    def __init__(self, env: dict[str, str], web_port: int, log_path: Path) -> None:
        self.env = env
        self.web_port = web_port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, wait: bool = True) -> NotifierProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services", "notifier"],
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if wait:
            wait_until(self.is_ready, 60, f"notifier process on port {self.web_port} ready")
        return self

    def is_ready(self) -> bool:
        assert self.proc is not None
        code = self.proc.poll()
        assert code is None, f"notifier exited with {code}; log:\n{self.log_text()[-3000:]}"
        return ready(self.web_port)

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        return scrape(self.web_port)

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        proc, self.proc = self.proc, None
        code = 0
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                code = -9
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


@dataclass
class NotifierCase:
    """One test's topics, consumer group, data dir, servers and notifiers."""

    bootstrap_servers: str
    case_id: str
    tmp_path: Path
    smtp: SmtpCatcher
    hooks: WebhookCatcher
    routing_path: Path
    monkeypatch: pytest.MonkeyPatch
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[NotifierProcess] = field(default_factory=list)
    in_process: list[InProcessNotifier] = field(default_factory=list)

    @property
    def alert_topic(self) -> str:
        return f"{self.case_id}.alert"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.case_id}.notify-dead-letter"

    def env(self, web_port: int) -> dict[str, str]:
        return {
            "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "BUDGETVAKT_TOPIC_ALERT": self.alert_topic,
            "BUDGETVAKT_BROKER_SESSION_TIMEOUT_S": "6",
            "BUDGETVAKT_DATA_DIR": str(self.tmp_path / "data"),
            "BUDGETVAKT_LOG_FORMAT": "json",
            "BUDGETVAKT_NOTIFIER_DEAD_LETTER_TOPIC": self.dead_letter_topic,
            "BUDGETVAKT_NOTIFIER_GROUP_ID": f"notifier-{self.case_id}",
            "BUDGETVAKT_NOTIFIER_WEB_PORT": str(web_port),
            "BUDGETVAKT_NOTIFIER_WEB_HOST": "127.0.0.1",
            "BUDGETVAKT_NOTIFIER_ROUTING_FILE": str(self.routing_path),
            "BUDGETVAKT_NOTIFIER_RETRIES": "2",
            "BUDGETVAKT_NOTIFIER_RETRY_BACKOFF_S": "0.05",
            "BUDGETVAKT_SMTP_HOST": "127.0.0.1",
            "BUDGETVAKT_SMTP_PORT": str(self.smtp.port),
            **self.extra_env,
        }

    def start_in_process(self) -> InProcessNotifier:
        web_port = free_port()
        for key, value in self.env(web_port).items():
            self.monkeypatch.setenv(key, value)
        notifier = InProcessNotifier(web_port)
        self.in_process.append(notifier)
        return notifier.start()

    def start_process(self, wait: bool = True) -> NotifierProcess:
        web_port = free_port()
        log_path = self.tmp_path / f"notifier{len(self.processes)}.log"
        notifier = NotifierProcess(self.env(web_port), web_port, log_path)
        self.processes.append(notifier)
        return notifier.start(wait=wait)

    def publish(self, events: Sequence[dict[str, Any] | bytes]) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=5)
        try:
            futures = []
            for event in events:
                if isinstance(event, bytes):
                    key, value = b"raw", event
                else:
                    key = str(event["org_unit"]).encode()
                    value = json.dumps(event, ensure_ascii=False).encode("utf-8")
                futures.append(producer.send(self.alert_topic, key=key, value=value))
            producer.flush()
            for future in futures:
                future.get(timeout=30)
        finally:
            producer.close()

    def dead_letters(self, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Read the dead-letter topic from the start until ``count`` records are there."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            self.dead_letter_topic,
            bootstrap_servers=self.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=500,
        )
        found: list[dict[str, Any]] = []
        try:

            def enough() -> bool:
                for batch in consumer.poll(timeout_ms=500).values():
                    found.extend(json.loads(record.value) for record in batch)
                return len(found) >= count

            wait_until(enough, timeout_s, f"{count} dead-letter records (have {len(found)})")
        finally:
            consumer.close()
        return found


@pytest.fixture
def smtp_catcher() -> Iterator[SmtpCatcher]:
    catcher = SmtpCatcher().start()
    try:
        yield catcher
    finally:
        catcher.stop()


@pytest.fixture
def webhook_catcher() -> Iterator[WebhookCatcher]:
    catcher = WebhookCatcher().start()
    try:
        yield catcher
    finally:
        catcher.stop()


@pytest.fixture
def notifier_case(
    request: pytest.FixtureRequest,
    broker: EmbeddedBroker,
    tmp_path: Path,
    smtp_catcher: SmtpCatcher,
    webhook_catcher: WebhookCatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[NotifierCase]:
    case = NotifierCase(
        bootstrap_servers=broker.bootstrap_servers,
        case_id=f"n{uuid.uuid4().hex[:10]}",
        tmp_path=tmp_path,
        smtp=smtp_catcher,
        hooks=webhook_catcher,
        routing_path=shipped_routing_with_local_hooks(webhook_catcher, tmp_path / "routing.yaml"),
        monkeypatch=monkeypatch,
    )
    try:
        yield case
    finally:
        for notifier in case.in_process:
            notifier.stop()
        for process in case.processes:
            process.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            KEPT_LOGS.mkdir(exist_ok=True)
            for index, process in enumerate(case.processes):
                kept = KEPT_LOGS / f"{request.node.name}-notifier{index}.log"
                shutil.copyfile(process.log_path, kept)
                print(f"\nnotifier log kept at {kept.resolve()}")
