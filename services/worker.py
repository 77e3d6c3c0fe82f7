"""``budgetvakt worker``: the stream worker (Faust) in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer

from services.errors import UserError


def snapshot_stores(
    settings: Any, domain: Any
) -> tuple[Callable[[Any, str], Any], Callable[[Sequence[Any]], None]]:
    """The worker's two database writers: a snapshot on period close, late events.

    The embedded default (a SQLite file in the data dir) is migrated here, so the demo and a
    laptop need no extra step; a configured database must have been migrated with
    ``budgetvakt db upgrade`` (checked now, so a wrong URL fails at start, not at month end).
    """
    from services.db.checkpoints import load_checkpoints
    from services.db.engine import make_engine
    from services.db.migrate import ensure_at_head, upgrade
    from services.db.store import record_late_event, write_snapshot

    url = settings.database_url_or_default()
    checkpoints = load_checkpoints(settings.config_dir)
    if not settings.database_url.strip():
        upgrade(url)
    engine = make_engine(url)
    ensure_at_head(engine)

    def store_snapshot(forecast: Any, period: str) -> Any:
        return write_snapshot(
            engine,
            forecast,
            period=period,
            trigger="period_close",
            checkpoint=checkpoints.get(int(period[5:7])),
            org=domain.org,
            model=settings.forecast_model,
        )

    def store_late_events(events: Sequence[Any]) -> None:
        for event in events:
            record_late_event(
                engine,
                event_id=str(event.event_id),
                org_unit=str(event.org_unit),
                period=str(event.period),
                type=str(event.type),
                amount=getattr(event, "amount_sek", getattr(event, "value", None)),
            )

    return store_snapshot, store_late_events


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        faust_log_level: str = typer.Option(
            "warning", help="Log level of Faust's own (non-JSON) log lines on stderr."
        ),
    ) -> None:
        """Consume the input topics, validate, de-duplicate, aggregate; serve /metrics."""
        import structlog

        from services.config_files import load_domain_config
        from services.settings import Settings

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

        from services.rules_config import load_rules
        from streams.app import create_app

        rules = load_rules(settings.config_dir, domain)  # ConfigError → exit 2, no traceback
        snapshot_store, late_event_store = snapshot_stores(settings, domain)
        worker_app = create_app(settings, domain, rules, snapshot_store, late_event_store)
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
