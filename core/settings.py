"""Process settings, read from environment variables with the prefix ``BUDGETVAKT_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_DIR = REPO_ROOT / "config"


#: Models a user can ask for. ``ets`` and ``prophet`` fit library models per series.
MODELS: tuple[str, ...] = (
    "auto",
    "runrate",
    "lastyear",
    "seasonal",
    "budget",
    "ses",
    "theta",
    "holt_winters",
    "ets",
    "prophet",
)


class Topics(BaseSettings):
    """Topic names; each can be overridden, e.g. ``BUDGETVAKT_TOPIC_COST``."""

    model_config = SettingsConfigDict(env_prefix="BUDGETVAKT_TOPIC_", extra="ignore")

    cost: str = "budgetvakt.cost.v1"
    volume: str = "budgetvakt.volume.v1"
    budget: str = "budgetvakt.budget.v1"
    period_close: str = "budgetvakt.period-close.v1"
    forecast: str = "budgetvakt.forecast.v1"
    alert: str = "budgetvakt.alert.v1"
    dead_letter: str = "budgetvakt.dead-letter.v1"

    def input_types(self) -> dict[str, str]:
        """Input topic name → the event type it carries (the worker reads these four)."""
        return {
            self.cost: "cost",
            self.volume: "volume",
            self.budget: "budget",
            self.period_close: "period_close",
        }


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUDGETVAKT_", extra="ignore")

    # Empty means: the embedded default (a Tansu broker started by the command that needs one).
    kafka_bootstrap_servers: str = ""
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_host: str = "127.0.0.1"
    # budgetvakt web (the monthly follow-up): its port and host, the session lifetime, and
    # whether the session cookie is HTTPS-only (set it behind a TLS-terminating proxy).
    ui_port: int = Field(default=6070, ge=0, le=65535)
    ui_host: str = "127.0.0.1"
    ui_session_minutes: int = Field(default=480, ge=1)
    ui_secure_cookie: bool = False
    data_dir: Path = Path("data")
    config_dir: Path = DEFAULT_CONFIG_DIR
    topic_partitions: int = Field(default=4, ge=1)
    # aiokafka's max produce batch in bytes. Tansu answers "latest offset" wrongly after a
    # multi-record batch (brief §5); the worker ends every batch of changelog writes with a
    # one-record batch instead (changelog_end_marker), so batching stays on. Setting 1 here (one
    # message per batch) is the other, much slower, workaround.
    producer_max_batch_size: int = Field(default=262144, ge=1)
    changelog_end_marker: bool = True
    # Attempts at a batch that fails for broker or store reasons before the worker exits without
    # committing it (the next start replays it; de-duplication keeps the totals exact).
    worker_batch_attempts: int = Field(default=5, ge=1)
    broker_session_timeout_s: float = Field(default=8.0, gt=0)
    # Stream worker: the Faust app id is also the consumer group and the table topics' prefix.
    app_id: str = "budgetvakt"
    table_store: str = Field(default="rocksdb", pattern="^(rocksdb|memory)$")
    worker_batch_size: int = Field(default=2000, ge=1)
    worker_batch_within_s: float = Field(default=0.2, gt=0)
    # Snapshots and reports: PostgreSQL in production (postgresql+psycopg2://…); empty means the
    # embedded default, a SQLite file in the data dir (see database_url_or_default). A secret:
    # the URL may hold the password, so repr/str mask it; print it with
    # services.snapshots.engine.describe_url (password hidden).
    database_url: SecretStr = SecretStr("")
    # Live forecasts in the worker: at most one organisation forecast per interval (debounce).
    forecast_interval_s: float = Field(default=0.5, gt=0)
    forecast_model: str = "auto"  # one of MODELS, checked below
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
    # What a dead-letter record keeps of a rejected message (streams/dead_letter.py): its hash
    # and length only (default: the topic is readable by more people than the ERP), also its
    # first 1 KiB, or all of it up to 256 KiB. Never bytes that hold an identity number.
    dead_letter_payload: Literal["hash", "truncated", "full"] = "hash"
    # The first period the deviation rules look at (YYYY-MM). A first load of earlier years
    # from the ERP then builds history, forecasts and snapshots without mailing anyone about
    # 2021. Empty: every closed period is evaluated.
    alerts_from: str = Field(default="", pattern=r"^(|\d{4}-(0[1-9]|1[0-2]))$")
    log_level: str = "INFO"
    # Which broker the worker runs on: `tansu` keeps the embedded broker's workarounds (changelog
    # end marker, a flush per alert, the replay's drain polls), `kafka` (Apache Kafka) drops
    # them, `auto` asks the broker once at start and takes `tansu` unless it is recognisably
    # Apache Kafka (streams/broker_kind.py).
    broker_kind: Literal["auto", "tansu", "kafka"] = "auto"
    # What an event's home partition is keyed by (streams/ownership.py): the nämnd that owns its
    # cost centre (one worker holds whole nämnder), or the cost centre itself (the older scheme,
    # until `budgetvakt migrate-keys` has moved the state). Recorded per deployment and checked.
    partition_key: Literal["namnd", "cost_centre"] = "namnd"
    # How long the broker may hold the worker's fetch when there is nothing new (aiokafka's
    # fetch_max_wait_ms, which Faust fixes at 1,5 s). The embedded broker holds a fetch that long
    # even when a record arrives meanwhile: a period close waited 0,1–0,45 s in it (measured).
    worker_fetch_max_wait_s: float = Field(default=0.05, gt=0, le=10)
    # While idle, compute in the forecast pool what each nämnd's next close will learn from
    # history (streams/forecasting.py, "warm_while_idle"); false for a comparison without.
    forecast_warm_while_idle: bool = True

    @field_validator("forecast_model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; choose one of {', '.join(MODELS)}")
        return value

    @property
    def database_configured(self) -> bool:
        """Whether BUDGETVAKT_DATABASE_URL is set (else the embedded SQLite file is used)."""
        return bool(self.database_url.get_secret_value().strip())

    def database_url_or_default(self) -> str:
        """The URL to connect with, password included: never print it (``describe_url``)."""
        if self.database_configured:
            return self.database_url.get_secret_value().strip()
        return f"sqlite:///{(self.data_dir / 'budgetvakt.sqlite').resolve()}"

    def topics(self) -> Topics:
        return Topics()

    def create_data_dir(self) -> Path:
        """The data directory, created if missing; a UserError naming it when that fails."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create BUDGETVAKT_DATA_DIR {self.data_dir}: {err}") from None
        return self.data_dir

    def require_bootstrap_servers(self) -> str:
        """The Kafka bootstrap servers; a UserError telling how to get a broker when unset."""
        servers = self.kafka_bootstrap_servers.strip()
        if not servers:
            raise UserError(
                "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS is not set. Start a local broker with "
                "`budgetvakt broker` and set the variable to the address it prints "
                "(e.g. BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092)."
            )
        return servers
