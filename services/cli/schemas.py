"""``budgetvakt schemas``: write the JSON Schemas of the event contract.

The schemas are built in :mod:`contract.schemas`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from contract.schemas import DEFAULT_SCHEMA_DIR


def register(app: typer.Typer) -> None:
    @app.command()
    def schemas(
        out: Annotated[
            Path, typer.Option(help="Directory to write the JSON Schema files into")
        ] = DEFAULT_SCHEMA_DIR,
    ) -> None:
        """Write the JSON Schemas of contract v1, the dead letter, forecast and alert events."""
        from contract.schemas import write_schemas

        for path in write_schemas(out):
            typer.echo(str(path))
