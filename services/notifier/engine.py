"""The notifier's moving parts: consume alert events, group them, deliver, commit.

One loop, in rounds:

1. fetch records from the alert topic (aiokafka, consumer group, no auto-commit); after the
   first record of a round keep fetching until the digest window has passed, so a burst for one
   recipient becomes one e-mail;
2. parse each record (``parse_alert``: strict JSON, the identity-number guard); a malformed
   one goes to the notifier dead-letter topic with the reason and is counted — never an
   exception out of the loop;
3. route each alert (``services.notifier.routing``) and group per recipient and channel;
4. deliver each group: skip alerts already recorded as sent or deferred
   (``services.notifier.sent_store``); on a digest channel (e-mail, Teams) a group of only
   "improved" alerts is deferred to the recipient's next digest instead of sent, and a digest
   takes the deferred ones along and shows each alert once (its latest event); send, retry with
   exponential backoff, record the send; after the last attempt the notification goes to the
   dead-letter topic;
5. commit the round's offsets — only now, when every notification of its records has been
   delivered, dead-lettered or found already sent.

A crash anywhere before 5 replays the round after the restart; step 4's store makes the replay
send nothing twice (except the window described in ``services.notifier.sent_store``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import CONTENT_TYPE_LATEST

from contract.dead_letter import PayloadSetting, key_to_keep, payload_fields
from contract.output_records import AlertEvent
from contract.pii import redact
from contract.validation import InvalidEvent, parse_alert_event
from core.domain import DomainConfig
from core.errors import UserError
from core.settings import Settings
from services.notifier.metrics import NotifierMetrics
from services.notifier.render import MailContext, build_email, json_payload, teams_card
from services.notifier.routing import Channel, Recipient, Routing
from services.notifier.send import MALFORMED, DeliveryError, EmailSender, WebhookSender
from services.notifier.sent_store import SentStore
from services.notifier.settings import NotifierSettings, SmtpSettings
from streams.pii_egress import EGRESS

log = structlog.get_logger("services.notifier.service")

_TOPIC_ALREADY_EXISTS = 36


@dataclass
class Notification:
    """One message to one recipient on one channel, about one or more alerts."""

    recipient: Recipient
    channel: Channel
    alerts: list[AlertEvent] = field(default_factory=list)


def plan_notifications(
    alerts: Sequence[AlertEvent], routing: Routing, domain: DomainConfig
) -> tuple[list[Notification], int]:
    """Group the round's alerts per recipient and channel; also return how many repeats of an
    alert (same event_id for the same recipient and channel) were dropped within the round.

    E-mail and Teams cards carry a digest; a JSON webhook gets one request per alert, because
    its receiver is a program that wants one alert's fields per call.
    """
    groups: dict[tuple[str, Channel], Notification] = {}
    seen: set[tuple[str, str, Channel]] = set()
    repeats = 0
    for alert in alerts:
        recipients = routing.recipients_for(alert, domain.org)
        if not recipients:
            log.info("alert_unrouted", event_id=alert.event_id, org_unit=alert.org_unit)
        for recipient in recipients:
            for channel in recipient.channels:
                if (alert.event_id, recipient.id, channel) in seen:
                    repeats += 1
                    continue
                seen.add((alert.event_id, recipient.id, channel))
                group = groups.setdefault((recipient.id, channel), Notification(recipient, channel))
                group.alerts.append(alert)
    notifications: list[Notification] = []
    for group in groups.values():
        if group.channel == "webhook" and group.recipient.webhook_format == "json":
            notifications.extend(
                Notification(group.recipient, "webhook", [alert]) for alert in group.alerts
            )
        else:
            notifications.append(group)
    return notifications, repeats


#: Statuses that never make a message of their own: they wait for the recipient's next digest.
DIGEST_ONLY = frozenset({"improved"})


def is_digest(notification: Notification) -> bool:
    """E-mail and Teams cards are digests a person reads; a JSON webhook is a program that
    wants every state change at once (improvements included)."""
    return notification.channel == "email" or notification.recipient.webhook_format == "teams"


def latest_per_alert(alerts: Sequence[AlertEvent]) -> list[AlertEvent]:
    """One item per alert: its latest event (highest sequence), at the place of its first."""
    latest: dict[str, AlertEvent] = {}
    for alert in alerts:
        known = latest.get(alert.alert_id)
        if known is None or alert.sequence > known.sequence:
            latest[alert.alert_id] = alert
    return list(latest.values())


def parse_alert(raw: bytes) -> AlertEvent:
    """An alert event from strict JSON with the identity-number guard
    (``contract.validation.parse_alert_event``); ValueError with a reason that names positions
    only, never input."""
    try:
        return parse_alert_event(raw)
    except InvalidEvent as err:
        raise ValueError(err.reason) from None


def malformed_record(
    record: ConsumerRecord[bytes, bytes], reason: str, payload: PayloadSetting = "hash"
) -> bytes:
    """Like the worker's dead letter (``streams.dead_letter``): the hash and length of the
    record's bytes, the bytes themselves only as BUDGETVAKT_DEAD_LETTER_PAYLOAD allows and
    never when they hold an identity number."""
    value = record.value if isinstance(record.value, bytes) else b""
    key = record.key if isinstance(record.key, bytes) else None
    shown_key = key_to_keep(key)
    return json.dumps(
        {
            "kind": MALFORMED,
            "reason": redact(reason),
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": base64.b64encode(shown_key).decode("ascii") if shown_key is not None else None,
            **payload_fields(value, payload, personal_id="personal identity number" in reason),
            "rejected_at": datetime.now(UTC).isoformat(),
        },
        ensure_ascii=False,
    ).encode("utf-8")


def failed_notification_record(
    notification: Notification, alerts: Sequence[AlertEvent], error: DeliveryError, attempts: int
) -> bytes:
    """Enough to send it again by hand: who, which channel, the alerts themselves, why."""
    return json.dumps(
        {
            "kind": error.kind,
            "reason": error.reason,
            "recipient": notification.recipient.id,
            "channel": notification.channel,
            "attempts": attempts,
            "event_ids": [a.event_id for a in alerts],
            "alerts": [a.model_dump(mode="json") for a in alerts],
            "failed_at": datetime.now(UTC).isoformat(),
        },
        ensure_ascii=False,
    ).encode("utf-8")


def seconds_since(emitted_at: datetime, now: datetime) -> float:
    stamp = emitted_at if emitted_at.tzinfo is not None else emitted_at.replace(tzinfo=UTC)
    return max(0.0, (now - stamp).total_seconds())


DeadLetterSink = Callable[[bytes | None, bytes], Awaitable[None]]


class Deliverer:
    """Sends notifications with retries, de-duplicated by the store, failures dead-lettered."""

    def __init__(
        self,
        notifier: NotifierSettings,
        smtp: SmtpSettings,
        domain: DomainConfig,
        store: SentStore,
        metrics: NotifierMetrics,
        email: EmailSender,
        webhooks: WebhookSender,
        dead_letter: DeadLetterSink,
        context: MailContext | None = None,
    ) -> None:
        self.notifier = notifier
        self.context = context or MailContext()
        self.smtp = smtp
        self.domain = domain
        self.store = store
        self.metrics = metrics
        self.email = email
        self.webhooks = webhooks
        self.dead_letter = dead_letter
        self._slots = asyncio.Semaphore(notifier.max_concurrent_sends)

    def backoff_s(self, failed_attempt: int) -> float:
        delay = self.notifier.retry_backoff_s * 2 ** (failed_attempt - 1)
        return float(min(self.notifier.retry_backoff_max_s, delay))

    async def deliver(self, notification: Notification) -> None:
        recipient, channel = notification.recipient, notification.channel
        store = self.store
        fresh = [
            a
            for a in notification.alerts
            if not store.was_sent(a.event_id, recipient.id, channel)
            and not store.is_deferred(a.event_id, recipient.id, channel)
        ]
        skipped = len(notification.alerts) - len(fresh)
        if skipped:
            self.metrics.duplicates_skipped.inc(skipped)
            log.info(
                "notification_already_sent",
                recipient=recipient.id,
                channel=channel,
                alerts=skipped,
            )
        if not fresh:
            return
        carried = fresh
        if is_digest(notification):
            if all(a.status in DIGEST_ONLY for a in fresh):
                # Improvements wait for the recipient's next digest (stored, so the offsets can
                # be committed and a restart neither loses nor repeats them).
                store.defer(
                    ((a.event_id, a.model_dump_json()) for a in fresh), recipient.id, channel
                )
                log.info(
                    "notification_deferred",
                    recipient=recipient.id,
                    channel=channel,
                    event_ids=[a.event_id for a in fresh],
                )
                return
            carried = self._held(recipient.id, channel, {a.event_id for a in fresh}) + fresh
        shown = latest_per_alert(carried)
        send = self._sender(notification, shown, carried)
        attempts = self.notifier.retries + 1
        error: DeliveryError | None = None
        for attempt in range(1, attempts + 1):
            async with self._slots:
                try:
                    await send()
                except DeliveryError as err:
                    error = err
                    self.metrics.failures.labels(channel).inc()
                    log.warning(
                        "notification_attempt_failed",
                        recipient=recipient.id,
                        channel=channel,
                        attempt=attempt,
                        of=attempts,
                        kind=err.kind,
                        reason=err.reason,
                    )
                else:
                    # Recorded before the slot is freed: see services/notifier/sent_store.py.
                    store.record_sent((a.event_id for a in carried), recipient.id, channel)
                    # Deferred improvements waited on purpose: not part of the latency.
                    self._count_delivered(
                        channel, [a for a in fresh if a.status not in DIGEST_ONLY]
                    )
                    log.info(
                        "notification_sent",
                        recipient=recipient.id,
                        channel=channel,
                        alerts=len(shown),
                        event_ids=[a.event_id for a in carried],
                        attempt=attempt,
                    )
                    return
            if attempt < attempts:
                await asyncio.sleep(self.backoff_s(attempt))
        assert error is not None
        if is_digest(notification):
            # The round's improvements stay due for the next digest; the rest is dead-lettered.
            improved = [a for a in fresh if a.status in DIGEST_ONLY]
            store.defer(
                ((a.event_id, a.model_dump_json()) for a in improved), recipient.id, channel
            )
        await self.dead_letter(
            recipient.id.encode("utf-8"),
            failed_notification_record(notification, shown, error, attempts),
        )
        self.metrics.dead_letters.labels(error.kind).inc()
        log.error(
            "notification_dead_lettered",
            recipient=recipient.id,
            channel=channel,
            attempts=attempts,
            kind=error.kind,
            reason=error.reason,
            event_ids=[a.event_id for a in shown],
        )

    def _held(self, recipient_id: str, channel: Channel, fresh: set[str]) -> list[AlertEvent]:
        """The alerts deferred for this recipient and channel (an unreadable one is logged and
        left out: it must not stop the digest it would have joined)."""
        held: list[AlertEvent] = []
        for raw in self.store.deferred(recipient_id, channel):
            try:
                event = parse_alert(raw.encode("utf-8"))
            except ValueError as err:
                log.warning("deferred_alert_unreadable", recipient=recipient_id, reason=str(err))
                continue
            if event.event_id not in fresh:
                held.append(event)
        return held

    def _count_delivered(self, channel: Channel, alerts: Sequence[AlertEvent]) -> None:
        self.metrics.sent.labels(channel).inc()
        now = datetime.now(UTC)
        for alert in alerts:
            self.metrics.delivery_seconds.observe(seconds_since(alert.emitted_at, now))

    def _sender(
        self,
        notification: Notification,
        alerts: Sequence[AlertEvent],
        carried: Sequence[AlertEvent],
    ) -> Callable[[], Awaitable[None]]:
        """``alerts``: what the message shows; ``carried``: every event it accounts for (the
        shown ones and those they supersede), named in its trace header and idempotency key."""
        recipient = notification.recipient
        if notification.channel == "email":
            # Built once: retries carry the same Message-ID, so a relay can spot a repeat.
            message = build_email(
                recipient, alerts, self.domain, self.smtp.sender, self.context, carried=carried
            )
            return lambda: self.email.send(message)
        assert recipient.webhook_url is not None
        url = recipient.webhook_url
        if recipient.webhook_format == "json":
            payload = json_payload(recipient, alerts[0], self.domain, self.context)
            key = f"{alerts[0].event_id}:{recipient.id}"
        else:
            payload = teams_card(recipient, alerts, self.domain, self.context)
            digest = hashlib.sha256(" ".join(a.event_id for a in carried).encode()).hexdigest()
            key = f"{digest[:32]}:{recipient.id}"
        return lambda: self.webhooks.post(url, payload, key)


async def ensure_topics(
    bootstrap_servers: str, topics: dict[str, int], keep_forever: frozenset[str] = frozenset()
) -> None:
    """Create the topics the notifier reads and writes when they do not exist yet; those in
    ``keep_forever`` without time-based deletion (the alert topic is the worker's alert state)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
    except KafkaError as err:
        raise UserError(
            f"cannot reach Kafka at {bootstrap_servers} (BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS): "
            f"{err}",
            exit_code=1,
        ) from None
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    partitions,
                    1,
                    topic_configs={"retention.ms": "-1"} if name in keep_forever else None,
                )
                for name, partitions in topics.items()
            ]
        )
        for name, code, *message in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                log.warning("topic_not_created", topic=name, error_code=code, message=message)
    finally:
        await admin.close()


async def start_web(
    host: str, port: int, metrics: NotifierMetrics, consumer: AIOKafkaConsumer
) -> web.AppRunner:
    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def get_ready(_: web.Request) -> web.Response:
        assigned = sorted(f"{tp.topic}/{tp.partition}" for tp in consumer.assignment())
        return web.json_response(
            {"ready": bool(assigned), "partitions": assigned}, status=200 if assigned else 503
        )

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/ready", get_ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as err:
        await runner.cleanup()
        raise UserError(
            f"cannot serve /metrics on {host}:{port} (BUDGETVAKT_NOTIFIER_WEB_PORT): "
            f"{err.strerror or err}"
        ) from None
    return runner


class AlertConsumer:
    """The round loop described in the module docstring."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        deliverer: Deliverer,
        routing: Routing,
        domain: DomainConfig,
        metrics: NotifierMetrics,
        notifier: NotifierSettings,
        dead_letter: DeadLetterSink,
        dead_letter_payload: PayloadSetting = "hash",
    ) -> None:
        self.dead_letter_payload = dead_letter_payload
        self.consumer = consumer
        self.deliverer = deliverer
        self.routing = routing
        self.domain = domain
        self.metrics = metrics
        self.notifier = notifier
        self.dead_letter = dead_letter

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            records = await self._fetch_round(stop)
            if records:
                await self.process(records)
                await self._commit(records)

    async def _fetch_round(self, stop: asyncio.Event) -> list[ConsumerRecord[bytes, bytes]]:
        limit = self.notifier.max_records_per_round
        poll_ms = int(self.notifier.poll_timeout_s * 1000)
        records = _flatten(await self.consumer.getmany(timeout_ms=poll_ms, max_records=limit))
        if not records:
            return records
        first_at = time.time()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.notifier.digest_window_s
        while len(records) < limit and not stop.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            more = await self.consumer.getmany(
                timeout_ms=max(1, int(remaining * 1000)), max_records=limit - len(records)
            )
            records.extend(_flatten(more))
        # When the round's first record arrived and (the line's timestamp) when it ended.
        log.info("alert_round_fetched", records=len(records), first_at=round(first_at, 4))
        return records

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        alerts: list[AlertEvent] = []
        for record in records:
            try:
                if not record.value:
                    raise ValueError("empty record")
                alerts.append(parse_alert(record.value))
            except ValueError as err:
                reason = str(err)
                await self.dead_letter(
                    key_to_keep(record.key if isinstance(record.key, bytes) else None),
                    malformed_record(record, reason, self.dead_letter_payload),
                )
                self.metrics.dead_letters.labels(MALFORMED).inc()
                log.warning(
                    "alert_record_malformed",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    reason=reason,
                )
                continue
            self.metrics.alerts_consumed.inc()
        notifications, repeats = plan_notifications(alerts, self.routing, self.domain)
        if repeats:
            self.metrics.duplicates_skipped.inc(repeats)
        # One lane per recipient and channel, delivered in order: a case system must get an
        # alert's "firing" before its "resolved", also when the first attempt is retried.
        lanes: dict[tuple[str, str], list[Notification]] = {}
        for notification in notifications:
            lane = (notification.recipient.id, notification.channel)
            lanes.setdefault(lane, []).append(notification)
        await asyncio.gather(*(self._deliver_in_order(lane) for lane in lanes.values()))

    async def _deliver_in_order(self, lane: Sequence[Notification]) -> None:
        for notification in lane:
            await self.deliverer.deliver(notification)

    async def _commit(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as err:
            # A rebalance took partitions away mid-round; their next owner replays the records
            # and the store keeps it from sending twice.
            log.warning("commit_failed", error=str(err))


def _flatten(
    batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
) -> list[ConsumerRecord[bytes, bytes]]:
    return [record for records in batches.values() for record in records]


async def run(
    settings: Settings,
    domain: DomainConfig,
    routing: Routing,
    stop: asyncio.Event,
    notifier: NotifierSettings,
    smtp: SmtpSettings,
    metrics: NotifierMetrics,
) -> None:
    bootstrap_servers = settings.require_bootstrap_servers()
    topics = settings.topics()
    store_path = notifier.resolved_store_path(settings)
    try:
        store = SentStore(store_path)
    except Exception as err:  # sqlite3.Error or OSError: a user's path or permission problem
        raise UserError(f"cannot open the notifier store {store_path}: {err}") from None
    pruned = store.prune(timedelta(days=notifier.store_retention_days))
    await ensure_topics(
        bootstrap_servers,
        {
            topics.alert: settings.topic_partitions,
            notifier.dead_letter_topic: settings.topic_partitions,
        },
        keep_forever=frozenset({topics.alert}),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        max_batch_size=settings.producer_max_batch_size,
    )
    session_ms = int(settings.broker_session_timeout_s * 1000)
    consumer: AIOKafkaConsumer = AIOKafkaConsumer(
        topics.alert,
        bootstrap_servers=bootstrap_servers,
        group_id=notifier.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=max(100, min(3000, session_ms // 3)),
        max_poll_records=notifier.max_records_per_round,
        fetch_max_wait_ms=int(notifier.fetch_max_wait_s * 1000),
    )

    async def dead_letter(key: bytes | None, value: bytes) -> None:
        value = EGRESS.redact_json("dead_letter", value)  # alert texts, a relay's answer
        await producer.send_and_wait(notifier.dead_letter_topic, value=value, key=key)

    webhooks = WebhookSender(notifier.webhook_timeout_s)
    context = MailContext(routing=routing, report_url=notifier.report_url)
    deliverer = Deliverer(
        notifier, smtp, domain, store, metrics, EmailSender(smtp), webhooks, dead_letter, context
    )
    loop_ = AlertConsumer(
        consumer,
        deliverer,
        routing,
        domain,
        metrics,
        notifier,
        dead_letter,
        dead_letter_payload=settings.dead_letter_payload,
    )
    web_host = notifier.resolved_web_host(settings)
    runner: web.AppRunner | None = None
    try:
        runner = await start_web(web_host, notifier.web_port, metrics, consumer)
        await webhooks.start()
        await producer.start()
        await consumer.start()
        log.info(
            "notifier_started",
            bootstrap_servers=bootstrap_servers,
            topic=topics.alert,
            dead_letter_topic=notifier.dead_letter_topic,
            group_id=notifier.group_id,
            web=f"http://{web_host}:{notifier.web_port}/metrics",
            store=str(store_path),
            store_pruned=pruned,
            routing=str(routing.source),
            recipients=len(routing.recipients),
            # Where mail goes and how, never who logs in with what.
            smtp=f"{smtp.host}:{smtp.port}",
            smtp_starttls=smtp.starttls,
            smtp_login=smtp.uses_login,
            digest_window_s=notifier.digest_window_s,
        )
        await loop_.run(stop)
        log.info("notifier_stopping")
    finally:
        await _quietly(consumer.stop())
        await _quietly(producer.stop())
        await _quietly(webhooks.close())
        if runner is not None:
            await _quietly(runner.cleanup())
        store.close()


async def _quietly(closing: Awaitable[Any]) -> None:
    try:
        await closing
    except Exception as err:  # shutting down: report, but let the original outcome stand
        log.warning("shutdown_step_failed", error=f"{type(err).__name__}: {err}")
