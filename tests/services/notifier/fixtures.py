"""Notifier fixtures: the local SMTP server and webhook receiver (``services.demo.receivers``),
alert events on the session broker, and the notifier itself in-process or as a child process."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core.settings import DEFAULT_CONFIG_DIR
from core.swedish import format_mnkr
from services.demo.receivers import MailCatcher, WebhookCatcher, routing_with_local_webhooks
from services.processes.broker import EmbeddedBroker
from services.processes.budgetvakt import READINESS_PATH, BudgetvaktProcess
from services.processes.scrape import Sample, scrape
from services.processes.supervised import free_port, http_ok, wait_until
from tests.streams.fixtures import KEPT_LOGS

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
    # BUN, the second nämnd of tests.services.snapshots.fixtures.write_kommun_config
    "BUN": ("Barn- och utbildningsnämnden", "namnd"),
    "BFS": ("Förskola", "avdelning"),
    "B1110": ("Förskola 1110", "enhet"),
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
    values: dict[str, float] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An alert.v1 event as the worker would publish it; the message quotes Swedish numbers.
    ``values`` adds to the figures; ``fields`` sets the optional lifecycle fields (``title``,
    ``change``, ``year_closed``, ``resolution``, ``method``, ``emitted_at``)."""
    name, level = ORG_NAMES[org_unit]
    alert_id = f"{rule}:{org_unit}:{category}:{period[:4]}"
    deviation = budget_sek - forecast_sek
    if status != "resolved":
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
        "values": {"forecast": forecast_sek, "budget": budget_sek, "deviation": deviation}
        | (values or {}),
        "message": message,
        "emitted_at": datetime.now(UTC).isoformat(),
    } | fields


# --- The notifier --------------------------------------------------------------------------------


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
        return http_ok(f"http://127.0.0.1:{self.web_port}{READINESS_PATH}")

    def samples(self) -> list[Sample]:
        return scrape(self.web_port)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "notifier did not stop within 30 s"
        if self.error is not None:
            raise AssertionError(f"notifier failed: {self.error!r}") from self.error


class NotifierProcess(BudgetvaktProcess):
    """``python -m services notifier`` as a child process, its log appended to a file."""

    def __init__(self, env: dict[str, str], web_port: int, log_path: Path) -> None:
        super().__init__("notifier", env=env, port=web_port, log_path=log_path, append_log=True)

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.process


@dataclass
class NotifierCase:
    """One test's topics, consumer group, data dir, servers and notifiers."""

    bootstrap_servers: str
    case_id: str
    tmp_path: Path
    smtp: MailCatcher
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
def smtp_catcher() -> Iterator[MailCatcher]:
    catcher = MailCatcher().start()
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
    smtp_catcher: MailCatcher,
    webhook_catcher: WebhookCatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[NotifierCase]:
    case = NotifierCase(
        bootstrap_servers=broker.bootstrap_servers,
        case_id=f"n{uuid.uuid4().hex[:10]}",
        tmp_path=tmp_path,
        smtp=smtp_catcher,
        hooks=webhook_catcher,
        routing_path=routing_with_local_webhooks(
            DEFAULT_CONFIG_DIR / "routing.yaml", tmp_path / "routing.yaml", webhook_catcher
        ),
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
                assert process.log_path is not None
                shutil.copyfile(process.log_path, kept)
                print(f"\nnotifier log kept at {kept.resolve()}")
