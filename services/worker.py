"""``budgetvakt worker``: the stream worker (Faust) in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import sys

import typer

from services.errors import UserError


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

        from streams.app import create_app

        worker_app = create_app(settings, domain)
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
