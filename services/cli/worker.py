"""``budgetvakt worker``: the stream worker (Faust) in the foreground until SIGINT/SIGTERM.

The worker app is :mod:`streams.app`; its snapshot store is :mod:`services.worker`.
"""

from __future__ import annotations

import sys

import typer


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
        settings.require_bootstrap_servers()
        domain = load_domain_config(settings.config_dir)  # ConfigError → exit 2, no traceback
        settings.create_data_dir()

        import faust

        from services.config.rules import load_rules
        from services.worker import SnapshotStore
        from streams.app import create_app
        from streams.input_topics import ensure_input_topics
        from streams.ownership import Ownership, ensure_scheme

        rules = load_rules(settings.config_dir, domain)  # ConfigError → exit 2, no traceback
        # Never two partition-key schemes in one consumer group (UserError → exit 2).
        ownership = Ownership(domain.org, settings.partition_key)
        ensure_scheme(
            settings.kafka_bootstrap_servers, settings.app_id, ownership, settings.topic_partitions
        )
        # Before Faust subscribes: a topic the broker creates on first use gets its default
        # count, and Faust refuses a table whose changelog has another (UserError → exit 2).
        ensure_input_topics(
            settings.kafka_bootstrap_servers,
            settings.topics().input_types(),
            settings.topic_partitions,
        )
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
            partition_key=settings.partition_key,
        )
        runner = faust.Worker(worker_app.app, loglevel=faust_log_level.upper(), quiet=True)
        if not sys.stdout.isatty():
            runner.spinner = None  # its terminal escape codes would litter the JSON log
        runner.execute_from_commandline()
