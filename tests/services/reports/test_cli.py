"""``budgetvakt report`` and ``budgetvakt accuracy`` through a real SQLite snapshot store."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import load_workbook

from core.errors import UserError
from forecasts.live import TOTAL
from services.reports.writer import load_report_snapshots, write_accuracy, write_report
from services.snapshots.store import load_snapshot, make_engine
from tests.services.reports.fixtures import ReportCase, budgetvakt_cli

MNKR = 1e6
CSV_TABLES = (
    "driftredovisning",
    "driftredovisning_enhet",
    "kostnadsslag",
    "prognosforandring",
    "personalkostnader",
    "sjukfranvaro",
    "volym_pris",
    "volymer",
    "nyckeltal",
)


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "BUDGETVAKT_DATABASE_URL": url,
        "BUDGETVAKT_DATA_DIR": str(tmp_path / "data"),
        "BUDGETVAKT_LOG_FORMAT": "json",
    }


def test_report_command_writes_the_three_formats_from_the_database(
    tmp_path: Path, report_db_url: str, report_case: ReportCase
) -> None:
    result = budgetvakt_cli(
        "report",
        "--period",
        "2024-08",
        "--format",
        "xlsx,html,csv",  # the PDF (a browser) is tested in test_pdf.py
        "--out",
        "rapport",
        env=_env(report_db_url, tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "rapport"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "delarsrapport-2024-08.xlsx",
            "delarsrapport-2024-08.html",
            *(f"delarsrapport-2024-08-{t}.csv" for t in CSV_TABLES),
        ]
    )
    assert "Modellens prognos efter augusti 2024" in result.stdout
    engine = make_engine(report_db_url)
    try:
        stored = load_snapshot(engine, "2024-08")
    finally:
        engine.dispose()
    assert stored is not None
    wb = load_workbook(out / "delarsrapport-2024-08.xlsx")
    cover = {r[0].value: r[1].value for r in wb["Försättsblad"].iter_rows(min_row=4, max_col=2)}
    assert cover["Snapshot-id"] == stored.id
    assert cover["Snapshot-version"] == stored.version
    # The numbers survived the database round trip.
    drift = wb["Driftredovisning"]
    von = next(r for r in drift.iter_rows(min_row=4, values_only=True) if r[0] == "VON")
    node = report_case.forecasts[8].get("VON", TOTAL)
    assert node is not None
    header = [c.value for c in drift[3]]
    assert von[header.index("Modellens prognos helår (mnkr)")] == pytest.approx(
        node.full_year / MNKR, rel=1e-12
    )
    # Every snapshot has a checkpoint name: the comparison columns are the earlier ones.
    change = wb["Prognosförändring"]
    headers = [c.value for c in change[3]]
    assert headers[3:8] == [
        "Modellens prognos mars (mnkr)",
        "Modellens prognos april (mnkr)",
        "Förändring sedan mars (mnkr)",
        "Modellens prognos delår (mnkr)",
        "Förändring sedan april (mnkr)",
    ]
    von_change = next(r for r in change.iter_rows(min_row=4, values_only=True) if r[0] == "VON")
    march = report_case.forecasts[3].get("VON", TOTAL)
    assert march is not None
    assert von_change[3] == pytest.approx(march.full_year / MNKR, rel=1e-12)


def test_report_format_option_and_rerun_replaces_files(tmp_path: Path, report_db_url: str) -> None:
    engine = make_engine(report_db_url)
    try:
        report, paths = write_report(engine, "2024-10", tmp_path / "out", formats=("csv",))
        assert [p.name for p in paths] == [f"delarsrapport-2024-10-{t}.csv" for t in CSV_TABLES]
        assert [c.label for c in report.compared] == [
            "Prognos mars",
            "Prognos april",
            "Prognos delår",
            "Prognos okt",
        ]
        first = paths[0].read_bytes()
        _, again = write_report(engine, "2024-10", tmp_path / "out", formats=("csv",))
        assert again[0].read_bytes() == first
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)
    finally:
        engine.dispose()


def test_missing_period_names_the_periods_that_exist(tmp_path: Path, report_db_url: str) -> None:
    result = budgetvakt_cli(
        "report",
        "--period",
        "2024-09",
        "--out",
        "rapport",
        env=_env(report_db_url, tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no snapshot of the period 2024-09" in result.stderr
    assert "2024-03, 2024-04, 2024-08, 2024-10, 2024-12" in result.stderr
    assert "budgetvakt snapshot" in result.stderr
    assert not (tmp_path / "rapport").exists()
    engine = make_engine(report_db_url)
    try:
        with pytest.raises(UserError, match="version 7 does not exist; versions: 1"):
            load_report_snapshots(engine, "2024-08", version=7)
        with pytest.raises(UserError, match="none"):
            load_report_snapshots(engine, "2023-08")
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--period", "2024-13"], "--period '2024-13': expected YYYY-MM"),
        (["report", "--period", "aug"], "--period 'aug': expected YYYY-MM"),
        (["report", "--period", "2024-08", "--format", "docx"], "unknown format docx"),
        (
            ["report", "--period", "2024-08", "--compare", "some"],
            "choose auto, all or checkpoints",
        ),
    ],
)
def test_bad_arguments_are_user_errors(
    tmp_path: Path, report_db_url: str, args: list[str], message: str
) -> None:
    result = budgetvakt_cli(*args, env=_env(report_db_url, tmp_path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unwritable_out_and_missing_database(tmp_path: Path, report_db_url: str) -> None:
    (tmp_path / "taken").write_text("not a directory")
    result = budgetvakt_cli(
        "report",
        "--period",
        "2024-08",
        "--out",
        "taken",
        env=_env(report_db_url, tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "--out taken exists and is not a directory" in result.stderr
    missing = f"sqlite:///{tmp_path / 'nowhere' / 'store.sqlite'}"
    result = budgetvakt_cli(
        "report", "--period", "2024-08", env=_env(missing, tmp_path), cwd=tmp_path
    )
    assert result.returncode == 2
    assert "does not exist: there are no snapshots yet" in result.stderr
    assert not (tmp_path / "nowhere").exists()  # the report does not create a database


def test_accuracy_command_prints_the_table_and_writes_files(
    tmp_path: Path, report_db_url: str
) -> None:
    result = budgetvakt_cli(
        "accuracy",
        "--year",
        "2024",
        "--out",
        "ps",
        env={**_env(report_db_url, tmp_path), "COLUMNS": "100"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Prognossäkerhet 2024" in result.stdout
    assert "Utfallet för nämnden blev" in result.stdout
    assert "än prognosen efter augusti." in result.stdout
    assert sorted(p.name for p in (tmp_path / "ps").iterdir()) == [
        "prognossakerhet-2024.csv",
        "prognossakerhet-2024.xlsx",
    ]
    ws = load_workbook(io.BytesIO((tmp_path / "ps" / "prognossakerhet-2024.xlsx").read_bytes()))[
        "Prognossäkerhet"
    ]
    assert "VON" in [ws.cell(r, 2).value for r in range(4, ws.max_row + 1)]


def test_accuracy_without_december_is_a_clear_error(
    tmp_path: Path, report_case: ReportCase
) -> None:
    from services.snapshots.store import upgrade, write_snapshot

    url = f"sqlite:///{tmp_path / 'partial.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        write_snapshot(engine, report_case.forecasts[8], period="2024-08", trigger="cli")
        with pytest.raises(UserError, match="no snapshot of 2024-12"):
            write_accuracy(engine, 2024, tmp_path / "ps")
    finally:
        engine.dispose()
    assert not (tmp_path / "ps").exists()
    result = budgetvakt_cli("accuracy", "--year", "2024", env=_env(url, tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "the outcome of 2024 is not complete" in result.stderr
    assert "(snapshots of 2024: 2024-08)" in result.stderr
