"""Delivery channels: e-mail over SMTP (stdlib ``smtplib`` in a worker thread) and webhooks
(``aiohttp``). One call is one attempt; retrying and dead-lettering are the caller's business.

A failure raises ``DeliveryError`` with a ``kind`` from a small fixed set (the dead-letter
counter's label) and a reason for the log and the dead-letter record. Reasons never hold the SMTP
password nor a webhook URL (Teams webhook URLs carry their token in the path): only the host.

What leaves is checked last (``streams.pii_egress``): a personal identity number in a mail's
headers or text, or in a webhook's payload, is replaced by ``[personnummer]`` and counted in
``budgetvakt_pii_blocked_total{where="email"|"webhook"}`` before the message is sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from services.notifier.settings import SmtpSettings
from streams.pii_egress import EGRESS, PiiEgress

# Label values of budgetvakt_notifier_dead_letter_total{reason}.
EMAIL_REJECTED = "email_rejected"  # the relay answered with an error (4xx/5xx, TLS refused)
EMAIL_UNREACHABLE = "email_unreachable"  # no answer: connection, timeout, TLS handshake
WEBHOOK_REJECTED = "webhook_rejected"  # an HTTP status outside 2xx
WEBHOOK_UNREACHABLE = "webhook_unreachable"  # connection, timeout
MALFORMED = "malformed"  # a record on the alert topic that is not an AlertEvent
DEAD_LETTER_REASONS = (
    MALFORMED,
    EMAIL_REJECTED,
    EMAIL_UNREACHABLE,
    WEBHOOK_REJECTED,
    WEBHOOK_UNREACHABLE,
)


class DeliveryError(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _smtp_text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:300]


class EmailSender:
    """Opens one SMTP connection per message: simple, and a digest keeps the count low."""

    def __init__(self, smtp: SmtpSettings, egress: PiiEgress = EGRESS) -> None:
        self.smtp = smtp
        self.egress = egress
        self._tls_context: ssl.SSLContext | None = None
        if smtp.starttls:
            cafile = str(smtp.ca_file) if smtp.ca_file is not None else None
            self._tls_context = ssl.create_default_context(cafile=cafile)

    async def send(self, message: EmailMessage) -> None:
        message = self.egress.redact_email(message)
        await asyncio.to_thread(self._send_blocking, message)

    def _send_blocking(self, message: EmailMessage) -> None:
        smtp = self.smtp
        where = f"{smtp.host}:{smtp.port}"
        try:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
                client.ehlo()
                if self._tls_context is not None:
                    client.starttls(context=self._tls_context)
                    client.ehlo()
                if smtp.uses_login:
                    _login(client, smtp.username, smtp.password.get_secret_value())
                refused = client.send_message(message)
        except smtplib.SMTPNotSupportedError as err:
            raise DeliveryError(EMAIL_REJECTED, f"relay {where}: {_smtp_text(str(err))}") from None
        except smtplib.SMTPRecipientsRefused as err:
            answers = "; ".join(
                f"{code} {_smtp_text(text)}" for code, text in err.recipients.values()
            )
            raise DeliveryError(EMAIL_REJECTED, f"relay {where} refused: {answers}") from None
        except smtplib.SMTPResponseException as err:
            raise DeliveryError(
                EMAIL_REJECTED,
                f"relay {where} answered {err.smtp_code} {_smtp_text(err.smtp_error)}",
            ) from None
        except (smtplib.SMTPException, OSError) as err:  # ssl.SSLError is an OSError
            raise DeliveryError(
                EMAIL_UNREACHABLE, f"relay {where}: {type(err).__name__}: {_smtp_text(str(err))}"
            ) from None
        except Exception as err:
            # Unforeseen: fail this attempt, not the process; the type only, since the text of
            # an arbitrary error could quote what it choked on (a credential, say).
            raise DeliveryError(EMAIL_REJECTED, f"relay {where}: {type(err).__name__}") from None
        if refused:
            answers = "; ".join(f"{code} {_smtp_text(text)}" for code, text in refused.values())
            raise DeliveryError(EMAIL_REJECTED, f"relay {where} refused: {answers}")


def _login(client: smtplib.SMTP, username: str, password: str) -> None:
    """``SMTP.login`` encodes credentials as ASCII and fails on ``å``, ``ö``; RFC 4616 allows
    UTF-8 in AUTH PLAIN, so non-ASCII credentials go that way."""
    if username.isascii() and password.isascii():
        client.login(username, password)
        return
    client.ehlo_or_helo_if_needed()
    if "PLAIN" not in client.esmtp_features.get("auth", "").upper().split():
        raise smtplib.SMTPNotSupportedError(
            "the relay does not offer AUTH PLAIN, needed for a non-ASCII user name or password"
        )
    token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
    code, answer = client.docmd("AUTH", f"PLAIN {token}")
    if code != 235:
        raise smtplib.SMTPAuthenticationError(code, answer)


def url_host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rpartition("@")[2] or "?"


class WebhookSender:
    def __init__(self, timeout_s: float, egress: PiiEgress = EGRESS) -> None:
        self.timeout_s = timeout_s
        self.egress = egress
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, payload: dict[str, Any], idempotency_key: str) -> None:
        assert self._session is not None, "WebhookSender.start() first"
        host = url_host(url)
        payload = self.egress.redact_value("webhook", payload)
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "budgetvakt-notifier",
            # Lets a receiver drop the rare repeat (see services/notifier/sent_store.py).
            "Idempotency-Key": idempotency_key,
        }
        try:
            async with self._session.post(url, data=body, headers=headers) as response:
                if not 200 <= response.status < 300:
                    text = " ".join((await response.text(errors="replace")).split())[:200]
                    raise DeliveryError(
                        WEBHOOK_REJECTED,
                        f"webhook at {host} answered HTTP {response.status} {text}",
                    )
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise DeliveryError(
                WEBHOOK_UNREACHABLE, f"webhook at {host}: {type(err).__name__}"
            ) from None
