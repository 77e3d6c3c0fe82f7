"""``budgetvakt forecast --volumes/--volume-plan/--effects-out``: volume × unit cost from CSV."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest

from services.batch.forecast import EFFECTS_COLUMNS, OUTPUT_COLUMNS
from tests.services.batch.test_forecast_cli import run

WriteCsv = Callable[[str, Iterable[Sequence[object]]], Path]

# Steady histories, so every model continues them exactly and the expected numbers are known:
# 1110 buys 12 places a month at 55 000 kr (over plan and dearer than budgeted: underskott),
# 1120 buys 8 places a month at 45 000 kr (under plan and cheaper: överskott).
# Both planned 120 place-months at a budget of 6 000 000 kr, i.e. 50 000 kr a place-month.
UNITS = {"1110": (12.0, 55_000.0), "1120": (8.0, 45_000.0)}


@pytest.fixture
def volume_files(write_csv: WriteCsv) -> dict[str, Path]:
    actuals: list[Sequence[object]] = [("org_unit", "category", "period", "amount_sek")]
    volumes: list[Sequence[object]] = [("org_unit", "measure", "period", "value")]
    for unit, (places, price) in UNITS.items():
        for i in range(44):  # 2021-01 … 2024-08
            period = f"{2021 + i // 12}-{i % 12 + 1:02d}"
            actuals.append((unit, "purchased_care", period, places * price))
            actuals.append((unit, "premises", period, 1000))
            # Swedish decimal comma (quoted by the csv writer).
            volumes.append((unit, "purchased_places", period, f"{places:.1f}".replace(".", ",")))
    budget = [("org_unit", "category", "year", "annual_sek")] + [
        (unit, "purchased_care", 2024, 6_000_000) for unit in UNITS
    ]
    plan = [("org_unit", "measure", "year", "annual")] + [
        (unit, "purchased_places", 2024, 120) for unit in UNITS
    ]
    return {
        "actuals": write_csv("A.csv", actuals),
        "volumes": write_csv("V.csv", volumes),
        "budget": write_csv("B.csv", budget),
        "plan": write_csv("P.csv", plan),
    }


def volume_args(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "forecast",
        "--actuals",
        str(files["actuals"]),
        "--as-of",
        "2024-08",
        "--out",
        str(out),
        *extra,
    ]


def read(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["org_unit"], r["category"]): r for r in csv.DictReader(path.open(encoding="utf-8"))}


def test_effects_split_the_deviation_into_volume_and_price(
    volume_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, effects = tmp_path / "F.csv", tmp_path / "E.csv"
    args = volume_args(
        volume_files,
        out,
        "--budget",
        str(volume_files["budget"]),
        "--volumes",
        str(volume_files["volumes"]),
        "--volume-plan",
        str(volume_files["plan"]),
        "--effects-out",
        str(effects),
    )
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 0, err
    header = effects.read_text(encoding="utf-8").splitlines()[0]
    assert tuple(header.split(",")) == EFFECTS_COLUMNS
    assert tuple(out.read_text(encoding="utf-8").splitlines()[0].split(",")) == OUTPUT_COLUMNS
    split = read(effects)
    # Only the category linked to a measure (purchased_care ↔ purchased_places) gets a row.
    assert set(split) == {("1110", "purchased_care"), ("1120", "purchased_care")}
    expected = {
        # unit: forecast volume, forecast cost, deviation, volume effect, price effect
        "1110": (144.0, 7_920_000, -1_920_000, -1_200_000, -720_000),
        "1120": (96.0, 4_320_000, 1_680_000, 1_200_000, 480_000),
    }
    forecasts = read(out)
    for unit, (volume, cost, deviation, volume_eff, price_eff) in expected.items():
        row = split[(unit, "purchased_care")]
        assert row["measure"] == "purchased_places"
        assert float(row["forecast_volume"]) == pytest.approx(volume, abs=0.01)
        assert float(row["planned_volume"]) == 120.0
        assert float(row["budget_unit_price_sek"]) == pytest.approx(50_000.0)
        assert float(row["forecast_unit_cost_sek"]) == pytest.approx(UNITS[unit][1], rel=1e-6)
        assert int(row["forecast_full_year_sek"]) == pytest.approx(cost, abs=1)
        assert int(row["deviation_sek"]) == pytest.approx(deviation, abs=1)
        assert int(row["volume_effect_sek"]) == pytest.approx(volume_eff, abs=1)
        assert int(row["price_effect_sek"]) == pytest.approx(price_eff, abs=1)
        # The two effects add up to the deviation exactly, also after rounding.
        assert int(row["volume_effect_sek"]) + int(row["price_effect_sek"]) == int(
            row["deviation_sek"]
        )
        # The forecast file carries the same volume × price forecast.
        fc = forecasts[(unit, "purchased_care")]
        assert fc["model"] == "volume×price"
        assert fc["forecast_full_year_sek"] == row["forecast_full_year_sek"]
        assert fc["deviation_sek"] == row["deviation_sek"]
        assert forecasts[(unit, "premises")]["model"] != "volume×price"


def test_effects_are_empty_without_a_plan_and_said_so(
    volume_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, effects = tmp_path / "F.csv", tmp_path / "E.csv"
    args = volume_args(
        volume_files,
        out,
        "--budget",
        str(volume_files["budget"]),
        "--volumes",
        str(volume_files["volumes"]),
        "--effects-out",
        str(effects),
    )
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 0, err
    row = read(effects)[("1110", "purchased_care")]
    assert float(row["forecast_volume"]) == pytest.approx(144.0, abs=0.01)
    assert row["planned_volume"] == row["budget_unit_price_sek"] == ""
    assert row["volume_effect_sek"] == row["price_effect_sek"] == ""
    assert int(row["deviation_sek"]) == pytest.approx(-1_920_000, abs=1)
    assert "no volume plan: 1110/purchased_places 2024" in err


def test_a_linked_category_without_volumes_is_forecast_from_its_cost(
    volume_files: dict[str, Path],
    write_csv: WriteCsv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    only_1110 = [("org_unit", "measure", "period", "value")] + [
        ("1110", "purchased_places", f"{2021 + i // 12}-{i % 12 + 1:02d}", 12) for i in range(44)
    ]
    volumes = write_csv("V1110.csv", only_1110)
    out, effects = tmp_path / "F.csv", tmp_path / "E.csv"
    args = volume_args(volume_files, out, "--volumes", str(volumes), "--effects-out", str(effects))
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 0, err
    assert set(read(effects)) == {("1110", "purchased_care")}
    assert read(out)[("1120", "purchased_care")]["model"] != "volume×price"
    assert "no volumes: 1120/purchased_places has none up to 2024-08" in err


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [
                ("org_unit", "measure", "period", "value"),
                ("1110", "purchased_places", "2024-01", "12"),
                ("1110", "purchased_places", "2024-02", "tolv"),
            ],
            "V.csv:3: value 'tolv' is not a number",
        ),
        (
            [("org_unit", "measure", "period", "value", "comment")],
            "V.csv:1: unknown column(s) comment",
        ),
        (
            [("org_unit", "measure", "period", "value"), ("1110", "places", "2024-01", "12")],
            "V.csv:2: unknown measure 'places'",
        ),
        (
            [
                ("org_unit", "measure", "period", "value"),
                ("1110", "purchased_places", "2024-13", "1"),
            ],
            "V.csv:2: bad period '2024-13', expected YYYY-MM",
        ),
        (
            [
                ("org_unit", "measure", "period", "value"),
                ("1110", "purchased_places", "2024-01", "1"),
                ("1110", "purchased_places", "2024-01", "2"),
            ],
            "V.csv:3: duplicate row for 1110/purchased_places/2024-01 (first on line 2)",
        ),
    ],
)
def test_bad_volumes_name_file_and_line_exit_2_and_write_nothing(
    rows: list[Sequence[object]],
    message: str,
    volume_files: dict[str, Path],
    write_csv: WriteCsv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    volumes = write_csv("V.csv", rows)
    out, effects = tmp_path / "F.csv", tmp_path / "E.csv"
    args = volume_args(volume_files, out, "--volumes", str(volumes), "--effects-out", str(effects))
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not out.exists() and not effects.exists()


def test_bad_volume_plan_names_file_and_line(
    volume_files: dict[str, Path],
    write_csv: WriteCsv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = write_csv(
        "P.csv",
        [("org_unit", "measure", "year", "annual"), ("1110", "purchased_places", "24", "120")],
    )
    out = tmp_path / "F.csv"
    args = volume_args(
        volume_files,
        out,
        "--volumes",
        str(volume_files["volumes"]),
        "--volume-plan",
        str(plan),
    )
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 2
    assert "P.csv:2: bad year '24', expected YYYY" in err
    assert not out.exists()


@pytest.mark.parametrize("option", ["--effects-out", "--volume-plan"])
def test_volume_options_without_volumes_are_a_usage_error(
    option: str,
    volume_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "F.csv"
    value = str(tmp_path / "E.csv") if option == "--effects-out" else str(volume_files["plan"])
    code, _, err = run(volume_args(volume_files, out, option, value), monkeypatch, capsys)
    assert code == 2
    assert f"{option} needs --volumes V.csv" in err
    assert not out.exists() and not (tmp_path / "E.csv").exists()


def test_volumes_with_the_budget_model_are_a_usage_error(
    volume_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "F.csv"
    args = volume_args(
        volume_files, out, "--volumes", str(volume_files["volumes"]), "--model", "budget"
    )
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 2
    assert "--volumes cannot be combined with --model budget" in err
    assert not out.exists()
