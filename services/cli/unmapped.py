"""``budgetvakt unmapped``: the cost centres that send events but are not in config/org.yaml.

The ids are never metric labels (docs/metrics.md); an operator reads them here, from the running
worker's ``/unmapped``, to add them to the org tree or to ask the producer.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def unmapped(
        worker: str = typer.Option(
            "",
            help="The worker's base URL; default: http://127.0.0.1:<BUDGETVAKT_WEB_PORT>.",
        ),
        timeout_s: float = typer.Option(5.0, min=0.1, help="Seconds to wait for the answer."),
    ) -> None:
        """List the cost centres with events that are not in the org tree (counted as omappad)."""
        from core.settings import Settings
        from services.processes.scrape import fetch_unmapped

        base_url = worker or f"http://127.0.0.1:{Settings().web_port}"
        answer = fetch_unmapped(base_url, timeout_s)
        for org_unit in answer["org_units"]:
            typer.echo(org_unit)
        typer.echo(
            f"{answer['count']} cost centre(s) not in the org tree "
            f"(partitions {answer['partitions']} of this worker)",
            err=True,
        )
