"""``budgetvakt demo``: the scenario replayed through an embedded broker and a real worker."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_command() -> None:
        """Run the demo (being written)."""
        from services.errors import UserError

        raise UserError("the demo is not ready yet")
