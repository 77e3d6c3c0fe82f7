"""``budgetvakt publish FILE``: validate a CSV or JSON Lines file of events and send it to Kafka.

The reading, validation and sending are in :mod:`services.batch.publish`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from core.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command()
    def publish(
        file: Annotated[Path, typer.Argument(help="CSV or JSON Lines (.jsonl) file of events")],
        topic: Annotated[
            str | None, typer.Option(help="Send every event here instead of its type's topic")
        ] = None,
        bootstrap_servers: Annotated[
            str | None,
            typer.Option(
                help="Kafka bootstrap servers (default: $BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS)"
            ),
        ] = None,
    ) -> None:
        """Validate a file of events and send the valid ones to Kafka (acks=all)."""
        from rich.console import Console
        from rich.progress import Progress

        from core.settings import Settings
        from services.batch.publish import read_events, send_events, topic_for_type
        from services.config.domain import load_domain_config
        from streams.ownership import Ownership

        settings = Settings()
        servers = bootstrap_servers or settings.kafka_bootstrap_servers
        if not servers:
            raise UserError(
                "no Kafka to send to: set BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS or pass "
                "--bootstrap-servers (start a local broker with `budgetvakt broker`)"
            )
        console = Console(stderr=True, soft_wrap=True)
        domain = load_domain_config(settings.config_dir)
        loaded = read_events(file, domain)
        for rejection in loaded.rejections:
            console.print(
                f"{file}:{rejection.line}: {rejection.reason}", highlight=False, markup=False
            )
        events = [event for _, event in loaded.events]
        topics = settings.topics()
        with Progress(console=console, transient=True, disable=len(events) < 1000) as progress:
            task = progress.add_task("sending", total=len(events))
            sent = send_events(
                servers,
                topic,
                events,
                topics,
                on_sent=lambda: progress.advance(task),
                ownership=Ownership(domain.org, settings.partition_key),
            )
        per_topic = Counter(topic or topic_for_type(str(e["type"]), topics) for e in events)
        for name, count in sorted(per_topic.items()):
            typer.echo(f"  {name}: {count}")
        typer.echo(f"{file}: {sent} sent, {len(loaded.rejections)} rejected")
        if loaded.rejections:
            raise typer.Exit(code=2)
