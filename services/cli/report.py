"""``budgetvakt report`` (the delårsrapport) and ``budgetvakt accuracy`` (prognossäkerhet).

The files themselves are Swedish (a product a controller reads); what the command says about
them is English. The work is in :mod:`services.reports.writer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.errors import UserError
from core.period import parse_period_option


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_command(
        period: Annotated[
            str, typer.Option("--period", help="Period of the snapshot, YYYY-MM (e.g. 2024-08).")
        ],
        file_format: Annotated[
            str,
            typer.Option(
                "--format",
                help="all (default; pdf only where Chromium is installed), xlsx, html, csv, "
                "pdf, or a list such as xlsx,pdf.",
            ),
        ] = "all",
        out: Annotated[
            Path, typer.Option("--out", help="Directory for the files (default: current).")
        ] = Path("."),
        compare: Annotated[
            str,
            typer.Option(
                "--compare",
                help="Prognosförändring columns: auto (checkpoint snapshots if any, else all), "
                "all, checkpoints.",
            ),
        ] = "auto",
        snapshot_version: Annotated[
            int | None,
            typer.Option("--snapshot-version", min=1, help="Version of the period's snapshot."),
        ] = None,
        namnd: Annotated[
            str | None,
            typer.Option(
                "--namnd",
                help="The nämnd (id of config/org.yaml); default: the only one, or "
                "with several every nämnd in OUT/<id>/ plus a kommun summary.",
            ),
        ] = None,
    ) -> None:
        """Write the delårsrapport (Excel, HTML, CSV, PDF) from the period's approved snapshot
        version, or the latest when none is approved."""
        from core.settings import Settings
        from services.reports.writer import (
            COMPARE_MODES,
            open_store,
            parse_formats,
            write_reports,
        )

        parsed = parse_period_option("--period", period)
        formats = parse_formats(file_format)
        if compare not in COMPARE_MODES:
            raise UserError(f"--compare {compare!r}: choose auto, all or checkpoints")
        settings = Settings()
        with open_store(settings.database_url_or_default()) as engine:
            written = write_reports(
                engine,
                str(parsed),
                out,
                formats=formats,
                compare=compare,  # type: ignore[arg-type]
                version=snapshot_version,
                namnd=namnd,
            )
        several = len(written.reports) > 1 or bool(written.missing)
        for report in written.reports:
            if several:
                typer.echo(f"{report.namnd_name} ({report.namnd_id}):")
            for sentence in report.summary:
                typer.echo(("  " if several else "") + sentence)
        for sentence in written.summary:
            typer.echo(sentence)
        for owner in written.missing:
            typer.echo(f"No snapshot of {owner} for {parsed}: no report for it.")
        typer.echo("Wrote: " + ", ".join(str(p) for p in written.paths))

    @app.command("accuracy")
    def accuracy_command(
        year: Annotated[
            int, typer.Option("--year", min=2000, max=2100, help="The year to evaluate.")
        ],
        out: Annotated[
            Path, typer.Option("--out", help="Directory for the files (default: current).")
        ] = Path("."),
        namnd: Annotated[
            str | None,
            typer.Option(
                "--namnd",
                help="The nämnd (id of config/org.yaml); default: the only one, or "
                "with several every nämnd in OUT/<id>/.",
            ),
        ] = None,
    ) -> None:
        """Prognossäkerhet: every snapshot's forecast of the year against its outcome."""
        from core.settings import Settings
        from services.reports.writer import open_store, print_accuracy, write_accuracies

        settings = Settings()
        with open_store(settings.database_url_or_default()) as engine:
            written = write_accuracies(engine, year, out, namnd=namnd)
        paths = []
        for owner, accuracy, owner_paths in written:
            if len(written) > 1:
                typer.echo(f"{owner}:")
            print_accuracy(accuracy)
            paths += owner_paths
        typer.echo("Wrote: " + ", ".join(str(p) for p in paths))
