"""``budgetvakt snapshot`` and ``budgetvakt db upgrade``: monthly forecast snapshots by hand.

The work is in :mod:`services.snapshots.manual`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from core.period import parse_period_option


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(
        name="db",
        help="The snapshot database (PostgreSQL or SQLite): schema migrations.",
        no_args_is_help=True,
    )
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def db_upgrade() -> None:
        """Migrate the snapshot database (BUDGETVAKT_DATABASE_URL) to the newest revision."""
        from services.snapshots.manual import upgrade_database

        database, revision = upgrade_database()
        typer.echo(f"Database {database} is at revision {revision} (the newest).")

    @app.command("snapshot")
    def snapshot_command(
        period: Annotated[
            str, typer.Option("--period", help="The closed month to snapshot, YYYY-MM.")
        ],
        checkpoint: Annotated[
            str | None,
            typer.Option(
                "--checkpoint",
                help="Checkpoint name; default: the month's name in config/checkpoints.yaml.",
            ),
        ] = None,
        timeout_s: Annotated[
            float,
            typer.Option("--timeout", min=1.0, help="Seconds to read the topics at most."),
        ] = 120.0,
        namnd: Annotated[
            str | None,
            typer.Option(
                "--namnd",
                help="Only this nämnd (id of config/org.yaml, or omappad); default: every one.",
            ),
        ] = None,
    ) -> None:
        """Replay the input topics, forecast as of --period and store each nämnd's snapshot."""
        from services.snapshots.manual import summary_lines, take_snapshot

        taken = take_snapshot(parse_period_option("--period", period), checkpoint, timeout_s, namnd)
        for line in summary_lines(taken):
            typer.echo(line)
