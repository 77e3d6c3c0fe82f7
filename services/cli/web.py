"""``budgetvakt web`` (the monthly follow-up in a browser) and ``budgetvakt users``.

The app is :mod:`services.web`; users, roles and sessions are :mod:`services.followup.users`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from core.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy import Engine

ROLE_HELP = "enhetschef | avdelningschef | controller | forvaltningschef"


def _engine() -> Engine:
    from core.settings import Settings
    from services.snapshots.engine import make_engine

    return make_engine(Settings().database_url_or_default())


def register(app: typer.Typer) -> None:
    @app.command("web")
    def web_command(
        port: Annotated[
            int | None,
            typer.Option("--port", help="Port (default BUDGETVAKT_UI_PORT, 6070).", min=0),
        ] = None,
        host: Annotated[
            str | None,
            typer.Option("--host", help="Address to bind (default BUDGETVAKT_UI_HOST, 127.0.0.1)."),
        ] = None,
    ) -> None:
        """Serve the monthly follow-up (comments, åtgärder, prognos, approval) and /api/v1."""
        from core.settings import Settings
        from services.web.server import run_web

        run_web(Settings(), host=host, port=port)

    users = typer.Typer(help="Users of budgetvakt web: add, list, remove.", no_args_is_help=True)
    app.add_typer(users, name="users")

    @users.command("add")
    def users_add(
        username: Annotated[str, typer.Argument(help="Login name (lower case).")],
        role: Annotated[str, typer.Option("--role", help=ROLE_HELP)],
        node: Annotated[
            list[str],
            typer.Option(
                "--node",
                help="Org unit id of config/org.yaml; repeat it to give a kommun's controller "
                "several nämnder.",
            ),
        ],
        password_stdin: Annotated[
            bool, typer.Option("--password-stdin", help="Read the password from standard input.")
        ] = False,
    ) -> None:
        """Add a user tied to an org node (or several); the password is stored as argon2id."""
        from core.settings import Settings
        from services.config.domain import load_domain_config
        from services.followup.users import add_user, check_role

        check_role(role)
        if not password_stdin:
            raise UserError("give the password on standard input with --password-stdin")
        password = sys.stdin.readline().rstrip("\r\n")
        domain = load_domain_config(Settings().config_dir)
        engine = _engine()
        try:
            user = add_user(
                engine, domain.org, username=username, role=role, node=node, password=password
            )
        finally:
            engine.dispose()
        typer.echo(f"added {user.username}: {user.role} of {user.org_unit}")

    @users.command("list")
    def users_list() -> None:
        """List the users (name, role, node)."""
        from services.followup.users import list_users

        engine = _engine()
        try:
            found = list_users(engine)
        finally:
            engine.dispose()
        if not found:
            typer.echo("no users (add one with `budgetvakt users add`)")
        for user in found:
            typer.echo(f"{user.username}\t{user.role}\t{user.org_unit}")

    @users.command("remove")
    def users_remove(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
        """Remove a user and end their sessions."""
        from services.followup.users import remove_user

        engine = _engine()
        try:
            remove_user(engine, username)
        finally:
            engine.dispose()
        typer.echo(f"removed {username}")
