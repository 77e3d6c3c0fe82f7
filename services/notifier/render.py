"""What a recipient reads: Swedish e-mail (subject and body), JSON and Teams webhook bodies.

Pure functions of the alerts, the recipient, the domain configuration and a :class:`MailContext`
(the routing's controllers and actions, the report link). Every item says what to do with it:
the headline (the alert's ``title``: unit, what, period, amount, direction), the worker's
sentence, the figures (utfall, budget, the forecast with its 80 % interval and how often such
intervals have held, the method in words), the driver (volume and price effect), what changed
since the previous mail, the requested action with its deadline, the responsible controller and
a link to the report.

Words follow what the reader can act on: "larm" (budgetlarm), never a bare "avvikelse" (which in
vård reads like a quality incident); after the year's December close "utfall", not "prognos";
a resolution is "åter inom gränserna" or "avslutat: året är stängt", never "åtgärdad", since
nobody has to have fixed anything. One sign convention: avvikelse = budget − prognos (budget −
utfall), negative = underskott. Nothing personal is added: the recipient's own name and role
and the controller's name and address only; the footer says "inga uppgifter om enskilda".

Events from before the lifecycle fields existed (no ``title``, ``change``, …) still render: each
part appears only when its data is there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formatdate, make_msgid, parseaddr
from typing import Any

from contract.output_records import SEVERITIES, AlertEvent
from core.domain import DomainConfig
from core.swedish import MONTH_NAMES_SV, Money, format_pct, format_units
from services.notifier.actions import action_text
from services.notifier.routing import Recipient, Routing

SEVERITY_SV = {"info": "Information", "warning": "Varning", "critical": "Kritisk"}
STATUS_SV = {
    "firing": "Nytt larm",
    "worsened": "Försämrat sedan förra meddelandet",
    "improved": "Förbättrat sedan förra meddelandet",
    "resolved": "Åter inom gränserna",
}
RESOLVED_YEAR_CLOSED_SV = "Avslutat: året är stängt"


def _money_verdict(deviation: float) -> str:
    """Budget − outcome: negative is an underskott."""
    return " (underskott)" if deviation < 0 else " (överskott)" if deviation > 0 else ""


EVENT_IDS_HEADER = "X-Budgetvakt-Event-Ids"
FOOTER_PRIVACY = (
    "Det är skickat automatiskt av budgetvakt och innehåller inga uppgifter om enskilda."
)
SIGN_LEGEND = (
    "Avvikelse = budget − prognos (efter årets stängning: budget − utfall; volymer: plan − "
    "utfall); minus = underskott."
)
# Adaptive Card colours per severity (Teams renders them as red / amber / default).
_CARD_COLOUR = {"critical": "Attention", "warning": "Warning", "info": "Default"}
# Order of the groups in a digest: what needs action first, then endings, then improvements.
_GROUP_ORDER = {"worsened": 0, "firing": 0, "resolved": 1, "improved": 2}
_GROUP_HEADING = {
    0: "Nya och försämrade larm",
    1: "Avslutade larm",
    2: "Förbättrade larm, fortfarande aktiva",
}

#: The forecast methods (``forecasts.engine`` model labels) in words a manager can read.
METHOD_SV = {
    "auto": "en kombination av prognosmodeller, vägd efter hur väl de har träffat tidigare år",
    "auto:fallback": "en kombination av prognosmodeller utan egen historisk kontroll (för kort "
    "historik), intervallets bredd är uppskattad",
    "auto:runrate": "utfallstakten hittills i år, framskriven (för lite data för annat)",
    "runrate": "utfallstakten hittills i år, framskriven",
    "ses": "exponentiell utjämning",
    "theta": "theta-metoden (trend och utjämning)",
    "ets": "exponentiell utjämning med trend och säsong (ETS)",
    "prophet": "Prophet (trend och säsong)",
    "sum": "summan av prognoserna för enheterna under",
    "volume×price": "volymprognos gånger pris per enhet",
}


def _no_link(period: str, org_unit: str) -> str | None:
    return None


@dataclass(frozen=True)
class MailContext:
    """What a message needs besides the alerts: the routing (controllers and requested actions;
    None: neither is shown) and the report link of a period and org unit (None: no link)."""

    routing: Routing | None = None
    report_url: Callable[[str, str], str | None] = _no_link


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


def method_sv(method: str | None) -> str | None:
    """A model label in words; ``+prelim`` (a month not closed yet) is said too; an unknown
    label is quoted as it is."""
    if not method:
        return None
    base, preliminary = (
        (method[: -len("+prelim")], True) if method.endswith("+prelim") else (method, False)
    )
    words = METHOD_SV.get(base)
    if words is None:
        head = base.split(":")[0]
        words = METHOD_SV.get(head, f"modellen {base}")
    return words + (" (preliminär: månaden är inte stängd)" if preliminary else "")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:1].isupper() and not text[1:2].isupper() else text


def _what(alert: AlertEvent, domain: DomainConfig) -> str:
    """The subject of the alert in running text: ``övertid och fyllnadstid``, ``nettokostnad``."""
    if alert.category == "total":
        return "nettokostnad"
    name = category_sv(alert.category, domain)
    return _lower_first(name) if name else alert.rule.replace("_", " ")


class _Amounts:
    """Formats one alert's amounts in one unit: mnkr/tkr for costs, the measure's unit for a
    volume (hemtjänsttimmar, vårddygn)."""

    def __init__(self, alert: AlertEvent, domain: DomainConfig) -> None:
        self.measure_unit = (
            domain.measures[alert.category].unit
            if alert.category is not None and alert.category in domain.measures
            else None
        )
        keys = (
            "budget",
            "actual_ytd",
            "budget_ytd",
            "forecast",
            "low",
            "high",
            "deviation",
            "amount",
            "actual_month",
            "limit",
        )
        self.money = Money.for_amounts(*(alert.values[k] for k in keys if k in alert.values))

    def __call__(self, value: float, signed: bool = False) -> str:
        if self.measure_unit is not None:
            return format_units(value, self.measure_unit, signed)
        return self.money(value, signed)

    def span(self, low: float, high: float) -> str:
        if self.measure_unit is not None:
            return f"{format_units(low, self.measure_unit)}–{format_units(high, self.measure_unit)}"
        return self.money.span(low, high)

    @property
    def reference(self) -> str:
        return "plan" if self.measure_unit is not None else "budget"


def _year(alert: AlertEvent) -> str:
    return alert.period[:4]


def _month_sv(alert: AlertEvent) -> str:
    return MONTH_NAMES_SV[int(alert.period[5:7]) - 1]


def _direction(deviation: float, amounts: _Amounts) -> str:
    """``2,1 mnkr över budget`` for a deviation (budget − outcome) of −2,1 mnkr."""
    side = "över" if deviation < 0 else "under"
    return f"{amounts(abs(deviation))} {side} {amounts.reference}"


def headline(alert: AlertEvent, domain: DomainConfig) -> str:
    """The alert's ``title`` or, for an event without one, the same parts from its values:
    ``Hemtjänst Norr: övertid och fyllnadstid 2,4 mnkr t.o.m. augusti 2025, 0,8 mnkr över
    budget``."""
    if alert.title:
        return alert.title
    unit, what, year = alert.org_unit_name, _what(alert, domain), _year(alert)
    if alert.status == "resolved":
        if alert.resolution == "year_closed":
            return f"{unit}: {what} {year}, avslutat: året är stängt"
        if "previous_forecast" in alert.values:  # the deficit may stand: only the change ended
            what = f"försämrad helårsprognos för {what}"
        return f"{unit}: {what} åter inom gränserna ({period_sv(alert.period)})"
    values, amounts = alert.values, _Amounts(alert, domain)
    if "actual_ytd" in values and ("budget_ytd" in values or "plan_ytd" in values):
        reference = values.get("budget_ytd", values.get("plan_ytd", 0.0))
        figure = f"{amounts(values['actual_ytd'])} t.o.m. {_month_sv(alert)} {year}"
        deviation = reference - values["actual_ytd"]
    elif "forecast" in values and "previous_forecast" in values:
        change = values["previous_forecast"] - values["forecast"]
        side = "sämre" if change < 0 else "bättre"
        return (
            f"{unit}: {what} prognos {amounts(values['forecast'])} för {year}, "
            f"{amounts(abs(change))} {side} än förra prognosen"
        )
    elif "forecast" in values and "budget" in values:
        noun = "utfall" if alert.year_closed else "prognos"
        figure = f"{noun} {amounts(values['forecast'])} för {year}"
        deviation = values["budget"] - values["forecast"]
    elif "amount" in values and "budget" in values:
        figure = f"{amounts(values['amount'])} för {year}"
        deviation = values["budget"] - values["amount"]
    elif "actual_month" in values and "limit" in values:
        figure = f"{amounts(values['actual_month'])} i {_month_sv(alert)} {year}"
        over = values["actual_month"] - values["limit"]
        side = "över" if over > 0 else "under"
        return f"{unit}: {what} {figure}, {amounts(abs(over))} {side} gränsen"
    elif "share_pct" in values:
        return (
            f"{unit}: sjukfrånvaro {format_pct(values['share_pct'])} av schemalagd tid "
            f"t.o.m. {_month_sv(alert)} {year}"
        )
    else:
        return f"{unit}: {what}, {period_sv(alert.period)}"
    if round(deviation) == 0:
        return f"{unit}: {what} {figure}, enligt {amounts.reference}"
    return f"{unit}: {what} {figure}, {_direction(deviation, amounts)}"


def status_sv(alert: AlertEvent) -> str:
    if alert.status == "resolved" and alert.resolution == "year_closed":
        return RESOLVED_YEAR_CLOSED_SV
    if alert.status == "firing" and alert.sequence > 1:
        return "Larm"  # an old-style severity change: neither new nor known to be worse
    return STATUS_SV[alert.status]


def ordered(alerts: Sequence[AlertEvent]) -> list[AlertEvent]:
    """What needs action first (new and worsened), then endings, then improvements; within
    each, most severe first, otherwise in arrival order."""
    return sorted(alerts, key=lambda a: (_GROUP_ORDER[a.status], -SEVERITIES.index(a.severity)))


def common_unit_name(alerts: Sequence[AlertEvent], domain: DomainConfig) -> str:
    """The name of the lowest org unit that holds every alert's unit (the unit itself for one);
    for alerts of several nämnder (a kommun's ekonomichef) their kommun, or "flera kommuner"."""
    paths = [domain.org.path(a.org_unit) for a in alerts]
    shared = set(paths[0]).intersection(*paths[1:])
    lowest = next((unit for unit in paths[0] if unit in shared), None)
    if lowest is None:
        kommuner = {domain.org.municipality_of(a.org_unit) or domain.municipality for a in alerts}
        kommun = kommuner.pop() if len(kommuner) == 1 else ""
        return kommun or ("flera kommuner" if kommuner else "flera nämnder")
    own = next((a.org_unit_name for a in alerts if a.org_unit == lowest), None)
    node = domain.org.nodes.get(lowest)
    return own or (node.name if node is not None else lowest)


def namnd_label(org_unit: str, domain: DomainConfig) -> str:
    """The unit's nämnd (unless the unit is the nämnd) and, when the organisation holds several
    kommuner, its kommun: ``Vård- och omsorgsnämnden``, ``Socialnämnden, Knivsta kommun``."""
    org = domain.org
    owner = org.owner_of(org_unit)
    parts = []
    if owner != org_unit:
        node = org.nodes.get(owner)
        parts.append(node.name if node is not None else owner)
    kommun = org.municipality_of(org_unit)
    if kommun and len({k for k in org.municipality_of_namnd.values() if k}) > 1:
        parts.append(kommun)
    return ", ".join(parts)


def subject(alerts: Sequence[AlertEvent], domain: DomainConfig) -> str:
    """The first item's headline (the most urgent); a digest adds how many more it holds."""
    first, *rest = ordered(alerts)
    head = headline(first, domain)
    if first.status == "improved":
        head = f"Förbättrat: {head}"
    if not rest:
        return head
    return f"{head} – och {len(rest)} larm till"


def figure_lines(alert: AlertEvent, domain: DomainConfig) -> list[str]:
    """The numbers of one alert, each on its line, only those the event has."""
    values, amounts = alert.values, _Amounts(alert, domain)
    year, month = _year(alert), _month_sv(alert)
    closed = alert.year_closed
    lines: list[str] = []
    if "actual_ytd" in values:
        lines.append(f"Utfall t.o.m. {month} {year}: {amounts(values['actual_ytd'])}")
    if "budget_ytd" in values:
        lines.append(f"Budget t.o.m. {month} {year}: {amounts(values['budget_ytd'])}")
    if "plan_ytd" in values:
        lines.append(f"Plan t.o.m. {month} {year}: {amounts(values['plan_ytd'])}")
    if "budget" in values:
        lines.append(f"{amounts.reference.capitalize()} helår {year}: {amounts(values['budget'])}")
    if "forecast" in values:
        if closed:
            lines.append(f"Utfall helår {year}: {amounts(values['forecast'])}")
        else:
            line = f"Prognos helår {year}: {amounts(values['forecast'])}"
            if "low" in values and "high" in values:
                line += f" (80 %-intervall {amounts.span(values['low'], values['high'])})"
            lines.append(line)
    if "previous_forecast" in values:
        # forecast_deterioration: its deviation is the previous forecast − this one.
        change = values["previous_forecast"] - values.get("forecast", values["previous_forecast"])
        lines.append(f"Förra månadens prognos: {amounts(values['previous_forecast'])}")
        verdict = " (sämre)" if change < 0 else " (bättre)" if change > 0 else ""
        lines.append(f"Förändring (förra − nya prognosen): {amounts(change, signed=True)}{verdict}")
    elif amounts.measure_unit is None and "actual_ytd" in values and "budget_ytd" in values:
        # A rule's own deviation may be the year to date's (staffing rules) or the year's: say
        # both, each with what it compares, so "−1,2" never stands beside a −7,1 forecast gap.
        reference = amounts.reference
        to_date = values["budget_ytd"] - values["actual_ytd"]
        lines.append(
            f"Avvikelse t.o.m. {month} {year} ({reference} − utfall): "
            f"{amounts(to_date, signed=True)}{_money_verdict(to_date)}"
        )
        if "budget" in values and "forecast" in values:
            year_gap = values["budget"] - values["forecast"]
            against = "utfall" if closed else "prognos"
            lines.append(
                f"Avvikelse helår {year} ({reference} − {against}): "
                f"{amounts(year_gap, signed=True)}{_money_verdict(year_gap)}"
            )
    elif "deviation" in values or ("actual_ytd" in values and "plan_ytd" in values):
        against = "utfall" if closed else "prognos"
        if "forecast" not in values and "actual_ytd" in values:
            against = "utfall"
        deviation = values.get("deviation")
        if deviation is None:  # volumes: plan − utfall, the same direction as money
            deviation = values["plan_ytd"] - values["actual_ytd"]
        if amounts.measure_unit is not None:
            verdict = " (över plan)" if deviation < 0 else " (under plan)" if deviation > 0 else ""
        else:
            verdict = _money_verdict(deviation)
        reference = amounts.reference
        lines.append(
            f"Avvikelse ({reference} − {against}): {amounts(deviation, signed=True)}{verdict}"
        )
    if "share_pct" in values:
        lines.append(f"Sjukfrånvaro: {format_pct(values['share_pct'])} av schemalagd tid")
    effects = [
        f"{label} {amounts(values[key], signed=True)}"
        for key, label in (("volume_effect", "volym"), ("price_effect", "pris och produktivitet"))
        if key in values
    ]
    if effects:
        lines.append(f"Förklaring av avvikelsen: {', '.join(effects)}")
    if not closed and "forecast" in values:
        method = method_sv(alert.method)
        coverage = values.get("interval_coverage")
        parts = []
        if method is not None:
            parts.append(f"Prognosmetod: {method}.")
        if coverage is not None:
            share = coverage * 100 if coverage <= 1 else coverage
            parts.append(
                f"Intervallet har träffat i {format_pct(share).replace(',0 %', ' %')} av "
                "fallen i efterhand."
            )
        if parts:
            lines.append(" ".join(parts))
    return lines


def action_lines(
    alert: AlertEvent, recipient: Recipient, domain: DomainConfig, context: MailContext
) -> list[str]:
    """The requested action, the responsible controller and the report link."""
    lines: list[str] = []
    routing = context.routing
    controller = routing.controller_for(alert.org_unit, domain.org) if routing else None
    if routing is not None and (alert.status != "resolved" or alert.resolution == "year_closed"):
        spec = routing.actions.for_alert(
            alert.severity, alert.level, alert.year_closed or alert.resolution == "year_closed"
        )
        if spec is not None:
            text = action_text(
                spec, alert.org_unit_name, controller, alert.period, alert.emitted_at
            )
            lines.append(f"Begärd åtgärd: {text}")
    if controller is not None:
        who = controller.name
        if controller.email is not None:
            who += f", {controller.email}"
        if controller.id == recipient.id:
            who += " (du)"
        lines.append(f"Ansvarig controller: {who}")
    url = context.report_url(alert.period, alert.org_unit)
    if url is not None:
        lines.append(f"Rapport: {url}")
    return lines


_SHARED_PREFIXES = ("Begärd åtgärd: ", "Ansvarig controller: ", "Rapport: ")


def item_lines(
    alert: AlertEvent,
    recipient: Recipient,
    domain: DomainConfig,
    context: MailContext,
    shared: frozenset[str] = frozenset(),
    shown: set[tuple[str, str | None, str]] | None = None,
) -> list[str]:
    """One alert as the body shows it: headline, status, sentence, figures, change, action;
    without the ``shared`` lines, which the digest says once for all its items, and without
    figures ``shown`` for the same unit and category by an earlier item of the digest (two
    rules on one total must not list the total twice); ``shown`` is updated."""
    where = f"{alert.org_unit_name} ({alert.org_unit})"
    if namnd := namnd_label(alert.org_unit, domain):
        where += f", {namnd}"
    category = category_sv(alert.category, domain)
    status = (
        f"{SEVERITY_SV[alert.severity]} · {status_sv(alert)} · {where} · {period_sv(alert.period)}"
    )
    if category is not None:
        status += f" · {category}"
    lines = [headline(alert, domain), status, alert.message]
    for line in figure_lines(alert, domain):
        key = (alert.org_unit, alert.category, line)
        if shown is not None and key in shown:
            continue
        if shown is not None:
            shown.add(key)
        lines.append(line)
    if alert.change:
        lines.append(f"Sedan förra meddelandet: {alert.change}")
    lines += [
        line for line in action_lines(alert, recipient, domain, context) if line not in shared
    ]
    return lines


def shared_lines(
    alerts: Sequence[AlertEvent], recipient: Recipient, domain: DomainConfig, context: MailContext
) -> list[str]:
    """The controller and report lines that every item of a digest would repeat."""
    if len(alerts) < 2:
        return []
    per_item = [
        {
            line
            for line in action_lines(a, recipient, domain, context)
            if line.startswith(_SHARED_PREFIXES)
        }
        for a in alerts
    ]
    common = set.intersection(*per_item)
    return sorted(
        common, key=lambda line: [line.startswith(p) for p in _SHARED_PREFIXES].index(True)
    )


#: Digests with at least this many items start with a list of their headlines.
OVERVIEW_FROM = 4


def _intro(alerts: Sequence[AlertEvent], domain: DomainConfig) -> str:
    unit = common_unit_name(alerts, domain)
    periods = sorted({a.period for a in alerts})
    when = f" efter stängningen av {period_sv(periods[-1])}" if len(periods) == 1 else ""
    count = "ett budgetlarm" if len(alerts) == 1 else f"{len(alerts)} budgetlarm"
    return f"budgetvakt har {count} för {unit}{when}:"


def email_body(
    recipient: Recipient,
    alerts: Sequence[AlertEvent],
    domain: DomainConfig,
    context: MailContext | None = None,
) -> str:
    context = context or MailContext()
    items = ordered(alerts)
    parts = [f"Hej {recipient.name},", "", _intro(items, domain), ""]
    if len(items) >= OVERVIEW_FROM:
        parts += [f"{n}. {headline(a, domain)}" for n, a in enumerate(items, start=1)]
        parts += ["", "I detalj:", ""]
    shared = shared_lines(items, recipient, domain, context)
    shown: set[tuple[str, str | None, str]] = set()
    groups = {_GROUP_ORDER[a.status] for a in items}
    group: int | None = None
    for number, alert in enumerate(items, start=1):
        if len(groups) > 1 and _GROUP_ORDER[alert.status] != group:
            group = _GROUP_ORDER[alert.status]
            parts += [_GROUP_HEADING[group], ""]
        first, *rest = item_lines(alert, recipient, domain, context, frozenset(shared), shown)
        if len(items) == 1:
            parts.append(first)
            parts.extend(rest)
        else:
            parts.append(f"{number}. {first}")
            parts.extend(f"   {line}" for line in rest)
        parts.append("")
    if shared:
        parts += [
            *(
                line.replace(
                    "Ansvarig controller: ", "Ansvarig controller för alla larm ovan: "
                ).replace("Begärd åtgärd: ", "Begärd åtgärd för alla larm ovan: ")
                for line in shared
            ),
            "",
        ]
    if any("deviation" in a.values or "plan_ytd" in a.values for a in items):
        parts.append(SIGN_LEGEND)
    parts += [f"Du får det här meddelandet som {recipient.role}.", FOOTER_PRIVACY]
    return "\n".join(parts) + "\n"


def _sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "budgetvakt.invalid"


def build_email(
    recipient: Recipient,
    alerts: Sequence[AlertEvent],
    domain: DomainConfig,
    sender: str,
    context: MailContext | None = None,
    now: datetime | None = None,
    *,
    carried: Sequence[AlertEvent] | None = None,
) -> EmailMessage:
    """One digest e-mail of ``alerts``; the header names the event ids of ``carried`` (default:
    the alerts; with the earlier events the shown ones supersede) for tracing, not for display."""
    assert recipient.email is not None
    message = EmailMessage()
    message["Subject"] = subject(alerts, domain)
    message["From"] = sender
    local, _, host = recipient.email.partition("@")
    message["To"] = Address(display_name=recipient.name, username=local, domain=host)
    message["Date"] = format_datetime(now) if now is not None else formatdate(localtime=False)
    message["Message-ID"] = make_msgid("budgetvakt", domain=_sender_domain(sender))
    message[EVENT_IDS_HEADER] = " ".join(a.event_id for a in (carried or alerts))
    message.set_content(email_body(recipient, alerts, domain, context))
    # Headers are written unfolded (up to RFC 5322's 998): the standard policy folds a long
    # subject with a space left before the fold, which a reader sees as a double space
    # ("210,3 mnkr  för 2023"). The body is encoded already, by the standard policy.
    message.policy = message.policy.clone(max_line_length=998)
    return message


def json_payload(
    recipient: Recipient,
    alert: AlertEvent,
    domain: DomainConfig,
    context: MailContext | None = None,
) -> dict[str, Any]:
    """The generic webhook body: the alert's own fields plus Swedish labels, the action, the
    controller, the report link and the recipient."""
    context = context or MailContext()
    routing = context.routing
    controller = routing.controller_for(alert.org_unit, domain.org) if routing else None
    action = next(
        (
            line.removeprefix("Begärd åtgärd: ")
            for line in action_lines(alert, recipient, domain, context)
            if line.startswith("Begärd åtgärd: ")
        ),
        None,
    )
    return {
        **alert.model_dump(mode="json"),
        "severity_sv": SEVERITY_SV[alert.severity],
        "status_sv": status_sv(alert),
        "category_sv": category_sv(alert.category, domain),
        "title_sv": headline(alert, domain),
        "action_sv": action,
        "controller": (
            {"id": controller.id, "name": controller.name, "email": controller.email}
            if controller is not None
            else None
        ),
        "report_url": context.report_url(alert.period, alert.org_unit),
        "recipient": {"id": recipient.id, "name": recipient.name, "role": recipient.role},
        "source": "budgetvakt",
    }


def teams_card(
    recipient: Recipient,
    alerts: Sequence[AlertEvent],
    domain: DomainConfig,
    context: MailContext | None = None,
) -> dict[str, Any]:
    """A Teams message with one Adaptive Card (the format Teams workflow webhooks accept)."""
    context = context or MailContext()
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
        for line in figure_lines(alert, domain):
            label, sep, value = line.partition(": ")
            if sep:
                facts.append({"title": label, "value": value})
        items: list[dict[str, Any]] = [
            {
                "type": "TextBlock",
                "weight": "Bolder",
                "wrap": True,
                "color": _CARD_COLOUR[alert.severity],
                "text": f"{SEVERITY_SV[alert.severity]} · {status_sv(alert)}",
            },
            {"type": "TextBlock", "wrap": True, "text": headline(alert, domain)},
            {"type": "TextBlock", "wrap": True, "text": alert.message},
            {"type": "FactSet", "facts": facts},
        ]
        extra = ([f"Sedan förra meddelandet: {alert.change}"] if alert.change else []) + (
            action_lines(alert, recipient, domain, context)
        )
        items.extend({"type": "TextBlock", "wrap": True, "text": line} for line in extra)
        body.append({"type": "Container", "separator": True, "items": items})
    body.append(
        {
            "type": "TextBlock",
            "isSubtle": True,
            "size": "Small",
            "wrap": True,
            "text": f"Till {recipient.name}, {recipient.role}. Skickat av budgetvakt "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC. {SIGN_LEGEND} "
            "Innehåller inga uppgifter om enskilda.",
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
