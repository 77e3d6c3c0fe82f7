"""The ``budgetvakt`` command line: one module per command group in this package.

The command modules parse arguments and call the code that does the work; they speak English
(output, errors); what a controller reads as a product (reports, e-mails, demo narration) is
Swedish and made elsewhere.
"""

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


# One module per command group, each defining ``register(app)``. They import only what their
# options need at start and the rest inside their commands, so that ``budgetvakt --help`` stays
# fast.
COMMAND_MODULES: list[str] = [
    "services.cli.forecast",
    "services.cli.broker",
    "services.cli.publish",
    "services.cli.scenario",
    "services.cli.demo",
    "services.cli.worker",
    "services.cli.unmapped",
    "services.cli.schemas",
    "services.cli.notifier",
    "services.cli.snapshot",
    "services.cli.report",
    "services.cli.web",
    "services.cli.migrate",
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
