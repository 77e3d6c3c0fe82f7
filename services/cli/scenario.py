"""``budgetvakt scenario``: a demo municipality's events written to files.

The scenario is made in :mod:`services.demo.scenario`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("scenario")
    def scenario_command(
        out: Annotated[Path, typer.Option("--out", help="Directory to write the event files to.")],
        seed: Annotated[
            int, typer.Option(help="Random seed; the same seed gives the same events.")
        ] = 2024,
        start_year: Annotated[
            int | None,
            typer.Option(min=2000, max=2100, help="First year (default: the last is 2024)."),
        ] = None,
        years: Annotated[
            int, typer.Option(min=1, max=10, help="Years, the forecast year included.")
        ] = 5,
        overrun: Annotated[
            bool, typer.Option("--overrun/--no-overrun", help="Overrun in the last year.")
        ] = True,
        file_format: Annotated[
            str, typer.Option("--format", help="jsonl or csv (the layouts of publish).")
        ] = "jsonl",
    ) -> None:
        """Write a demo municipality's monthly budget, cost and volume events (contract v1)."""
        from core.errors import UserError
        from core.settings import Settings
        from services.config.domain import load_domain_config
        from services.demo.scenario import generate_scenario, summary_lines, write_scenario

        if file_format not in ("jsonl", "csv"):
            raise UserError(f"--format must be jsonl or csv, not {file_format!r}")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory")
        domain = load_domain_config(Settings().config_dir)
        scn = generate_scenario(seed, start_year, years, overrun, domain)
        paths = write_scenario(scn, out, file_format)

        for line in summary_lines(scn, domain):
            typer.echo(line)
        typer.echo("Wrote: " + ", ".join(str(p) for p in paths))
