"""The ``budgetvakt`` command line. Each area registers its commands from its own module."""

from __future__ import annotations

import sys
from importlib import import_module

import typer
from rich.console import Console
from rich.markup import escape

from core.errors import UserError
from core.settings import Settings
from services.logs import configure_logging

app = typer.Typer(
    name="budgetvakt",
    help="Budget forecasts and deviation alerts for municipal social services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """budgetvakt: budget forecasts and deviation alerts for municipal social services."""
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as err:
        first = err.errors()[0]
        name = "BUDGETVAKT_" + ".".join(str(p) for p in first["loc"]).upper()
        # The variable and the problem only: never echo a value (it may be a URL with a password).
        raise UserError(f"{name}: {first['msg']}") from None
    configure_logging(settings.log_format, settings.log_level)


# Modules that define ``register(app)``; imported at start, each keeps heavy imports inside its
# commands so that ``budgetvakt --help`` stays fast.
COMMAND_MODULES: list[str] = [
    "services.batch.forecast",
    "services.processes.broker",
    "services.batch.publish",
    "services.demo.scenario",
    "services.demo.run",
    "services.worker",
    "contract.schemas",
    "services.notifier.service",
    "services.snapshots.manual",
    "services.reports.writer",
]

for _module in COMMAND_MODULES:
    import_module(_module).register(app)


def main() -> None:
    try:
        app()
    except UserError as err:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(err))}", highlight=False
        )
        sys.exit(err.exit_code)
