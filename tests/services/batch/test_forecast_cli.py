"""``budgetvakt forecast`` / ``backtest``: output format and every error path."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest

from services.batch.forecast import OUTPUT_COLUMNS
from services.cli import main

WriteCsv = Callable[[str, Iterable[Sequence[object]]], Path]
HEADER = ("org_unit", "category", "period", "amount_sek")


def run(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["budgetvakt", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, " ".join(err.split())


def forecast_args(actuals: Path, out: Path, *extra: str) -> list[str]:
    return ["forecast", "--actuals", str(actuals), "--as-of", "2024-08", "--out", str(out), *extra]


def test_forecast_writes_the_exact_header_and_one_row_per_series(
    actuals_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "F.csv"
    code, _, _ = run(forecast_args(actuals_csv, out), monkeypatch, capsys)
    assert code == 0
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert tuple(rows[0]) == OUTPUT_COLUMNS
    body = {(r[0], r[1]): dict(zip(OUTPUT_COLUMNS, r, strict=True)) for r in rows[1:]}
    assert set(body) == {(u, c) for u in ("1110", "1120") for c in ("salaries", "revenue_fees")}
    fees = body[("1110", "revenue_fees")]
    assert fees["year"] == "2024" and fees["as_of"] == "2024-08"
    assert float(fees["forecast_full_year_sek"]) == pytest.approx(-1200, abs=1)
    assert fees["budget_full_year_sek"] == "" and fees["deviation_sek"] == ""
    assert float(fees["ytd_actual_sek"]) == pytest.approx(-800)
    assert not list(tmp_path.glob(".F.csv.*"))


def test_forecast_with_budget_and_swedish_decimal_comma(
    write_csv: WriteCsv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [HEADER] + [
        ("1110", "premises", f"{2021 + i // 12}-{i % 12 + 1:02d}", "1 000,50") for i in range(44)
    ]
    actuals = write_csv("A.csv", rows)
    budget = write_csv(
        "B.csv",
        [
            ("org_unit", "category", "year", "annual_sek"),
            ("1110", "premises", "2024", "12000"),
            ("1120", "premises", "2024", "6000"),
        ],
    )
    out = tmp_path / "F.csv"
    code, _, err = run(forecast_args(actuals, out, "--budget", str(budget)), monkeypatch, capsys)
    assert code == 0
    body = {r["org_unit"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert float(body["1110"]["forecast_full_year_sek"]) == pytest.approx(12006, abs=1)
    assert body["1110"]["deviation_sek"] == "-6"  # budget − forecast: a small deficit
    # A budget without actuals is reported, not guessed.
    assert body["1120"]["model"] == "no_data"
    assert body["1120"]["forecast_full_year_sek"] == ""
    assert body["1120"]["budget_full_year_sek"] == "6000"
    assert "no data: 1120/premises" in err


def test_forecast_accepts_a_semicolon_file(
    write_csv: WriteCsv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "A.csv"
    lines = ["org_unit;category;period;amount_sek"] + [
        f"1110;premises;2024-{m:02d};100,5" for m in range(1, 9)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "F.csv"
    code, _, _ = run(forecast_args(path, out), monkeypatch, capsys)
    assert code == 0
    row = next(csv.DictReader(out.open(encoding="utf-8")))
    assert row["ytd_actual_sek"] == "804"


BAD_ACTUALS = [
    ([("org_unit", "category", "period")], ":1: missing column(s) amount_sek"),
    ([(*HEADER, "comment")], ":1: unknown column(s) comment"),
    ([HEADER, ("1110", "salaries", "2024-13", "1")], ":2: bad period '2024-13'"),
    ([HEADER, ("1110", "salaries", "2024/01", "1")], ":2: bad period '2024/01'"),
    (
        [HEADER, ("1110", "salaries", "2024-01", "1"), ("1110", "salaries", "2024-02", "abc")],
        ":3: amount_sek 'abc' is not a number",
    ),
    ([HEADER, ("1110", "salaries", "2024-01", "1.5,3")], ":2: amount_sek '1.5,3' is not a number"),
    ([HEADER, ("1110", "salaries", "2024-01", "nan")], ":2: amount_sek 'nan' is not a number"),
    (
        [HEADER, ("1110", "salaries", "2024-01", "1"), ("1110", "salaries", "2024-01", "2")],
        ":3: duplicate row for 1110/salaries/2024-01 (first on line 2)",
    ),
    ([HEADER, ("1110", "salaries", "2024-01")], ":2: 3 fields, the header has 4"),
    ([HEADER, ("", "salaries", "2024-01", "1")], ":2: empty org_unit"),
    ([], ":1: empty file"),
]


@pytest.mark.parametrize(("rows", "message"), BAD_ACTUALS)
def test_bad_actuals_name_file_and_line_exit_2_and_write_nothing(
    rows: list[Sequence[object]],
    message: str,
    write_csv: WriteCsv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    actuals = write_csv("A.csv", rows)
    out = tmp_path / "F.csv"
    code, _, err = run(forecast_args(actuals, out), monkeypatch, capsys)
    assert code == 2
    assert f"{actuals}{message}" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["A.csv"]


BAD_BUDGETS = [
    ([("org_unit", "category", "year")], ":1: missing column(s) annual_sek"),
    (
        [("org_unit", "category", "year", "annual_sek"), ("1110", "salaries", "24", "1")],
        ":2: bad year '24'",
    ),
    (
        [("org_unit", "category", "year", "annual_sek"), ("1110", "salaries", "2024", "x")],
        ":2: annual_sek 'x' is not a number",
    ),
    (
        [
            ("org_unit", "category", "year", "annual_sek", "m01"),
            ("1110", "salaries", "2024", "1", "1"),
        ],
        ":2: monthly budget incomplete, missing m02",
    ),
    (
        [
            ("org_unit", "category", "year", "annual_sek", *[f"m{i:02d}" for i in range(1, 13)]),
            ("1110", "salaries", "2024", "20", *["1"] * 12),
        ],
        ":2: m01…m12 sum to 12.00",
    ),
    (
        [
            ("org_unit", "category", "year", "annual_sek"),
            ("1110", "salaries", "2024", "1"),
            ("1110", "salaries", "2024", "2"),
        ],
        ":3: duplicate budget for 1110/salaries/2024",
    ),
]


@pytest.mark.parametrize(("rows", "message"), BAD_BUDGETS)
def test_bad_budgets_name_file_and_line_exit_2_and_write_nothing(
    rows: list[Sequence[object]],
    message: str,
    actuals_csv: Path,
    write_csv: WriteCsv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    budget = write_csv("B.csv", rows)
    out = tmp_path / "F.csv"
    code, _, err = run(
        forecast_args(actuals_csv, out, "--budget", str(budget)), monkeypatch, capsys
    )
    assert code == 2
    assert f"{budget}{message}" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2024-8"], "--as-of '2024-8': expected YYYY-MM"),
        (["--model", "magic"], "--model 'magic': choose one of"),
    ],
)
def test_bad_options_exit_2(
    args: list[str],
    message: str,
    actuals_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "F.csv"
    base = ["forecast", "--actuals", str(actuals_csv), "--out", str(out)]
    if "--as-of" not in args:
        base += ["--as-of", "2024-08"]
    code, _, err = run(base + args, monkeypatch, capsys)
    assert code == 2
    assert message in err
    assert not out.exists()


def test_missing_file_and_missing_output_directory(
    actuals_csv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(
        forecast_args(tmp_path / "nope.csv", tmp_path / "F.csv"), monkeypatch, capsys
    )
    assert code == 2 and "nope.csv: file not found" in err
    code, _, err = run(forecast_args(actuals_csv, tmp_path / "no" / "F.csv"), monkeypatch, capsys)
    assert code == 2 and "does not exist" in err


def test_backtest_prints_a_table_and_writes_json_and_csv(
    write_csv: WriteCsv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.synthetic_municipal import generate

    keys, panel = generate(n_units=2, n_years=4, seed=3)
    rows: list[Sequence[object]] = [HEADER]
    for (unit, cat), row in zip(keys, panel, strict=True):
        rows += [
            (unit, cat, f"{2021 + i // 12}-{i % 12 + 1:02d}", f"{v:.2f}") for i, v in enumerate(row)
        ]
    actuals = write_csv("A.csv", rows)
    js, cs = tmp_path / "bt.json", tmp_path / "bt.csv"
    code, out, _ = run(
        [
            "backtest",
            "--actuals",
            str(actuals),
            "--cutoffs",
            "4,8",
            "--models",
            "auto,seasonal",
            "--json",
            str(js),
            "--csv",
            str(cs),
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0
    assert "Median APE" in out
    records = json.loads(js.read_text())
    assert {(r["cutoff"], r["model"]) for r in records} == {
        (c, m) for c in (4, 8) for m in ("runrate", "lastyear", "auto", "seasonal")
    }
    assert all(r["series"] == len(keys) for r in records)
    assert len(list(csv.DictReader(cs.open()))) == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cutoffs", "4,13"], "--cutoffs '4,13': expected months 1..11"),
        (["--models", "auto,magic"], "--models 'auto,magic': unknown magic"),
    ],
)
def test_backtest_bad_options_exit_2(
    args: list[str],
    message: str,
    actuals_csv: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(["backtest", "--actuals", str(actuals_csv), *args], monkeypatch, capsys)
    assert code == 2 and message in err


def test_backtest_without_enough_history_says_so(
    write_csv: WriteCsv,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    actuals = write_csv(
        "A.csv", [HEADER] + [("1", "premises", f"2024-{m:02d}", "1") for m in range(1, 13)]
    )
    code, _, err = run(["backtest", "--actuals", str(actuals)], monkeypatch, capsys)
    assert code == 2 and "two full years before it" in err
