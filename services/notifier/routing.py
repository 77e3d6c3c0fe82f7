"""``config/routing.yaml``: who is told about which alert, and how.

Recipients are defined once under ``recipients`` (id → name, role, minimum severity, channels)
and attached to org units (ids of ``config/org.yaml``) under ``units``. An alert about org unit
``u`` goes to every recipient attached to ``u`` or to one of its ancestors
(``domain.org.path(u)``) whose ``min_severity`` the alert reaches and, when the recipient lists
``alert_levels``, whose list holds the alert's level. So an enhet's alert reaches the enhetschef
and the controller of its avdelning, and a förvaltningschef attached to the förvaltning with
``min_severity: critical`` hears only of critical ones.

Several nämnder. ``units`` takes the nodes of every nämnd (and ``omappad``), so each nämnd's
recipients are attached to its own nodes. A recipient above the nämnder, such as a kommun's
ekonomichef, is attached under the optional ``kommuner`` section: kommun name (as in org.yaml's
``municipality`` or ``kommuner[].name``) → recipient ids, or ``"*"`` for every nämnd of the
deployment (and ``omappad``); with ``min_severity: critical`` that person hears of every nämnd's
critical alerts and nothing else.

Two optional sections say what a mail asks for: ``controllers`` (org unit id → the recipient
id of the unit's controller, inherited by every unit below that has none of its own) and
``actions`` (the requested action per severity, per org level if wanted, and after the year's
close; :class:`ActionsSpec` holds the defaults).

The file is checked at start; a mistake is a ``ConfigError`` naming the file, the key and the
problem, and an unknown org unit id is one.

Webhook URLs are secrets (a Teams webhook carries its token in the path), so the file never holds
one: a webhook names an environment variable (``url_env``) or a file (``url_file``, e.g. a Docker
or Kubernetes secret under ``/run/secrets/``) that holds the URL, read at start. Errors name the
variable or the file, never the URL.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from contract.output_records import SEVERITIES, AlertEvent, Severity
from core.errors import ConfigError
from core.hierarchy import OrgTree
from services.config.domain import _parse

EMAIL_PATTERN = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")
RECIPIENT_ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
ALL_KOMMUNER = "*"  # under ``kommuner``: every nämnd of the deployment

Channel = Literal["email", "webhook"]
WebhookFormat = Literal["json", "teams"]
OrgLevel = Literal["namnd", "forvaltning", "avdelning", "enhet"]
RecipientId = Annotated[str, StringConstraints(pattern=RECIPIENT_ID_PATTERN)]
EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
_HTTP_URL = TypeAdapter(AnyHttpUrl)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookSpec(_Strict):
    """Where the webhook's URL is kept: an environment variable or a file, never this file."""

    url_env: EnvVarName | None = None
    url_file: Path | None = None
    format: WebhookFormat = "json"

    @model_validator(mode="before")
    @classmethod
    def _no_url_in_the_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            raise ValueError(
                "a webhook URL is a secret (Teams keeps its token in the path) and is not written "
                "here: give url_env (an environment variable holding the URL) or url_file "
                "(a file holding it, e.g. /run/secrets/…)"
            )
        return data

    @model_validator(mode="after")
    def _one_source(self) -> WebhookSpec:
        if (self.url_env is None) == (self.url_file is None):
            raise ValueError("give exactly one of url_env and url_file")
        return self


class ChannelsSpec(_Strict):
    email: str | None = None
    webhook: WebhookSpec | None = None

    @field_validator("email")
    @classmethod
    def _looks_like_an_address(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL_PATTERN.match(value):
            raise ValueError(f"{value!r} is not an e-mail address (name@domain.tld)")
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> ChannelsSpec:
        if self.email is None and self.webhook is None:
            raise ValueError("give at least one channel: email and/or webhook")
        return self


class RecipientSpec(_Strict):
    name: str = Field(min_length=1)
    role: str = Field(min_length=1)
    min_severity: Severity = "warning"
    # Org levels of the alerts this recipient wants; absent: every level.
    alert_levels: list[OrgLevel] | None = Field(default=None, min_length=1)
    channels: ChannelsSpec


#: Placeholders an action text may use (``services.notifier.actions`` fills them in).
ACTION_PLACEHOLDERS = frozenset({"unit", "controller", "deadline", "year"})


class DeadlineSpec(_Strict):
    """When a requested action is due, counted from the day the alert was raised: a number of
    Swedish working days (weekends and public holidays skipped), or a day of the next month."""

    working_days: int | None = Field(default=None, ge=1, le=60)
    day_of_next_month: int | None = Field(default=None, ge=1, le=28)

    @model_validator(mode="after")
    def _exactly_one(self) -> DeadlineSpec:
        if (self.working_days is None) == (self.day_of_next_month is None):
            raise ValueError("give exactly one of working_days and day_of_next_month")
        return self


class ActionSpec(_Strict):
    """A requested action: Swedish text with optional ``{unit}``, ``{controller}``, ``{year}``
    and ``{deadline}`` (the last one only together with ``deadline``)."""

    text: str = Field(min_length=1)
    deadline: DeadlineSpec | None = None

    @model_validator(mode="after")
    def _known_placeholders(self) -> ActionSpec:
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(self.text) if name}
        except ValueError as err:
            raise ValueError(f"text: {err} (write {{{{ and }}}} for a literal brace)") from None
        unknown = used - ACTION_PLACEHOLDERS
        if unknown:
            raise ValueError(
                f"text: unknown placeholder {{{sorted(unknown)[0]}}}; known: "
                + ", ".join(f"{{{name}}}" for name in sorted(ACTION_PLACEHOLDERS))
            )
        if "deadline" in used and self.deadline is None:
            raise ValueError(
                "text uses {deadline}: give deadline (working_days or day_of_next_month)"
            )
        if self.deadline is not None and "deadline" not in used:
            raise ValueError("deadline given but the text does not say it: add {deadline}")
        return self


DEFAULT_ACTIONS: dict[Severity, ActionSpec | None] = {
    "critical": ActionSpec(
        text="Lämna en åtgärdsplan för {unit} till {controller} senast {deadline}.",
        deadline=DeadlineSpec(working_days=10),
    ),
    "warning": ActionSpec(text="Kommentera avvikelsen för {unit} i månadsuppföljningen."),
    "info": ActionSpec(text="Till kännedom: ingen åtgärd begärs."),
}
DEFAULT_YEAR_CLOSED_ACTION = ActionSpec(
    text="Förklara avvikelsen för {unit} i verksamhetsberättelsen för {year}."
)


class ActionsSpec(_Strict):
    """The requested action per severity; ``by_level`` overrides it for alerts about units of
    one org level (a nämnd's deficit asks for more than an enhet's); ``year_closed`` replaces
    them once the year's December close is in. ``null`` asks for nothing."""

    critical: ActionSpec | None = DEFAULT_ACTIONS["critical"]
    warning: ActionSpec | None = DEFAULT_ACTIONS["warning"]
    info: ActionSpec | None = DEFAULT_ACTIONS["info"]
    year_closed: ActionSpec | None = DEFAULT_YEAR_CLOSED_ACTION
    by_level: dict[OrgLevel, dict[Severity, ActionSpec | None]] = Field(default_factory=dict)

    def for_alert(self, severity: Severity, level: str, year_closed: bool) -> ActionSpec | None:
        if year_closed:
            return self.year_closed
        own = self.by_level.get(level)  # type: ignore[call-overload]
        if own is not None and severity in own:
            return own[severity]
        spec: ActionSpec | None = getattr(self, severity)
        return spec


class RoutingFile(_Strict):
    recipients: dict[RecipientId, RecipientSpec]
    units: dict[str, list[str]]
    # Kommun name (or "*": every nämnd) → recipient ids told of every nämnd of that kommun.
    kommuner: dict[str, list[str]] = Field(default_factory=dict)
    # Org unit id → the recipient id of its controller (inherited by the units below).
    controllers: dict[str, str] = Field(default_factory=dict)
    actions: ActionsSpec = Field(default_factory=ActionsSpec)

    @field_validator("units", "controllers", mode="before")
    @classmethod
    def _quoted_unit_ids(cls, value: Any) -> Any:
        # YAML reads 1110 as a number (and 0110 as octal 72): insist on quotes.
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise ValueError(f'org unit id {key!r} must be quoted, e.g. "{key}"')
        return value


@dataclass(frozen=True)
class Recipient:
    id: str
    name: str
    role: str
    min_severity: Severity
    alert_levels: frozenset[str] | None
    email: str | None
    webhook_url: str | None
    webhook_format: WebhookFormat
    units: tuple[str, ...]  # the org units it is attached to

    @property
    def channels(self) -> tuple[Channel, ...]:
        found: list[Channel] = []
        if self.email is not None:
            found.append("email")
        if self.webhook_url is not None:
            found.append("webhook")
        return tuple(found)

    def wants(self, alert: AlertEvent) -> bool:
        if SEVERITIES.index(alert.severity) < SEVERITIES.index(self.min_severity):
            return False
        return self.alert_levels is None or alert.level in self.alert_levels


@dataclass(frozen=True)
class Routing:
    source: Path
    recipients: dict[str, Recipient]
    by_unit: dict[str, tuple[str, ...]]  # org unit id → recipient ids attached to it
    controllers: dict[str, str] = field(default_factory=dict)  # org unit id → recipient id
    actions: ActionsSpec = field(default_factory=ActionsSpec)
    # kommun name, or "*" (every nämnd and omappad) → recipient ids
    by_kommun: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def controller_for(self, org_unit: str, org: OrgTree) -> Recipient | None:
        """The controller named for ``org_unit`` or, failing that, for the nearest unit above it."""
        for unit_id in org.path(org_unit):
            if unit_id in self.controllers:
                return self.recipients[self.controllers[unit_id]]
        return None

    def recipients_for(self, alert: AlertEvent, org: OrgTree) -> list[Recipient]:
        """The recipients of ``alert``: along the unit's path to its nämnd, then those of the
        nämnd's kommun and of every kommun (``"*"``), each at most once."""
        chosen: dict[str, Recipient] = {}
        attached = [self.by_unit.get(unit_id, ()) for unit_id in org.path(alert.org_unit)]
        kommun = org.municipality_of(alert.org_unit)
        if kommun:
            attached.append(self.by_kommun.get(kommun, ()))
        attached.append(self.by_kommun.get(ALL_KOMMUNER, ()))
        for recipient_ids in attached:
            for recipient_id in recipient_ids:
                recipient = self.recipients[recipient_id]
                if recipient_id not in chosen and recipient.wants(alert):
                    chosen[recipient_id] = recipient
        return list(chosen.values())


def _webhook_url(spec: WebhookSpec, environ: Mapping[str, str], file: str, key: str) -> str:
    """The URL from the variable or file ``spec`` names; errors never show the URL."""
    if spec.url_env is not None:
        raw = environ.get(spec.url_env, "")
        if not raw.strip():
            raise ConfigError(
                file, f"{key}.url_env", f"the environment variable {spec.url_env} is not set"
            )
        source = f"the environment variable {spec.url_env}"
    else:
        assert spec.url_file is not None
        try:
            raw = spec.url_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            problem = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            raise ConfigError(
                file, f"{key}.url_file", f"cannot read {spec.url_file}: {problem}"
            ) from None
        source = f"the file {spec.url_file}"
    url = raw.strip()
    try:
        _HTTP_URL.validate_python(url)
    except ValidationError as err:
        problem = err.errors()[0]["msg"]  # the message only: the input is the secret
        raise ConfigError(file, key, f"{source} holds no http(s) URL: {problem}") from None
    return url


def load_routing(path: Path, org: OrgTree, environ: Mapping[str, str] | None = None) -> Routing:
    """Read and check the routing file against the org tree; ``ConfigError`` on any mistake.

    Webhook URLs are read from ``environ`` (default: the process environment) or files."""
    environ = os.environ if environ is None else environ
    spec = _parse(RoutingFile, path)
    file = str(path)
    known_units = sorted(org.nodes)
    attached: dict[str, list[str]] = {}
    by_unit: dict[str, tuple[str, ...]] = {}
    for unit_id, recipient_ids in spec.units.items():
        if unit_id not in org.nodes:
            raise ConfigError(
                file,
                f"units.{unit_id}",
                f"unknown org unit {unit_id!r} (not in org.yaml); known: {known_units}",
            )
        seen: set[str] = set()
        for index, recipient_id in enumerate(recipient_ids):
            key = f"units.{unit_id}.{index}"
            if recipient_id not in spec.recipients:
                raise ConfigError(
                    file,
                    key,
                    f"unknown recipient {recipient_id!r}; defined under recipients: "
                    f"{sorted(spec.recipients)}",
                )
            if recipient_id in seen:
                raise ConfigError(file, key, f"recipient {recipient_id!r} is listed twice")
            seen.add(recipient_id)
            attached.setdefault(recipient_id, []).append(unit_id)
        by_unit[unit_id] = tuple(recipient_ids)
    kommuner = {k for k in org.municipality_of_namnd.values() if k}
    by_kommun: dict[str, tuple[str, ...]] = {}
    for kommun, recipient_ids in spec.kommuner.items():
        if kommun != ALL_KOMMUNER and kommun not in kommuner:
            raise ConfigError(
                file,
                f"kommuner.{kommun}",
                f"unknown kommun {kommun!r}; org.yaml names {sorted(kommuner) or 'none'} "
                f'("*" is every nämnd)',
            )
        for index, recipient_id in enumerate(recipient_ids):
            if recipient_id not in spec.recipients:
                raise ConfigError(
                    file,
                    f"kommuner.{kommun}.{index}",
                    f"unknown recipient {recipient_id!r}; defined under recipients: "
                    f"{sorted(spec.recipients)}",
                )
            attached.setdefault(recipient_id, []).append(kommun)
        if len(set(recipient_ids)) != len(recipient_ids):
            raise ConfigError(file, f"kommuner.{kommun}", "a recipient is listed twice")
        by_kommun[kommun] = tuple(recipient_ids)
    for unit_id, recipient_id in spec.controllers.items():
        if unit_id not in org.nodes:
            raise ConfigError(
                file,
                f"controllers.{unit_id}",
                f"unknown org unit {unit_id!r} (not in org.yaml); known: {known_units}",
            )
        if recipient_id not in spec.recipients:
            raise ConfigError(
                file,
                f"controllers.{unit_id}",
                f"unknown recipient {recipient_id!r}; defined under recipients: "
                f"{sorted(spec.recipients)}",
            )
    recipients: dict[str, Recipient] = {}
    for recipient_id, r in spec.recipients.items():
        if recipient_id not in attached:
            raise ConfigError(
                file,
                f"recipients.{recipient_id}",
                "not attached to any org unit under units or kommun under kommuner "
                "(would never be notified)",
            )
        webhook = r.channels.webhook
        webhook_url = (
            _webhook_url(webhook, environ, file, f"recipients.{recipient_id}.channels.webhook")
            if webhook is not None
            else None
        )
        recipients[recipient_id] = Recipient(
            id=recipient_id,
            name=r.name,
            role=r.role,
            min_severity=r.min_severity,
            alert_levels=frozenset(r.alert_levels) if r.alert_levels is not None else None,
            email=r.channels.email,
            webhook_url=webhook_url,
            webhook_format=webhook.format if webhook is not None else "json",
            units=tuple(attached[recipient_id]),
        )
    return Routing(path, recipients, by_unit, dict(spec.controllers), spec.actions, by_kommun)
