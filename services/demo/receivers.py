"""Local stand-ins for the mail relay and the webhook endpoints, for the demo and the benchmark.

``MailCatcher`` is a real SMTP server (aiosmtpd) on a loopback port that keeps every message and
writes it as an ``.eml`` file; ``WebhookCatcher`` is a real HTTP server that keeps every JSON
POST. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from core.errors import UserError


@dataclass(frozen=True)
class CaughtMail:
    recipients: tuple[str, ...]
    message: EmailMessage
    received_at: float  # time.time()
    path: Path | None

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")


class MailCatcher:
    """An SMTP server on ``127.0.0.1:<free port>``; ``mails`` in arrival order."""

    def __init__(self, save_dir: Path | None = None) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:  # a plain `pip install budgetvakt` has no demo extra
            raise UserError(
                "the demo's mail catcher needs aiosmtpd: pip install 'budgetvakt[demo]'"
            ) from exc

        from services.processes.broker import free_port

        self.save_dir = save_dir
        self.port = free_port()
        self._lock = threading.Lock()
        self._mails: list[CaughtMail] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = BytesParser(policy=default_policy).parsebytes(raw)
        with self._lock:
            path = None
            if self.save_dir is not None:
                self.save_dir.mkdir(parents=True, exist_ok=True)
                path = self.save_dir / f"{len(self._mails) + 1:04d}.eml"
                path.write_bytes(raw)
            self._mails.append(CaughtMail(tuple(envelope.rcpt_tos), message, time.time(), path))
        return "250 Message accepted"

    @property
    def mails(self) -> list[CaughtMail]:
        with self._lock:
            return list(self._mails)

    def start(self) -> MailCatcher:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class WebhookCatcher:
    """An HTTP server on a free loopback port that answers 200 to every JSON POST."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.posts: list[tuple[str, Any]] = []
        catcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with catcher._lock:
                    catcher.posts.append((self.path, json.loads(body or b"null")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookCatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def routing_with_local_webhooks(source: Path, target: Path, catcher: WebhookCatcher) -> Path:
    """A copy of a routing file whose webhook URLs point at ``catcher`` (same paths)."""
    import yaml

    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    for recipient in data.get("recipients", {}).values():
        webhook = recipient.get("channels", {}).get("webhook")
        if webhook is not None:
            path = "/" + webhook["url"].split("://", 1)[1].partition("/")[2]
            webhook["url"] = catcher.url(path)
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return target
