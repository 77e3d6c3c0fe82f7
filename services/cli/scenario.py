"""``budgetvakt scenario``: a demo municipality's events written to files.

Without ``--namnder`` the demo's one nämnd (:mod:`services.demo.scenario`); with it a whole
kommun (:mod:`services.demo.kommun`) and its configuration under ``OUT/config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MAX_COST_CENTRES = 20_000


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
        namnder: Annotated[
            int | None,
            typer.Option(
                "--namnder",
                min=1,
                max=8,
                help="A whole kommun of this many nämnder (1–8), its configuration in OUT/config.",
            ),
        ] = None,
        cost_centres: Annotated[
            int | None,
            typer.Option(
                "--cost-centres",
                min=1,
                max=MAX_COST_CENTRES,
                help="With --namnder: the kommun's cost centres (enheter), spread by budget.",
            ),
        ] = None,
        force: Annotated[
            bool,
            typer.Option("--force", help="With --namnder: replace an existing OUT/config whole."),
        ] = False,
    ) -> None:
        """Write a demo municipality's monthly budget, cost and volume events (contract v1)."""
        from core.errors import UserError
        from core.settings import Settings
        from services.config.domain import load_domain_config
        from services.demo.scenario import (
            generate_from_design,
            generate_scenario,
            summary_lines,
            write_scenario,
        )

        if file_format not in ("jsonl", "csv"):
            raise UserError(f"--format must be jsonl or csv, not {file_format!r}")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} exists and is not a directory")
        if namnder is None and (cost_centres is not None or force):
            given = "--cost-centres" if cost_centres is not None else "--force"
            raise UserError(f"{given} needs --namnder (a whole kommun)")
        if namnder is None:
            domain = load_domain_config(Settings().config_dir)
            scn = generate_scenario(seed, start_year, years, overrun, domain)
        else:
            from services.demo.kommun import build_kommun, write_kommun_config

            if cost_centres is None:
                raise UserError("--namnder needs --cost-centres (how many cost centres in all)")
            kommun = build_kommun(namnder, cost_centres, seed)
            config_dir = out / "config"
            write_kommun_config(
                kommun,
                config_dir,
                Settings().config_dir,
                {"namnder": namnder, "cost_centres": cost_centres, "seed": seed},
                replace=force,
            )
            domain = load_domain_config(config_dir)
            scn = generate_from_design(kommun.design, domain, seed, start_year, years, overrun)
        paths = write_scenario(scn, out, file_format)

        for line in summary_lines(scn, domain):
            typer.echo(line)
        typer.echo("Wrote: " + ", ".join(str(p) for p in paths))
        if namnder is not None:
            typer.echo(
                f"Configuration: {out / 'config'} ({len(kommun.cost_centres)} cost centres in "
                f"{namnder} nämnder); use it with BUDGETVAKT_CONFIG_DIR={out / 'config'}"
            )
