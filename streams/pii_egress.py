"""The last check before anything leaves a process: no personal identity number gets out.

``contract.pii`` guards the input: an event carrying a personnummer or samordningsnummer is
rejected. This module is the defence behind it, for whatever the guard might miss or whatever
reaches an output by another way (a log line quoting an exception, a label taken from state, an
alert text). Every output runs the same check, ``contract.pii``'s, here, in one place:

=================  ==========================================================================
``where``          what is checked, and what happens on a hit
=================  ==========================================================================
log                every structlog event (keys and values, nested, exception text) and every
                   standard-library log record: the number is replaced by ``[personnummer]``
metric_label       every label value of every sample at scrape time: the sample is withheld
forecast_event     a forecast.v1 event (key and value) before it is produced: not produced
alert_event        an alert.v1 event (key and value) before it is produced: not produced
email              the subject, headers and every text part of a mail: redacted, then sent
webhook            the JSON payload of a webhook request: redacted, then sent
web                an answer of a process's HTTP API that lists ids (the worker's /unmapped)
dead_letter        a notifier dead-letter record (JSON): redacted, then produced
=================  ==========================================================================

A hit counts in ``budgetvakt_pii_blocked_total{where}``. The counter is process-wide (the log
processor exists before any metrics registry does); each process's registry registers it.
Nothing here ever logs or returns the number it found.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from email.message import EmailMessage
from typing import Any, Final

import structlog
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.metrics_core import Metric

from contract.pii import contains_personal_id, redact

#: The label values of ``budgetvakt_pii_blocked_total{where}``: a fixed set.
WHERE: Final = (
    "log",
    "metric_label",
    "forecast_event",
    "alert_event",
    "email",
    "webhook",
    "web",
    "dead_letter",
)
REDACTED: Final = "[personnummer]"
# Distinct withheld series remembered so that a scrape-time hit counts once, not every scrape.
_MAX_REMEMBERED_SERIES = 10_000


class PiiEgress:
    """The output check with its counter; ``EGRESS`` is the process's one instance."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.blocked = Counter(
            "budgetvakt_pii_blocked",
            "Outputs in which a personal identity number was found and redacted or withheld, "
            "by where (log, metric_label, forecast_event, alert_event, email, webhook, web, "
            "dead_letter)",
            ["where"],
            registry=registry,
        )
        for where in WHERE:
            self.blocked.labels(where)
        self._withheld_series: set[bytes] = set()

    def register(self, registry: CollectorRegistry) -> None:
        """Export the counter on ``registry`` too (the worker's or the notifier's)."""
        registry.register(self.blocked)

    def count(self, where: str) -> None:
        if where not in WHERE:
            raise ValueError(f"unknown egress point {where!r}; one of {WHERE}")
        self.blocked.labels(where).inc()

    # -- checks ------------------------------------------------------------------------------

    def is_clean(self, where: str, *texts: str | bytes) -> bool:
        """True when no text holds an identity number; a hit is counted once under ``where``."""
        for text in texts:
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            if contains_personal_id(text):
                self.count(where)
                return False
        return True

    def redact_value(self, where: str, value: Any) -> Any:
        """``value`` with every identity number in keys and strings (nested) replaced; a value
        that changed is counted once under ``where``."""
        cleaned, changed = _redact(value)
        if changed:
            self.count(where)
        return cleaned

    def redact_json(self, where: str, value: bytes) -> bytes:
        """A JSON document (bytes) with identity numbers redacted in its keys and strings;
        bytes that are not JSON are redacted as text."""
        text = value.decode("utf-8", "replace")
        if not contains_personal_id(text):
            return value
        try:
            document = json.loads(text)
        except ValueError:
            self.count(where)
            return redact(text).encode("utf-8")
        cleaned = self.redact_value(where, document)
        return json.dumps(cleaned, ensure_ascii=False).encode("utf-8")

    def redact_email(self, message: EmailMessage) -> EmailMessage:
        """The message with identity numbers replaced in headers and text parts (in place)."""
        changed = False
        for name, value in list(message.items()):
            if contains_personal_id(str(value)):
                message.replace_header(name, redact(str(value)))
                changed = True
        for part in message.walk():
            if part.is_multipart() or part.get_content_maintype() != "text":
                continue
            text = part.get_content()
            if contains_personal_id(text):
                subtype = part.get_content_subtype()
                part.set_content(redact(text), subtype=subtype, charset="utf-8")
                changed = True
        if changed:
            self.count("email")
        return message

    # -- metrics -----------------------------------------------------------------------------

    def clean_metrics(self, metrics: Iterable[Metric]) -> Iterator[Metric]:
        """The metrics without the samples whose label values hold an identity number."""
        for metric in metrics:
            kept = []
            for sample in metric.samples:
                if any(contains_personal_id(v) for v in sample.labels.values()):
                    self._note_withheld(metric.name, sample.labels)
                    continue
                kept.append(sample)
            if len(kept) != len(metric.samples):
                copy = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                copy.samples = kept
                metric = copy
            yield metric

    def _note_withheld(self, name: str, labels: Mapping[str, str]) -> None:
        digest = hashlib.sha256(repr((name, sorted(labels.items()))).encode()).digest()
        if digest in self._withheld_series:
            return
        if len(self._withheld_series) < _MAX_REMEMBERED_SERIES:
            self._withheld_series.add(digest)
        self.count("metric_label")

    # -- produced events ---------------------------------------------------------------------

    def guard_publish(
        self,
        publish: Callable[[str, str, bytes], Awaitable[None]],
        where_by_topic: Mapping[str, str],
    ) -> Callable[[str, str, bytes], Awaitable[None]]:
        """``publish(topic, key, value)`` that drops an event holding an identity number."""

        async def guarded(topic: str, key: str, value: bytes) -> None:
            where = where_by_topic.get(topic, "forecast_event")
            if not self.is_clean(where, key, value):
                # The topic only, never the key or the value: they hold the number.
                structlog.get_logger(__name__).warning("pii_blocked", where=where, topic=topic)
                return
            await publish(topic, key, value)

        return guarded


def _redact(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str):
        if contains_personal_id(value):
            return redact(value), True
        return value, False
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
        return (redact(text), True) if contains_personal_id(text) else (value, False)
    if isinstance(value, bool) or value is None:
        return value, False
    if isinstance(value, int | float):
        # A number whose digits form an identity number (191212121212) is one, too.
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        return (REDACTED, True) if contains_personal_id(text) else (value, False)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        changed = False
        for key, item in value.items():
            new_key, key_changed = _redact(key) if isinstance(key, str | int) else (key, False)
            new_item, item_changed = _redact(item)
            out[new_key] = new_item
            changed = changed or key_changed or item_changed
        return (out, True) if changed else (value, False)
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact(item) for item in value]
        if any(changed for _, changed in items):
            cleaned = [item for item, _ in items]
            return (tuple(cleaned) if isinstance(value, tuple) else cleaned), True
        return value, False
    # Anything else (an exception, a Path, a datetime) is judged by its text, which is what
    # a renderer would write.
    text = str(value)
    return (redact(text), True) if contains_personal_id(text) else (value, False)


EGRESS = PiiEgress()


class GuardedRegistry(CollectorRegistry):
    """A registry whose exposition never carries a label value holding an identity number."""

    def __init__(self, egress: PiiEgress = EGRESS, auto_describe: bool = False) -> None:
        super().__init__(auto_describe=auto_describe)
        self.egress = egress

    def collect(self) -> Iterator[Metric]:
        return self.egress.clean_metrics(super().collect())


def structlog_redactor(
    egress: PiiEgress = EGRESS,
) -> Callable[[Any, str, dict[str, Any]], dict[str, Any]]:
    """A structlog processor: the event dict with identity numbers redacted (keys, values,
    nested, the formatted exception), counted under ``log``. Runs after ``format_exc_info``."""

    def processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        cleaned: dict[str, Any] = egress.redact_value("log", event_dict)
        return cleaned

    return processor


_BASE_RECORD_FACTORY = logging.getLogRecordFactory()


def install_stdlib_redaction(egress: PiiEgress = EGRESS) -> None:
    """Redact identity numbers from every standard-library log record's message (Faust,
    aiokafka and SQLAlchemy log that way), whatever handler later writes it."""
    base = _BASE_RECORD_FACTORY

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed format string: the handler reports it as usual
            return record
        if contains_personal_id(message):
            record.msg, record.args = redact(message), ()
            egress.count("log")
        return record

    logging.setLogRecordFactory(redacting_factory)
