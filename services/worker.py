"""``budgetvakt worker``: the stream worker (Faust) in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer

from core.errors import UserError


class SnapshotStore:
    """The worker's database: a snapshot on period close, and late events.

    The embedded default (a SQLite file in the data dir) is migrated here, so the demo and a
    laptop need no extra step; a configured database must have been migrated with
    ``budgetvakt db upgrade`` (checked at start, so a wrong URL fails now, not at month end).
    """

    def __init__(self, settings: Any, domain: Any) -> None:
        from services.snapshots.checkpoints import load_checkpoints
        from services.snapshots.engine import make_engine
        from services.snapshots.migrate import ensure_at_head, upgrade

        url = settings.database_url_or_default()
        self.checkpoints = load_checkpoints(settings.config_dir)
        if not settings.database_url.strip():
            upgrade(url)
        self.engine = make_engine(url)
        ensure_at_head(self.engine)
        self.org = domain.org
        self.model = settings.forecast_model

    def write(self, forecast: Any, period: str) -> Any:
        from services.snapshots.store import write_snapshot

        return write_snapshot(
            self.engine,
            forecast,
            period=period,
            trigger="period_close",
            checkpoint=self.checkpoints.get(int(period[5:7])),
            org=self.org,
            model=self.model,
        )

    def periods(self) -> set[str]:
        from services.snapshots.store import snapshot_periods

        return snapshot_periods(self.engine)

    def record_late_events(self, events: Sequence[Any]) -> None:
        from services.snapshots.store import record_late_event

        for event in events:
            record_late_event(
                self.engine,
                event_id=str(event.event_id),
                org_unit=str(event.org_unit),
                period=str(event.period),
                type=str(event.type),
                amount=getattr(event, "amount_sek", getattr(event, "value", None)),
            )


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        faust_log_level: str = typer.Option(
            "warning", help="Log level of Faust's own (non-JSON) log lines on stderr."
        ),
    ) -> None:
        """Consume the input topics, validate, de-duplicate, aggregate; serve /metrics."""
        import structlog

        from core.settings import Settings
        from services.config.domain import load_domain_config

        settings = Settings()
        if not settings.kafka_bootstrap_servers.strip():
            raise UserError(
                "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS is not set. Start a local broker with "
                "`budgetvakt broker` and set the variable to the address it prints "
                "(e.g. BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092)."
            )
        domain = load_domain_config(settings.config_dir)  # ConfigError → exit 2, no traceback
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(
                f"cannot create BUDGETVAKT_DATA_DIR {settings.data_dir}: {err}"
            ) from None

        import faust

        from services.config.rules import load_rules
        from streams.app import create_app

        rules = load_rules(settings.config_dir, domain)  # ConfigError → exit 2, no traceback
        store = SnapshotStore(settings, domain)
        worker_app = create_app(settings, domain, rules, store)
        structlog.get_logger(__name__).info(
            "worker_starting",
            app_id=settings.app_id,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            web=f"http://{settings.web_host}:{settings.web_port}/metrics",
            data_dir=str(settings.data_dir),
            store=settings.table_store,
            partitions=settings.topic_partitions,
        )
        runner = faust.Worker(worker_app.app, loglevel=faust_log_level.upper(), quiet=True)
        if not sys.stdout.isatty():
            runner.spinner = None  # its terminal escape codes would litter the JSON log
        runner.execute_from_commandline()
