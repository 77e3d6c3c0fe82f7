"""What a recipient reads: Swedish e-mail (subject and body), JSON and Teams webhook bodies.

Pure functions of the alerts, the recipient and the domain configuration. The alert's ``message``
is already Swedish and quotes its numbers in Swedish format (the worker writes it); this module
adds the unit, severity, status, period and category around it. Nothing personal is added: the
recipient's own name and role only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formatdate, make_msgid, parseaddr
from typing import Any

from contract.output_records import SEVERITIES, AlertEvent
from core.domain import DomainConfig
from core.swedish import MONTH_NAMES_SV
from services.notifier.routing import Recipient

SEVERITY_SV = {"info": "Information", "warning": "Varning", "critical": "Kritisk"}
# worsened/improved: added by the alert-rules branch so that the new statuses render; the
# notifier's own wording (alert-mails branch) replaces this.
STATUS_SV = {
    "firing": "Utlöst",
    "worsened": "Försämrat",
    "improved": "Förbättrat",
    "resolved": "Åtgärdad",
}
EVENT_IDS_HEADER = "X-Budgetvakt-Event-Ids"
# Adaptive Card colours per severity (Teams renders them as red / amber / default).
_CARD_COLOUR = {"critical": "Attention", "warning": "Warning", "info": "Default"}


def period_sv(period: str) -> str:
    """``2025-08`` → ``augusti 2025``."""
    year, month = period.split("-")
    return f"{MONTH_NAMES_SV[int(month) - 1]} {year}"


def category_sv(category: str | None, domain: DomainConfig) -> str | None:
    if category is None:
        return None
    if category == "total":  # the roll-up over all categories (forecasts.live)
        return "Totalt, alla kategorier"
    if category in domain.categories:
        return domain.categories[category].name_sv
    if category in domain.measures:
        return domain.measures[category].name_sv
    return category


def ordered(alerts: Sequence[AlertEvent]) -> list[AlertEvent]:
    """Most severe first; otherwise in arrival order."""
    return sorted(alerts, key=lambda a: -SEVERITIES.index(a.severity))


def common_unit_name(alerts: Sequence[AlertEvent], domain: DomainConfig) -> str:
    """The name of the lowest org unit that holds every alert's unit (the unit itself for one)."""
    paths = [domain.org.path(a.org_unit) for a in alerts]
    shared = set(paths[0]).intersection(*paths[1:])
    lowest = next(unit for unit in paths[0] if unit in shared)
    own = next((a.org_unit_name for a in alerts if a.org_unit == lowest), None)
    return own or domain.org.nodes[lowest].name


def subject(alerts: Sequence[AlertEvent], domain: DomainConfig) -> str:
    """``budgetvakt: 3 avvikelser (1 kritisk), Äldreomsorg``; one alert: its status and unit."""
    unit = common_unit_name(alerts, domain)
    critical = sum(1 for a in alerts if a.severity == "critical" and a.status == "firing")
    if len(alerts) == 1:
        alert = alerts[0]
        what = "åtgärdad avvikelse" if alert.status == "resolved" else "avvikelse"
        marker = " (kritisk)" if critical else ""
        return f"budgetvakt: {what}{marker}, {unit}"
    marker = f" ({critical} kritisk{'a' if critical > 1 else ''})" if critical else ""
    return f"budgetvakt: {len(alerts)} avvikelser{marker}, {unit}"


def alert_lines(alert: AlertEvent, domain: DomainConfig) -> list[str]:
    head = (
        f"{SEVERITY_SV[alert.severity]} · {STATUS_SV[alert.status]} · "
        f"{alert.org_unit_name} ({alert.org_unit})"
    )
    lines = [head, f"Period: {period_sv(alert.period)} ({alert.period})"]
    category = category_sv(alert.category, domain)
    if category is not None:
        lines.append(f"Kategori: {category}")
    lines.append(alert.message)
    return lines


def email_body(recipient: Recipient, alerts: Sequence[AlertEvent], domain: DomainConfig) -> str:
    unit = common_unit_name(alerts, domain)
    count = "en avvikelse" if len(alerts) == 1 else f"{len(alerts)} avvikelser"
    parts = [f"Hej {recipient.name},", "", f"budgetvakt har {count} för {unit}:", ""]
    for number, alert in enumerate(ordered(alerts), start=1):
        first, *rest = alert_lines(alert, domain)
        parts.append(f"{number}. {first}")
        parts.extend(f"   {line}" for line in rest)
        parts.append("")
    parts += [
        f"Du får det här meddelandet som {recipient.role}.",
        "Det är skickat automatiskt av budgetvakt och innehåller inga personuppgifter.",
    ]
    return "\n".join(parts) + "\n"


def _sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "budgetvakt.invalid"


def build_email(
    recipient: Recipient,
    alerts: Sequence[AlertEvent],
    domain: DomainConfig,
    sender: str,
    now: datetime | None = None,
) -> EmailMessage:
    """One digest e-mail; the event ids ride along in a header for tracing, not for display."""
    assert recipient.email is not None
    message = EmailMessage()
    message["Subject"] = subject(alerts, domain)
    message["From"] = sender
    local, _, host = recipient.email.partition("@")
    message["To"] = Address(display_name=recipient.name, username=local, domain=host)
    message["Date"] = format_datetime(now) if now is not None else formatdate(localtime=False)
    message["Message-ID"] = make_msgid("budgetvakt", domain=_sender_domain(sender))
    message[EVENT_IDS_HEADER] = " ".join(a.event_id for a in alerts)
    message.set_content(email_body(recipient, alerts, domain))
    return message


def json_payload(recipient: Recipient, alert: AlertEvent, domain: DomainConfig) -> dict[str, Any]:
    """The generic webhook body: the alert's own fields plus Swedish labels and the recipient."""
    return {
        **alert.model_dump(mode="json"),
        "severity_sv": SEVERITY_SV[alert.severity],
        "status_sv": STATUS_SV[alert.status],
        "category_sv": category_sv(alert.category, domain),
        "recipient": {"id": recipient.id, "name": recipient.name, "role": recipient.role},
        "source": "budgetvakt",
    }


def teams_card(
    recipient: Recipient, alerts: Sequence[AlertEvent], domain: DomainConfig
) -> dict[str, Any]:
    """A Teams message with one Adaptive Card (the format Teams workflow webhooks accept)."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "size": "Medium",
            "weight": "Bolder",
            "wrap": True,
            "text": subject(alerts, domain),
        }
    ]
    for alert in ordered(alerts):
        facts = [
            {"title": "Enhet", "value": f"{alert.org_unit_name} ({alert.org_unit})"},
            {"title": "Period", "value": period_sv(alert.period)},
        ]
        category = category_sv(alert.category, domain)
        if category is not None:
            facts.append({"title": "Kategori", "value": category})
        body.append(
            {
                "type": "Container",
                "separator": True,
                "items": [
                    {
                        "type": "TextBlock",
                        "weight": "Bolder",
                        "wrap": True,
                        "color": _CARD_COLOUR[alert.severity],
                        "text": f"{SEVERITY_SV[alert.severity]} · {STATUS_SV[alert.status]}",
                    },
                    {"type": "TextBlock", "wrap": True, "text": alert.message},
                    {"type": "FactSet", "facts": facts},
                ],
            }
        )
    body.append(
        {
            "type": "TextBlock",
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
            "text": f"Till {recipient.name}, {recipient.role}. Skickat av budgetvakt "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC.",
        }
    )
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }
        ],
    }
