"""``budgetvakt notifier``: deviation alerts to their recipients, by e-mail and webhook.

Reads ``AlertEvent`` JSON from the alert topic (``BUDGETVAKT_TOPIC_ALERT``), routes each alert
by ``config/routing.yaml`` to the people responsible for its org unit and the units above it,
groups what arrives within ``BUDGETVAKT_NOTIFIER_DIGEST_WINDOW_S`` into one message per
recipient, and delivers it over SMTP and webhooks with retries; what cannot be delivered goes to
the notifier dead-letter topic. Each notification is sent once, also across restarts (a SQLite
store of sent notifications, ``services/notifier/sent_store.py``, explains the one remaining
window).

Modules of ``services.notifier``: ``settings`` (env settings), ``routing`` (routing file),
``render`` (Swedish texts, webhook bodies), ``actions`` (requested actions and deadlines),
``send`` (SMTP, HTTP), ``sent_store`` (sent and deferred alerts), ``metrics`` (Prometheus),
``engine`` (the consume → deliver → commit loop).
Heavy imports stay inside functions so that ``budgetvakt --help`` stays fast.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from services.notifier.settings import NotifierSettings, SmtpSettings, load_env_settings

if TYPE_CHECKING:
    from core.domain import DomainConfig
    from core.settings import Settings
    from services.notifier.metrics import NotifierMetrics
    from services.notifier.routing import Routing

__all__ = [
    "NotifierSettings",
    "SmtpSettings",
    "metric_names",
    "run_notifier",
]


def metric_names() -> set[str]:
    """The metric family names on the notifier's /metrics, as the exposition writes them in its
    ``# TYPE`` lines (prometheus-client writes counters with their ``_total`` suffix):
    ``budgetvakt_notifier_alerts_consumed_total``, ``…_sent_total``, ``…_failures_total``,
    ``…_dead_letter_total``, ``…_duplicates_skipped_total`` and
    ``budgetvakt_notifier_delivery_seconds`` (a histogram)."""
    from services.notifier.metrics import NotifierMetrics, exposed_family_names

    return exposed_family_names(NotifierMetrics().exposition().decode("utf-8"))


async def run_notifier(
    settings: Settings,
    domain: DomainConfig,
    routing: Routing,
    stop: asyncio.Event,
    *,
    notifier_settings: NotifierSettings | None = None,
    smtp_settings: SmtpSettings | None = None,
    metrics: NotifierMetrics | None = None,
) -> None:
    """Run until ``stop`` is set; the round in progress is finished (delivered and committed)
    first. ``notifier_settings``/``smtp_settings`` default to the environment; pass ``metrics``
    to read the counters in-process (they are also served on /metrics).

    Raises ``UserError`` for a missing bootstrap address, an unreachable broker, a busy web
    port or an unusable store path."""
    from services.notifier.engine import run
    from services.notifier.metrics import NotifierMetrics

    if notifier_settings is None or smtp_settings is None:
        from_env_notifier, from_env_smtp = load_env_settings()
        notifier_settings = notifier_settings or from_env_notifier
        smtp_settings = smtp_settings or from_env_smtp
    await run(
        settings,
        domain,
        routing,
        stop,
        notifier_settings,
        smtp_settings,
        metrics if metrics is not None else NotifierMetrics(),
    )
