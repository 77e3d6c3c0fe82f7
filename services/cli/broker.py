"""``budgetvakt broker``: the embedded Kafka-compatible broker in the foreground.

The process itself is :class:`services.processes.broker.EmbeddedBroker`.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from core.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command()
    def broker(
        port: int = typer.Option(
            0, min=0, max=65535, help="Port on 127.0.0.1; 0 picks a free port."
        ),
        log_file: Path | None = typer.Option(None, help="Write the broker's own log here."),
    ) -> None:
        """Run the embedded Kafka-compatible broker (Tansu) until SIGINT/SIGTERM."""
        from services.processes.broker import EmbeddedBroker

        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        with EmbeddedBroker(port=port or None, log_path=log_file) as embedded:
            typer.echo(f"bootstrap servers: {embedded.bootstrap_servers}", err=False)
            typer.echo(f"export BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS={embedded.bootstrap_servers}")
            while not stop.is_set() and embedded.is_running():
                stop.wait(0.5)
            if not stop.is_set():
                raise UserError("the embedded broker exited unexpectedly", exit_code=1)
            typer.echo("stopping broker")
