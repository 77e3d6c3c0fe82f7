"""Reports of a kommun with two nämnder (VON, BUN; fixture ``kommun_case``) on SQLite and
PostgreSQL: one delårsrapport per nämnd, a kommun summary whose sums are the nämnders', and
``--namnd`` for one of them."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from core.errors import UserError
from forecasts.live import TOTAL
from services.reports.writer import write_accuracies, write_reports
from services.snapshots import write_snapshot
from tests.services.reports.fixtures import budgetvakt_cli
from tests.services.snapshots.fixtures import DB_AS_OF, DB_YEAR, KommunCase, kommun_forecasts

PERIOD = f"{DB_YEAR}-{DB_AS_OF:02d}"
MNKR = 1e6


@pytest.fixture
def kommun_store(store_engine: Any, kommun_case: KommunCase) -> Any:
    """Both nämnder's snapshots of March and December (the outcome) of DB_YEAR."""
    for month in (DB_AS_OF, 12):
        forecasts = kommun_forecasts(kommun_case, month)
        for owner in ("VON", "BUN"):
            write_snapshot(
                store_engine,
                forecasts[owner],
                period=f"{DB_YEAR}-{month:02d}",
                trigger="period_close",
                checkpoint="mars" if month == DB_AS_OF else "bokslut",
                org=kommun_case.domain.org,
            )
    return store_engine


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text("utf-8-sig")), delimiter=";"))


def _number(text: str) -> float:
    return float(
        text.replace("\u2212", "-").replace(" ", "").replace("\u00a0", "").replace(",", ".")
    )


def test_one_report_per_namnd_and_a_kommun_summary(
    kommun_store: Any, kommun_case: KommunCase, tmp_path: Path
) -> None:
    out = tmp_path / "rapport"
    written = write_reports(
        kommun_store, PERIOD, out, formats=("csv", "xlsx"), domain=kommun_case.domain
    )
    assert [r.namnd_id for r in written.reports] == ["VON", "BUN"]
    assert [r.municipality for r in written.reports] == ["Storvik kommun"] * 2
    assert (out / "VON" / f"delarsrapport-{PERIOD}.xlsx").is_file()
    assert (out / "BUN" / f"delarsrapport-{PERIOD}-driftredovisning.csv").is_file()
    bun = written.reports[1]
    assert bun.namnd_name == "Barn- och utbildningsnämnden"
    drift = next(t for t in bun.tables if t.slug == "driftredovisning")
    assert {row.org_unit for row in drift.rows} >= {"BUN", "BFS"}
    assert "AO" not in {row.org_unit for row in drift.rows}  # only BUN's own nodes

    rows = _csv(out / f"kommunsammanstallning-{PERIOD}.csv")
    header, body = rows[0], {r[0] or r[1]: r for r in rows[1:]}
    assert header[:6] == [
        "Ansvar",
        "Nämnd",
        "Budget helår (mnkr)",
        "Utfall t.o.m. mars (mnkr)",
        "Prognos helår (mnkr)",
        "Avvikelse budget − prognos (mnkr)",
    ]
    totals = {o: kommun_case.forecasts[o].get(o, TOTAL) for o in ("VON", "BUN")}
    for owner, total in totals.items():
        assert total is not None and total.budget_full_year is not None
        row = body[owner]
        assert _number(row[2]) == pytest.approx(total.budget_full_year / MNKR, abs=0.05)
        assert _number(row[4]) == pytest.approx(total.full_year / MNKR, abs=0.05)
        assert _number(row[5]) == pytest.approx(
            (total.budget_full_year - total.full_year) / MNKR, abs=0.05
        )
    summed = body["Summa Storvik kommun"]
    for column in (2, 3, 4, 5):
        assert _number(summed[column]) == pytest.approx(
            _number(body["VON"][column]) + _number(body["BUN"][column]), abs=0.11
        )
    deviation = sum(t.budget_full_year - t.full_year for t in totals.values())  # type: ignore[operator]
    assert len(written.summary) == 1
    assert written.summary[0].startswith("Storvik kommun (2 nämnder) efter mars 2024: budget ")
    assert ("underskott" if deviation < 0 else "överskott") in written.summary[0]
    sheet = load_workbook(out / f"kommunsammanstallning-{PERIOD}.xlsx").worksheets[0]
    assert sheet.title == "Kommunsammanställning"


def test_namnd_option_reports_on_one_and_rejects_an_unknown_one(
    kommun_store: Any, kommun_case: KommunCase, tmp_path: Path
) -> None:
    written = write_reports(
        kommun_store, PERIOD, tmp_path, formats=("csv",), domain=kommun_case.domain, namnd="BUN"
    )
    assert [r.namnd_id for r in written.reports] == ["BUN"] and written.summary == []
    assert (tmp_path / f"delarsrapport-{PERIOD}-driftredovisning.csv").is_file()
    assert not (tmp_path / f"kommunsammanstallning-{PERIOD}.csv").exists()
    with pytest.raises(UserError, match=r"--namnd 'SN' is not a nämnd.*VON, BUN$"):
        write_reports(kommun_store, PERIOD, tmp_path, domain=kommun_case.domain, namnd="SN")
    with pytest.raises(UserError, match="budgetvakt unmapped"):
        write_reports(kommun_store, PERIOD, tmp_path, domain=kommun_case.domain, namnd="omappad")
    with pytest.raises(UserError, match="--snapshot-version needs --namnd"):
        write_reports(kommun_store, PERIOD, tmp_path, domain=kommun_case.domain, version=1)


def test_accuracy_per_namnd(kommun_store: Any, kommun_case: KommunCase, tmp_path: Path) -> None:
    written = write_accuracies(kommun_store, DB_YEAR, tmp_path, domain=kommun_case.domain)
    assert [owner for owner, _, _ in written] == ["VON", "BUN"]
    for owner, accuracy, paths in written:
        assert {p.parent.name for p in paths} == {owner}
        assert {r.org_unit for r in accuracy.rows} <= set(
            kommun_case.domain.org.subtree(owner).nodes
        )
        march = accuracy.row(owner, PERIOD)
        december = kommun_case.forecasts[owner]  # as of March: what the March row forecast
        total = december.get(owner, TOTAL)
        assert total is not None and march.forecast == pytest.approx(total.full_year)


def test_report_command_for_a_kommun(
    kommun_store: Any, kommun_case: KommunCase, tmp_path: Path, database_url: str
) -> None:
    env = {
        "BUDGETVAKT_DATABASE_URL": database_url,
        "BUDGETVAKT_CONFIG_DIR": str(kommun_case.config_dir),
        "BUDGETVAKT_DATA_DIR": str(tmp_path / "data"),
        "BUDGETVAKT_LOG_FORMAT": "json",
    }
    both = budgetvakt_cli(
        "report", "--period", PERIOD, "--format", "csv", "--out", "ut", env=env, cwd=tmp_path
    )
    assert both.returncode == 0, both.stderr
    assert "Barn- och utbildningsnämnden (BUN):" in both.stdout
    assert "Storvik kommun (2 nämnder) efter mars 2024" in both.stdout
    assert (tmp_path / "ut" / f"kommunsammanstallning-{PERIOD}.csv").is_file()
    one = budgetvakt_cli(
        "accuracy", "--year", str(DB_YEAR), "--namnd", "BUN", "--out", "acc", env=env, cwd=tmp_path
    )
    assert one.returncode == 0, one.stderr
    assert (tmp_path / "acc" / f"prognossakerhet-{DB_YEAR}.csv").is_file()
    wrong = budgetvakt_cli("report", "--period", PERIOD, "--namnd", "XX", env=env, cwd=tmp_path)
    assert wrong.returncode == 2 and "--namnd 'XX' is not a nämnd" in wrong.stderr
