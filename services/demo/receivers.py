"""Local stand-ins for the mail relay and the webhook endpoints: the demo, the benches, the tests.

``MailCatcher`` is a real SMTP server (aiosmtpd, imported only when one is made: it is a demo
extra) on a loopback port that keeps every message and can write each as an ``.eml`` file;
``WebhookCatcher`` is a real HTTP server that keeps every JSON POST. Nothing leaves the machine.

The tests use the same servers with their controls: STARTTLS and AUTH on the SMTP server,
refusing recipients or messages (``MailHandler.refuse_rcpt``, ``on_data``), and the webhook's
answer (``WebhookCatcher.status``, ``refuse_next``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from core.errors import UserError
from services.processes.supervised import free_port, wait_until


@dataclass(frozen=True)
class CaughtMail:
    recipients: tuple[str, ...]  # the envelope's RCPT TO addresses
    message: EmailMessage
    received_at: float  # time.time()
    path: Path | None = None  # the .eml file, when the catcher saves them
    over_tls: bool = False
    login: str | None = None  # the AUTH user, when the client logged in

    @property
    def to(self) -> str:
        return self.recipients[0]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",))
        return "" if part is None else str(part.get_content())

    @property
    def event_ids(self) -> list[str]:
        """The alert event ids the notifier says this mail carries."""
        from services.notifier.render import EVENT_IDS_HEADER

        return str(self.message[EVENT_IDS_HEADER] or "").split()


class MailHandler:
    """The aiosmtpd handler: keeps accepted mail in arrival order.

    ``refuse_rcpt`` answers every RCPT with that reply; ``on_data(n)`` runs before the n-th
    DATA is accepted (1-based) and may return a reply that refuses it instead (the message is
    then not kept)."""

    def __init__(self, save_dir: Path | None = None) -> None:
        self.save_dir = save_dir
        self.lock = threading.Lock()
        self.mails: list[CaughtMail] = []
        self.rcpt_attempts = 0
        self.data_attempts = 0
        self.refuse_rcpt: str | None = None
        self.on_data: Callable[[int], str | None] | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.rcpt_attempts += 1
        if self.refuse_rcpt is not None:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from aiosmtpd.smtp import LoginPassword

        with self.lock:
            self.data_attempts += 1
            attempt = self.data_attempts
        if self.on_data is not None:
            answer = self.on_data(attempt)
            if answer is not None:
                return answer
        raw: bytes = envelope.original_content or envelope.content
        message = BytesParser(policy=default_policy).parsebytes(raw)
        login = None
        if isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode()
        with self.lock:
            path = None
            if self.save_dir is not None:
                self.save_dir.mkdir(parents=True, exist_ok=True)
                path = self.save_dir / f"{len(self.mails) + 1:04d}.eml"
                path.write_bytes(raw)
            self.mails.append(
                CaughtMail(
                    tuple(envelope.rcpt_tos),
                    message,
                    time.time(),
                    path,
                    over_tls=session.ssl is not None,
                    login=login,
                )
            )
        return "250 Message accepted"

    def snapshot(self) -> list[CaughtMail]:
        with self.lock:
            return list(self.mails)

    def to(self, address: str) -> list[CaughtMail]:
        return [m for m in self.snapshot() if address in m.recipients]


class MailCatcher:
    """An SMTP server on ``127.0.0.1:<free port>`` in its own thread and event loop.

    ``save_dir``: write each accepted message there as ``0001.eml``, ``0002.eml``, …;
    ``tls_context``: offer and require STARTTLS; ``credentials``: require AUTH (over TLS) with
    this user and password."""

    def __init__(
        self,
        save_dir: Path | None = None,
        tls_context: Any = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:  # a plain `pip install budgetvakt` has no demo extra
            raise UserError(
                "the demo's mail catcher needs aiosmtpd: pip install 'budgetvakt[demo]'"
            ) from exc

        self.handler = MailHandler(save_dir)
        self.port = free_port()
        self.credentials = credentials
        options: dict[str, Any] = {}
        if tls_context is not None:
            options.update(tls_context=tls_context, require_starttls=True)
        if credentials is not None:
            options.update(authenticator=self._authenticate, auth_require_tls=True)
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        assert self.credentials is not None
        user, password = self.credentials
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    @property
    def mails(self) -> list[CaughtMail]:
        """The accepted mail so far, in arrival order."""
        return self.handler.snapshot()

    def wait_for_mails(self, count: int, timeout_s: float = 30.0) -> list[CaughtMail]:
        wait_until(
            lambda: len(self.handler.snapshot()) >= count,
            timeout_s,
            f"{count} mails (have {len(self.handler.snapshot())})",
        )
        return self.handler.snapshot()

    def start(self) -> MailCatcher:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


@dataclass(frozen=True)
class CaughtHook:
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON


class WebhookCatcher:
    """An HTTP server on a free loopback port collecting JSON POSTs.

    It answers ``status`` (200 unless a test changes it); ``refuse_next`` requests are answered
    503 first. Only POSTs answered 2xx are kept."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hooks: list[CaughtHook] = []
        self.status = 200
        self.refuse_next = 0
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                status = catcher.status
                with catcher.lock:
                    if catcher.refuse_next > 0:
                        catcher.refuse_next -= 1
                        status = 503
                    if 200 <= status < 300:
                        catcher.hooks.append(CaughtHook(self.path, dict(self.headers), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def snapshot(self, path: str | None = None) -> list[CaughtHook]:
        """The kept POSTs so far (to ``path`` only, if given)."""
        with self.lock:
            return [h for h in self.hooks if path is None or h.path == path]

    def start(self) -> WebhookCatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def routing_with_local_webhooks(source: Path, target: Path, catcher: WebhookCatcher) -> Path:
    """A copy of a routing file whose webhooks go to ``catcher`` at ``/<recipient id>``.

    Each URL is written to a file beside ``target`` (``webhook-<recipient id>.url``) that the
    copy names with ``url_file``, as a Docker or Kubernetes secret would be."""
    import yaml

    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    for recipient_id, recipient in data.get("recipients", {}).items():
        webhook = recipient.get("channels", {}).get("webhook")
        if webhook is not None:
            url_file = target.parent / f"webhook-{recipient_id}.url"
            url_file.write_text(catcher.url(f"/{recipient_id}") + "\n", encoding="utf-8")
            webhook.pop("url", None)
            webhook.pop("url_env", None)
            webhook["url_file"] = str(url_file)
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target
