"""Settings of the notifier: ``BUDGETVAKT_NOTIFIER_*`` (process) and ``BUDGETVAKT_SMTP_*`` (mail).

The defaults suit a local mail catcher (``127.0.0.1:1025``, no TLS, no login) and the embedded
broker. The SMTP password is a ``SecretStr``: its ``repr`` and ``str`` are masked, so printing or
logging the settings object never shows it. It comes from the environment
(``BUDGETVAKT_SMTP_PASSWORD``) or from a file named by ``BUDGETVAKT_SMTP_PASSWORD_FILE`` (a Docker
or Kubernetes secret), never from a file of config/.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    AliasChoices,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import UserError
from core.settings import Settings

DEFAULT_DEAD_LETTER_TOPIC = "budgetvakt.notify-dead-letter.v1"
STORE_FILE_NAME = "notifier.sqlite"
ROUTING_FILE_NAME = "routing.yaml"
DEFAULT_REPORT_LINK = "{base}/rapporter/delarsrapport-{period}.html"


class NotifierSettings(BaseSettings):
    """``BUDGETVAKT_NOTIFIER_*``: where the notifier listens, how it groups and retries."""

    model_config = SettingsConfigDict(env_prefix="BUDGETVAKT_NOTIFIER_", extra="ignore")

    web_port: int = Field(default=6067, ge=0, le=65535)  # /metrics and /ready
    web_host: str = ""  # empty: BUDGETVAKT_WEB_HOST
    # Alerts for one recipient that arrive within this window go out as one e-mail. Small,
    # because the target is p99 ≤ 2 s from the alert event to the delivered mail.
    digest_window_s: float = Field(default=0.2, ge=0, le=60)
    # Attempts after the first failed one; then the notification goes to the dead-letter topic.
    retries: int = Field(default=3, ge=0, le=20)
    retry_backoff_s: float = Field(default=0.5, ge=0)  # first wait; doubles per attempt
    retry_backoff_max_s: float = Field(default=8.0, ge=0)
    routing_file: Path | None = None  # None: <BUDGETVAKT_CONFIG_DIR>/routing.yaml
    store_path: Path | None = None  # None: <BUDGETVAKT_DATA_DIR>/notifier.sqlite
    store_retention_days: int = Field(default=400, ge=1)  # sent-records older than this go
    dead_letter_topic: str = Field(default=DEFAULT_DEAD_LETTER_TOPIC, min_length=1)
    group_id: str = Field(default="budgetvakt-notifier", min_length=1)  # Kafka consumer group
    max_concurrent_sends: int = Field(default=8, ge=1)
    max_records_per_round: int = Field(default=500, ge=1)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    poll_timeout_s: float = Field(default=0.5, gt=0)  # how soon a stop request is noticed
    # How long the broker may hold a fetch that finds no new alert (aiokafka's fetch_max_wait_ms,
    # default 0,5 s there). Measured on the embedded broker: a close's alerts published as many
    # one-record batches came in two fetches, the second one held this long; 0,05 s keeps that
    # small for the 2 s aim, at about 20 fetch requests a second while idle.
    fetch_max_wait_s: float = Field(default=0.05, gt=0, le=10)
    # Where the reports are published (a web server's folder with rapporter/, or the follow-up
    # web UI); empty: mails carry no link. Not BUDGETVAKT_NOTIFIER_*: it names the reports.
    report_base_url: str = Field(
        default="", validation_alias=AliasChoices("BUDGETVAKT_REPORT_BASE_URL", "report_base_url")
    )
    # The link of an alert about {org_unit} as of {period}, below {base}.
    report_link: str = Field(
        default=DEFAULT_REPORT_LINK,
        validation_alias=AliasChoices("BUDGETVAKT_REPORT_LINK", "report_link"),
    )

    @field_validator("report_link")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            value.format(base="", period="2024-08", org_unit="AO")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"unknown placeholder or stray brace ({err}); use {{base}}, {{period}}, "
                "{org_unit}"
            ) from None
        return value

    def report_url(self, period: str, org_unit: str) -> str | None:
        """The report link of an alert, or None when no base URL is configured."""
        base = self.report_base_url.strip().rstrip("/")
        if not base:
            return None
        return self.report_link.format(base=base, period=period, org_unit=org_unit)

    def resolved_routing_file(self, settings: Settings) -> Path:
        return self.routing_file or settings.config_dir / ROUTING_FILE_NAME

    def resolved_store_path(self, settings: Settings) -> Path:
        return self.store_path or settings.data_dir / STORE_FILE_NAME

    def resolved_web_host(self, settings: Settings) -> str:
        return self.web_host or settings.web_host


class SmtpSettings(BaseSettings):
    """``BUDGETVAKT_SMTP_*``: the mail relay. Credentials come only from the environment."""

    model_config = SettingsConfigDict(env_prefix="BUDGETVAKT_SMTP_", extra="ignore")

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=1025, ge=1, le=65535)
    starttls: bool = False
    # Extra CA bundle to verify the relay's certificate (a private CA); else the system store.
    ca_file: FilePath | None = None  # must exist: checked at start, not at the first mail
    username: str = ""
    password: SecretStr = SecretStr("")
    # A file holding the password (e.g. /run/secrets/smtp_password); instead of password.
    password_file: Path | None = None
    sender: str = Field(default="budgetvakt <budgetvakt@storvik.example>", min_length=3)
    timeout_s: float = Field(default=10.0, gt=0)

    @property
    def uses_login(self) -> bool:
        return bool(self.username)

    @model_validator(mode="after")
    def _password_from_file(self) -> SmtpSettings:
        if self.password_file is None:
            return self
        if self.password.get_secret_value():
            raise ValueError("set BUDGETVAKT_SMTP_PASSWORD or …_PASSWORD_FILE, not both")
        try:
            text = self.password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            problem = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            raise ValueError(f"cannot read {self.password_file}: {problem}") from None
        # One trailing newline is how files end, not part of the password.
        self.password = SecretStr(text.removesuffix("\n").removesuffix("\r"))
        return self


def load_env_settings() -> tuple[NotifierSettings, SmtpSettings]:
    """Both settings classes from the environment; a bad value is a ``UserError`` naming it."""
    loaded: list[BaseSettings] = []
    for cls, prefix in (
        (NotifierSettings, "BUDGETVAKT_NOTIFIER_"),
        (SmtpSettings, "BUDGETVAKT_SMTP_"),
    ):
        try:
            loaded.append(cls())
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "PASSWORD_FILE"
            name = field.upper() if field.startswith("BUDGETVAKT_") else f"{prefix}{field.upper()}"
            # Only the variable's name and the problem: the value may be a password.
            raise UserError(f"{name}: {first['msg']}") from None
    notifier, smtp = loaded
    assert isinstance(notifier, NotifierSettings) and isinstance(smtp, SmtpSettings)
    return notifier, smtp
