"""``budgetvakt forecast`` and ``budgetvakt backtest``: full-year forecasts from CSV files.

The file layouts and the work are in :mod:`services.batch.forecast`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from services.batch.forecast import BACKTEST_MODELS


def register(app: typer.Typer) -> None:
    @app.command("forecast")
    def forecast(
        actuals: Annotated[Path, typer.Option("--actuals", help="A.csv with monthly actuals")],
        as_of: Annotated[str, typer.Option("--as-of", help="As-of month, YYYY-MM")],
        out: Annotated[Path, typer.Option("--out", help="Output CSV (written atomically)")],
        budget: Annotated[
            Path | None, typer.Option("--budget", help="B.csv with annual/monthly budgets")
        ] = None,
        model: Annotated[
            str, typer.Option("--model", help="auto|runrate|seasonal|budget|ets|prophet")
        ] = "auto",
        processes: Annotated[
            int, typer.Option("--processes", min=1, help="Processes for ets/prophet fits")
        ] = 1,
        volumes: Annotated[
            Path | None,
            typer.Option(
                "--volumes",
                help="V.csv org_unit,measure,period,value: categories linked to a measure "
                "(config/categories.yaml) are forecast as volume × unit cost",
            ),
        ] = None,
        volume_plan: Annotated[
            Path | None,
            typer.Option(
                "--volume-plan",
                help="P.csv org_unit,measure,year,annual[,m01..m12]: planned volumes",
            ),
        ] = None,
        effects_out: Annotated[
            Path | None,
            typer.Option(
                "--effects-out",
                help="Write the deviation split into volume and price effects (needs --volumes)",
            ),
        ] = None,
    ) -> None:
        """Full-year forecast per (org_unit, category) with an 80 % interval.

        With --volumes, volume-driven categories are forecast as volume × unit cost, and
        --effects-out splits their deviation into a volume effect (planned − forecast volume)
        × budgeted unit price and a price/productivity effect (the rest); positive = överskott.
        """
        from rich.console import Console

        from services.batch.forecast import run_forecast

        written, no_data, notes = run_forecast(
            actuals,
            budget,
            as_of,
            model,
            out,
            processes,
            volumes_path=volumes,
            volume_plan_path=volume_plan,
            effects_path=effects_out,
        )
        err = Console(stderr=True)
        for unit, category in no_data:
            err.print(
                f"no data: {unit}/{category} has no actuals up to {as_of}; not forecast",
                highlight=False,
            )
        for note in notes:
            err.print(note, highlight=False)
        err.print(f"wrote {written} rows to {out}", highlight=False)
        if effects_out is not None:
            err.print(f"wrote the volume/price effects to {effects_out}", highlight=False)

    @app.command("backtest")
    def backtest(
        actuals: Annotated[Path, typer.Option("--actuals", help="A.csv with monthly actuals")],
        cutoffs: Annotated[
            str, typer.Option("--cutoffs", help="As-of months, comma separated")
        ] = "4,8,10",
        models: Annotated[
            str, typer.Option("--models", help=f"Comma separated: {','.join(BACKTEST_MODELS)}")
        ] = "auto",
        budget: Annotated[Path | None, typer.Option("--budget", help="B.csv budgets")] = None,
        csv_out: Annotated[
            Path | None, typer.Option("--csv", help="Write the table as CSV")
        ] = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Write the table as JSON")
        ] = None,
        processes: Annotated[
            int, typer.Option("--processes", min=1, help="Processes for ets/prophet fits")
        ] = 1,
    ) -> None:
        """Hold out each series' last full year; errors and coverage per cutoff and model."""
        from services.batch.forecast import run_backtest

        run_backtest(actuals, cutoffs, models, budget, csv_out, json_out, processes)
