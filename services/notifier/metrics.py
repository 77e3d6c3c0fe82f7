"""The notifier's Prometheus metrics, in a registry of their own (served on its /metrics).

The names are a contract: dashboards, alert rules and the demo read them.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from services.notifier.send import DEAD_LETTER_REASONS
from streams.pii_egress import EGRESS, GuardedRegistry, PiiEgress

CHANNELS = ("email", "webhook")
# Alert emitted_at → notification delivered. The target is p99 ≤ 2 s.
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class NotifierMetrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, egress: PiiEgress = EGRESS
    ) -> None:
        disable_created_metrics()  # process-wide, as the worker does: *_created is only noise
        self.registry = registry if registry is not None else GuardedRegistry(egress)
        egress.register(self.registry)  # budgetvakt_pii_blocked_total{where}
        self.alerts_consumed = Counter(
            "budgetvakt_notifier_alerts_consumed",
            "Alert events read from the alert topic and parsed (malformed records not included).",
            registry=self.registry,
        )
        self.sent = Counter(
            "budgetvakt_notifier_sent",
            "Notifications delivered (one digest e-mail or one webhook request each).",
            ["channel"],
            registry=self.registry,
        )
        self.failures = Counter(
            "budgetvakt_notifier_failures",
            "Failed delivery attempts (each retry counts).",
            ["channel"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "budgetvakt_notifier_dead_letter",
            "Records written to the notifier dead-letter topic, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.duplicates_skipped = Counter(
            "budgetvakt_notifier_duplicates_skipped",
            "Alert notifications not sent because they were sent before (per alert, recipient "
            "and channel).",
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "budgetvakt_notifier_delivery_seconds",
            "Seconds from the alert's emitted_at to its notification being delivered.",
            buckets=DELIVERY_BUCKETS,
            registry=self.registry,
        )
        # Every label value exported from the start, so rates and dashboards see zeros.
        for channel in CHANNELS:
            self.sent.labels(channel)
            self.failures.labels(channel)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def exposed_family_names(exposition: str) -> set[str]:
    """Metric family names as the text exposition declares them (``# TYPE <name> <type>``)."""
    return {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")}
