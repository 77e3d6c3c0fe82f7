"""``budgetvakt demo``: a municipality's history and story year through a broker and a worker.

The demo is run by :mod:`services.demo.run`; its narration is Swedish (a controller's product).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from core.errors import UserError


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command(
        data_dir: Annotated[
            Path | None,
            typer.Option(help="Where the demo writes its files (default: BUDGETVAKT_DATA_DIR)."),
        ] = None,
        seed: Annotated[int, typer.Option(help="Scenario seed.")] = 2024,
    ) -> None:
        """Replay a municipality's history (a first load), then its story year month by month."""
        from rich.console import Console

        from core.settings import Settings
        from services.demo.run import _sigterm_as_interrupt, run_demo

        root = data_dir or Settings().data_dir
        if root.exists() and not root.is_dir():
            where = "--data-dir" if data_dir is not None else "BUDGETVAKT_DATA_DIR"
            raise UserError(f"{where} {root} exists and is not a directory")
        console = Console()
        started = time.monotonic()
        with _sigterm_as_interrupt():
            try:
                run_demo(root, seed, console)
            except KeyboardInterrupt:
                console.print("Avbrutet; allt som startades är stoppat.")
                raise typer.Exit(130) from None
        console.print(f"Klart på {time.monotonic() - started:.0f} s.", highlight=False)
