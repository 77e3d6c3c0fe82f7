"""``budgetvakt snapshot`` and ``budgetvakt db upgrade``: monthly forecast snapshots by hand.

``snapshot --period YYYY-MM`` replays the input topics from the beginning (``streams.replay``,
independent of any running worker), forecasts the organisation as of the period's month and
freezes the result as the period's next snapshot version (``services.snapshots.store``). The worker
writes the same snapshots by itself on ``period_close``; this command is for a period that must
be (re)taken by hand. ``db upgrade`` brings the database schema to the current revision; every
other command refuses a database that is not at it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from core.errors import UserError

NO_BOOTSTRAP_MESSAGE = (
    "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS is not set. Start a local broker with "
    "`budgetvakt broker` and set the variable to the address it prints "
    "(e.g. BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092)."
)


def parse_period(text: str) -> tuple[int, int]:
    from services.snapshots.store import PERIOD_RE

    match = PERIOD_RE.match(text.strip())
    if match is None:
        raise UserError(f"--period {text!r}: ange perioden som ÅÅÅÅ-MM, t.ex. 2024-08")
    return int(match.group(1)), int(match.group(2))


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
        from core.settings import Settings
        from services.snapshots.engine import describe_url
        from services.snapshots.migrate import upgrade

        url = Settings().database_url_or_default()
        revision = upgrade(url)
        typer.echo(f"Databasen {describe_url(url)} är på revision {revision} (senaste).")

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
    ) -> None:
        """Replay the input topics, forecast as of --period and store it as a new snapshot."""
        from core.settings import Settings
        from core.swedish import MONTH_NAMES_SV, format_mnkr, format_number_sv
        from forecasts.live import TOTAL, forecast_organisation
        from services.config.domain import load_domain_config
        from services.snapshots.checkpoints import check_checkpoint_name, load_checkpoints
        from services.snapshots.engine import describe_url, make_engine
        from services.snapshots.migrate import ensure_at_head
        from services.snapshots.store import write_snapshot
        from streams.aggregation import leaf_series
        from streams.replay import replay

        year, month = parse_period(period)
        settings = Settings()
        if not settings.kafka_bootstrap_servers.strip():
            raise UserError(NO_BOOTSTRAP_MESSAGE)
        period = f"{year:04d}-{month:02d}"
        domain = load_domain_config(settings.config_dir)
        checkpoints = load_checkpoints(settings.config_dir)
        name = check_checkpoint_name(checkpoint) if checkpoint is not None else None
        name = name or checkpoints.get(month)
        url = settings.database_url_or_default()
        engine = make_engine(url)
        try:
            ensure_at_head(engine)  # before the replay: a missing upgrade fails fast
            topics = settings.topics()
            replayed = replay(
                settings.kafka_bootstrap_servers.strip(),
                topics.input_types(),
                domain,
                timeout_s=timeout_s,
                connect_timeout_s=min(timeout_s, 10.0),
            )
            leaves, latest_month = leaf_series(replayed.items.items(), year)
            if latest_month == 0:
                raise UserError(
                    f"inga kostnader för {year} i ämnet {topics.cost} "
                    f"({replayed.messages} meddelanden lästa): inget att ta en ögonblicksbild av"
                )
            if month > latest_month:
                raise UserError(
                    f"det finns inga kostnader bokförda för {period}; senaste månad med "
                    f"kostnader är {year:04d}-{latest_month:02d}"
                )
            forecast = forecast_organisation(
                leaves, domain, year, month, model=settings.forecast_model
            )
            stored = write_snapshot(
                engine,
                forecast,
                period=period,
                trigger="cli",
                checkpoint=name,
                org=domain.org,
                model=settings.forecast_model,
            )
        finally:
            engine.dispose()

        root = domain.org.root
        total = stored.forecast.get(root.id, TOTAL)
        typer.echo(
            f"Ögonblicksbild {stored.id} sparad: period {stored.period}, version {stored.version}, "
            f"kontrollpunkt {stored.checkpoint or '(ingen)'}, {len(stored.forecast.nodes)} rader."
        )
        if total is not None:
            budget = total.budget_full_year
            deviation = total.deviation
            typer.echo(
                f"{root.name} ({root.id}) {year} per {MONTH_NAMES_SV[month - 1]}: "
                f"budget {format_mnkr(budget) if budget is not None else '–'} mnkr, "
                f"prognos {format_mnkr(total.full_year)} mnkr "
                f"(80 %: {format_mnkr(total.low)}–{format_mnkr(total.high)}), "
                f"avvikelse {format_mnkr(deviation) if deviation is not None else '–'} mnkr."
            )
        typer.echo(
            f"Indata: {format_number_sv(replayed.messages, 0)} meddelanden "
            f"({format_number_sv(replayed.invalid + replayed.failed, 0)} ogiltiga, "
            f"{format_number_sv(replayed.duplicates, 0)} dubbletter); "
            f"{len(replayed.closed_periods)} stängda perioder; "
            f"{stored.late_event_count} sena händelser i ögonblicksbilden."
        )
        if period not in replayed.closed_periods:
            typer.echo(f"Obs: perioden {period} är inte stängd (ingen period_close-händelse).")
        typer.echo(f"Databas: {describe_url(url)}")
