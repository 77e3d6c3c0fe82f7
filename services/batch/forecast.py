"""``budgetvakt forecast`` and ``budgetvakt backtest``: full-year forecasts from CSV files.

A.csv (actuals): ``org_unit,category,period,amount_sek`` (period ``YYYY-MM``; decimal point, or a
Swedish decimal comma in a quoted field or a ``;``-separated file).
B.csv (budget): ``org_unit,category,year,annual_sek`` with optional ``m01`` … ``m12``; without
them the annual budget is split by the category's periodisation profile (config/categories.yaml).
V.csv (volumes, optional): ``org_unit,measure,period,value``, parsed like A.csv; the measure must
be one of config/categories.yaml. P.csv (volume plan, optional): ``org_unit,measure,year,annual``
with optional ``m01`` … ``m12``. A category linked to a measure (``volume_measure``) that has
volumes for its org_unit is forecast as volume × unit cost; ``--effects-out`` splits its deviation
into a volume and a price/productivity effect.
Bad input stops with the file and line in the message, exit code 2 and no output file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

from contract.pii import contains_identity_number, quote_safely
from contract.records import MAX_AMOUNT_SEK, MAX_VOLUME
from contract.strict_json import pii_reason
from core.errors import UserError
from core.period import Period, PeriodError, parse_period_option
from core.swedish import parse_number_sv

if TYPE_CHECKING:
    from core.domain import DomainConfig
    from forecasts.series import SeriesForecast

ACTUALS_COLUMNS = ("org_unit", "category", "period", "amount_sek")
BUDGET_COLUMNS = ("org_unit", "category", "year", "annual_sek")
VOLUME_COLUMNS = ("org_unit", "measure", "period", "value")
VOLUME_PLAN_COLUMNS = ("org_unit", "measure", "year", "annual")
EFFECTS_COLUMNS = (
    "org_unit",
    "category",
    "measure",
    "year",
    "as_of",
    "forecast_volume",
    "planned_volume",
    "budget_unit_price_sek",
    "forecast_unit_cost_sek",
    "forecast_full_year_sek",
    "budget_full_year_sek",
    "deviation_sek",
    "volume_effect_sek",
    "price_effect_sek",
)
BUDGET_MONTHS = tuple(f"m{i:02d}" for i in range(1, 13))
OUTPUT_COLUMNS = (
    "org_unit",
    "category",
    "year",
    "as_of",
    "ytd_actual_sek",
    "forecast_full_year_sek",
    "forecast_low_sek",
    "forecast_high_sek",
    "budget_full_year_sek",
    "deviation_sek",
    "model",
)
FORECAST_MODELS = ("auto", "runrate", "seasonal", "budget", "ets", "prophet")
BACKTEST_MODELS = ("auto", "runrate", "lastyear", "seasonal", "ses", "theta", "ets", "prophet")
SeriesKey = tuple[str, str]


@dataclass
class MonthlySeries:
    """A file of monthly figures: (org_unit, category or measure) → (year, month) → value."""

    path: Path
    series: dict[SeriesKey, dict[tuple[int, int], float]] = field(default_factory=dict)


@dataclass
class AnnualLines:
    """A file of yearly lines: (org_unit, category or measure) → year → 12 monthly values."""

    path: Path
    series: dict[SeriesKey, dict[int, list[float]]] = field(default_factory=dict)


Actuals = MonthlySeries
Volumes = MonthlySeries
Budgets = AnnualLines
VolumePlan = AnnualLines


def _rows(
    path: Path, required: Sequence[str], optional: Sequence[str] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line number, row)`` of a CSV file after checking its header."""
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise UserError(f"{path}:1: empty file, expected the header {','.join(required)}")
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as err:
        raise UserError(f"{path}:1: not valid CSV: {err}") from None
    if contains_identity_number(header):
        raise UserError(f"{path}:1: {pii_reason('a column name')}")
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in required and c not in optional]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            shown = ", ".join(quote_safely(c).strip("'\"") for c in unknown[:20])
            parts.append(f"unknown column(s) {shown}")
        raise UserError(
            f"{path}:1: {'; '.join(parts)}; expected {','.join([*required, *optional])}"
        )
    dupes = {h for h in header if header.count(h) > 1}
    if dupes:
        raise UserError(f"{path}:1: duplicate column(s) {', '.join(sorted(dupes))}")
    line_no = 1
    try:
        for line_no, fields in enumerate(reader, start=2):
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise UserError(
                    f"{path}:{line_no}: {len(fields)} fields, the header has {len(header)}"
                )
            row = {h: f.strip() for h, f in zip(header, fields, strict=True)}
            # Nothing resembling a personnummer may reach a forecast file or a message.
            carrier = next((h for h, f in row.items() if contains_identity_number(f)), None)
            if carrier is not None:
                raise UserError(f"{path}:{line_no}: {pii_reason(f'column {carrier!r}')}")
            yield line_no, row
    except csv.Error as err:
        raise UserError(f"{path}:{line_no + 1}: not valid CSV: {err}") from None


def _require(path: Path, line: int, row: dict[str, str], column: str) -> str:
    value = row[column]
    if not value:
        raise UserError(f"{path}:{line}: empty {column}")
    return value


def _read_monthly(
    path: Path,
    columns: Sequence[str],
    value_column: str,
    series_name: Callable[[int, dict[str, str]], str],
) -> MonthlySeries:
    out = MonthlySeries(path)
    seen: dict[tuple[str, str, tuple[int, int]], int] = {}
    for line, row in _rows(path, columns):
        unit = _require(path, line, row, "org_unit")
        name = series_name(line, row)
        try:
            parsed = Period.parse(row["period"])
        except PeriodError as err:
            raise UserError(f"{path}:{line}: {err}") from None
        period = (parsed.year, parsed.month)
        value = _number(path, line, row, value_column)
        key = (unit, name, period)
        if key in seen:
            raise UserError(
                f"{path}:{line}: duplicate row for {unit}/{name}/"
                f"{period[0]}-{period[1]:02d} (first on line {seen[key]})"
            )
        seen[key] = line
        out.series.setdefault((unit, name), {})[period] = value
    return out


def read_actuals(path: Path) -> Actuals:
    return _read_monthly(
        path,
        ACTUALS_COLUMNS,
        "amount_sek",
        lambda line, row: _require(path, line, row, "category"),
    )


def _year(path: Path, line: int, text: str) -> int:
    if not re.fullmatch(r"\d{4}", text):
        raise UserError(f"{path}:{line}: bad year {quote_safely(text)}, expected YYYY")
    return int(text)


#: Columns that hold volumes (0 ≤ x ≤ MAX_VOLUME); every other number is an amount in SEK
#: (|x| ≤ MAX_AMOUNT_SEK), the bounds of the event contract.
VOLUME_VALUE_COLUMNS = frozenset({"value", "annual"})


def _number(
    path: Path, line: int, row: dict[str, str], column: str, volume: bool | None = None
) -> float:
    try:
        value = parse_number_sv(row[column])
    except ValueError:
        raise UserError(
            f"{path}:{line}: {column} {quote_safely(row[column])} is not a number"
        ) from None
    if volume is None:
        volume = column in VOLUME_VALUE_COLUMNS
    if volume and not 0 <= value <= MAX_VOLUME:
        raise UserError(f"{path}:{line}: {column} must be between 0 and {MAX_VOLUME:.0f}")
    if not volume and not -MAX_AMOUNT_SEK <= value <= MAX_AMOUNT_SEK:
        raise UserError(
            f"{path}:{line}: {column} must be between {-MAX_AMOUNT_SEK:.0f} and "
            f"{MAX_AMOUNT_SEK:.0f} kr"
        )
    return value


def _monthly(
    path: Path,
    line: int,
    row: dict[str, str],
    annual: float,
    annual_column: str,
    weights: Sequence[float],
    what: str,
) -> list[float]:
    """m01…m12 when given (all twelve, summing to the annual figure), else annual × weights."""
    given = [m for m in BUDGET_MONTHS if m in row and row[m] != ""]
    if given and len(given) != 12:
        lacking = [m for m in BUDGET_MONTHS if m not in given]
        raise UserError(f"{path}:{line}: monthly {what} incomplete, missing {', '.join(lacking)}")
    if not given:
        total = sum(weights)
        return [annual * w / total for w in weights]
    months = [_number(path, line, row, m, volume=what == "plan") for m in BUDGET_MONTHS]
    if abs(sum(months) - annual) > max(1.0, 1e-6 * abs(annual)):
        raise UserError(
            f"{path}:{line}: m01…m12 sum to {sum(months):.2f}, {annual_column} is {annual:.2f}"
        )
    return months


def _read_annual(
    path: Path,
    columns: Sequence[str],
    annual_column: str,
    series_name: Callable[[int, dict[str, str]], str],
    weights: Callable[[str], Sequence[float]],
    what: str,
) -> AnnualLines:
    out = AnnualLines(path)
    seen: dict[tuple[str, str, int], int] = {}
    for line, row in _rows(path, columns, BUDGET_MONTHS):
        unit = _require(path, line, row, "org_unit")
        name = series_name(line, row)
        year = _year(path, line, row["year"])
        annual = _number(path, line, row, annual_column)
        months = _monthly(path, line, row, annual, annual_column, weights(name), what)
        key = (unit, name, year)
        if key in seen:
            raise UserError(
                f"{path}:{line}: duplicate {what} for {unit}/{name}/{year} "
                f"(first on line {seen[key]})"
            )
        seen[key] = line
        out.series.setdefault((unit, name), {})[year] = months
    return out


def read_budgets(path: Path, profiles: dict[str, tuple[float, ...]]) -> Budgets:
    return _read_annual(
        path,
        BUDGET_COLUMNS,
        "annual_sek",
        lambda line, row: _require(path, line, row, "category"),
        lambda category: profiles.get(category, (1.0,) * 12),
        "budget",
    )


def _known_measure(path: Path, line: int, row: dict[str, str], measures: Sequence[str]) -> str:
    measure = _require(path, line, row, "measure")
    if measure not in measures:
        raise UserError(
            f"{path}:{line}: unknown measure {quote_safely(measure)}; config/categories.yaml has "
            f"{', '.join(sorted(measures))}"
        )
    return measure


def read_volumes(path: Path, measures: Sequence[str]) -> Volumes:
    return _read_monthly(
        path,
        VOLUME_COLUMNS,
        "value",
        lambda line, row: _known_measure(path, line, row, measures),
    )


def read_volume_plan(path: Path, measures: Sequence[str]) -> VolumePlan:
    return _read_annual(
        path,
        VOLUME_PLAN_COLUMNS,
        "annual",
        lambda line, row: _known_measure(path, line, row, measures),
        lambda _measure: (1.0,) * 12,
        "plan",
    )


def _load_config() -> DomainConfig:
    from core.settings import Settings
    from services.config.domain import load_domain_config

    return load_domain_config(Settings().config_dir)


def _load_profiles() -> dict[str, tuple[float, ...]]:
    return {cid: cat.profile for cid, cat in _load_config().categories.items()}


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return str(round(value))


def _require_directory(path: Path) -> Path:
    """The directory ``path`` would be written to; a user error when it does not exist."""
    target_dir = path.parent if str(path.parent) else Path(".")
    if not target_dir.is_dir():
        raise UserError(f"{path}: directory {target_dir} does not exist")
    return target_dir


def _history(entries: dict[tuple[int, int], float]) -> dict[str, float]:
    """(year, month) → value as the forecast engine takes it: ``"YYYY-MM"`` → value."""
    return {f"{y}-{m:02d}": v for (y, m), v in entries.items()}


def _has_data_to(entries: dict[tuple[int, int], float], year: int, month: int) -> bool:
    """Whether ``entries`` hold a month of ``year`` up to ``month``."""
    return any(y == year and m <= month for (y, m) in entries)


def _annual_total(lines: AnnualLines | None, key: SeriesKey, year: int) -> float | None:
    months = lines.series.get(key, {}).get(year) if lines is not None else None
    return sum(months) if months is not None else None


def write_atomically(path: Path, rows: Sequence[Sequence[str]], header: Sequence[str]) -> None:
    """Write a CSV next to ``path`` and rename it into place: all or nothing."""
    target_dir = _require_directory(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=target_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_forecast(
    actuals_path: Path,
    budget_path: Path | None,
    as_of_text: str,
    model: str,
    out_path: Path,
    processes: int = 1,
    volumes_path: Path | None = None,
    volume_plan_path: Path | None = None,
    effects_path: Path | None = None,
) -> tuple[int, list[SeriesKey], list[str]]:
    """Read, forecast, write. Returns ``(rows written, series without data, notes)``."""
    if model not in FORECAST_MODELS:
        raise UserError(f"--model {model!r}: choose one of {', '.join(FORECAST_MODELS)}")
    if volumes_path is None:
        for option, given in (("--effects-out", effects_path), ("--volume-plan", volume_plan_path)):
            if given is not None:
                raise UserError(f"{option} needs --volumes V.csv (org_unit,measure,period,value)")
    elif model == "budget":
        raise UserError(
            "--volumes cannot be combined with --model budget: the budget model has no "
            "volume forecast; use auto, runrate, seasonal, ets or prophet"
        )
    # Both targets are checked before any work, so neither file is written when one cannot be.
    for target in (out_path, effects_path):
        if target is not None:
            _require_directory(target)
    year, month = parse_period_option("--as-of", as_of_text)
    config = _load_config()
    profiles = {cid: cat.profile for cid, cat in config.categories.items()}
    actuals = read_actuals(actuals_path)
    budgets = read_budgets(budget_path, profiles) if budget_path is not None else None
    measures = list(config.measures)
    volumes = read_volumes(volumes_path, measures) if volumes_path is not None else None
    plan = read_volume_plan(volume_plan_path, measures) if volume_plan_path is not None else None

    from core.domain import Category
    from forecasts.series import forecast_many

    keys = sorted(set(actuals.series) | (set(budgets.series) if budgets is not None else set()))
    with_data: list[SeriesKey] = []
    no_data: list[SeriesKey] = []
    for key in keys:
        if _has_data_to(actuals.series.get(key, {}), year, month):
            with_data.append(key)
        else:
            no_data.append(key)
    histories = [_history(actuals.series[k]) for k in with_data]
    budget_rows = [
        budgets.series.get(k, {}).get(year) if budgets is not None else None for k in with_data
    ]
    categories: list[Category | None] = [
        Category(k[1], k[1], "cost", profiles[k[1]]) if k[1] in profiles else None
        for k in with_data
    ]
    results = (
        forecast_many(histories, year, month, budget_rows, model, categories, processes=processes)
        if with_data
        else []
    )
    by_key: dict[SeriesKey, _Forecast] = dict(zip(with_data, results, strict=True))
    as_of = f"{year}-{month:02d}"
    notes: list[str] = []
    effects_rows: list[list[str]] = []
    if volumes is not None:
        linked = _volume_linked(with_data, config, volumes, year, month, as_of, notes)
        by_volume = _volume_forecasts(linked, actuals, volumes, year, month, model)
        by_key.update(by_volume)
        for key, measure in linked:
            effects_rows.append(
                _effects_row(
                    key,
                    measure,
                    year,
                    as_of,
                    by_volume[key],
                    _annual_total(budgets, key, year),
                    _annual_total(plan, (key[0], measure), year),
                    notes,
                )
            )
    rows: list[list[str]] = []
    for key in keys:
        budget_total = _annual_total(budgets, key, year)
        fc = by_key.get(key)
        if fc is None:
            rows.append(
                [
                    key[0],
                    key[1],
                    str(year),
                    as_of,
                    "",
                    "",
                    "",
                    "",
                    _fmt(budget_total),
                    "",
                    "no_data",
                ]
            )
            continue
        deviation = budget_total - fc.full_year if budget_total is not None else None
        rows.append(
            [
                key[0],
                key[1],
                str(year),
                as_of,
                _fmt(fc.ytd),
                _fmt(fc.full_year),
                _fmt(fc.low),
                _fmt(fc.high),
                _fmt(budget_total),
                _fmt(deviation),
                fc.model,
            ]
        )
    write_atomically(out_path, rows, OUTPUT_COLUMNS)
    if effects_path is not None:
        write_atomically(effects_path, effects_rows, EFFECTS_COLUMNS)
    return len(rows), no_data, notes


@dataclass(frozen=True)
class _VolumeForecast:
    """A cost forecast made as volume × unit cost, with the volume forecast behind it."""

    ytd: float
    full_year: float
    low: float
    high: float
    model: str
    volume_full_year: float


_Forecast = Union["SeriesForecast", _VolumeForecast]


def _volume_linked(
    keys: Sequence[SeriesKey],
    config: DomainConfig,
    volumes: Volumes,
    year: int,
    month: int,
    as_of: str,
    notes: list[str],
) -> list[tuple[SeriesKey, str]]:
    """Series whose category names a volume measure that has volumes up to the as-of month."""
    linked = []
    for key in keys:
        category = config.categories.get(key[1])
        measure = category.volume_measure if category is not None else None
        if measure is None:
            continue
        if _has_data_to(volumes.series.get((key[0], measure), {}), year, month):
            linked.append((key, measure))
        else:
            notes.append(
                f"no volumes: {key[0]}/{measure} has none up to {as_of}; "
                f"{key[0]}/{key[1]} forecast from its cost alone"
            )
    return linked


def _volume_forecasts(
    linked: Sequence[tuple[SeriesKey, str]],
    actuals: Actuals,
    volumes: Volumes,
    year: int,
    month: int,
    model: str,
) -> dict[SeriesKey, _VolumeForecast]:
    if not linked:
        return {}
    from forecasts.series import build_panel
    from forecasts.volume import forecast_volume_cost

    costs = [_history(actuals.series[key]) for key, _ in linked]
    vols = [_history(volumes.series[(key[0], measure)]) for key, measure in linked]
    # One panel so cost and volume rows share the calendar.
    panel, _first_year = build_panel(costs + vols, year, month)
    n = len(linked)
    cost_fc, vol_fc, _unit_path = forecast_volume_cost(panel[:n], panel[n:], month, model)
    return {
        key: _VolumeForecast(
            ytd=float(cost_fc.ytd[i]),
            full_year=float(cost_fc.full_year[i]),
            low=float(cost_fc.low[i]),
            high=float(cost_fc.high[i]),
            model=str(cost_fc.model[i]),
            volume_full_year=float(vol_fc.full_year[i]),
        )
        for i, (key, _) in enumerate(linked)
    }


def _fmt_quantity(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.2f}"


def _effects_row(
    key: SeriesKey,
    measure: str,
    year: int,
    as_of: str,
    fc: _VolumeForecast,
    budget_total: float | None,
    planned_volume: float | None,
    notes: list[str],
) -> list[str]:
    from forecasts.volume import split_deviation

    forecast_volume = fc.volume_full_year
    unit_cost = fc.full_year / forecast_volume if forecast_volume else None
    deviation = budget_total - fc.full_year if budget_total is not None else None
    unit_price = volume_effect = price_effect = None
    where = f"{key[0]}/{key[1]}"
    if planned_volume is None:
        notes.append(f"no volume plan: {key[0]}/{measure} {year}; effects of {where} left empty")
    elif planned_volume == 0:
        notes.append(f"planned volume 0: {key[0]}/{measure} {year}; effects of {where} left empty")
    elif budget_total is None:
        notes.append(f"no budget: {where} {year}; effects left empty")
    else:
        split = split_deviation(fc.full_year, forecast_volume, budget_total, planned_volume)
        unit_price = split.budget_unit_price
        # Rounded so that the two effects add up exactly to the rounded deviation.
        volume_effect = float(round(split.volume_effect))
        price_effect = float(round(split.total_deviation)) - volume_effect
    return [
        key[0],
        key[1],
        measure,
        str(year),
        as_of,
        _fmt_quantity(forecast_volume),
        _fmt_quantity(planned_volume),
        _fmt_quantity(unit_price),
        _fmt_quantity(unit_cost),
        _fmt(fc.full_year),
        _fmt(budget_total),
        _fmt(deviation),
        _fmt(volume_effect),
        _fmt(price_effect),
    ]


def backtest_panel_from_actuals(
    actuals: Actuals, budgets: Budgets | None
) -> tuple[list[SeriesKey], object, object]:
    """Right-align every series on its last full calendar year (the held-out year)."""
    import numpy as np

    keys: list[SeriesKey] = []
    rows: list[np.ndarray] = []
    bud_rows: list[np.ndarray] = []
    n_years = 11
    for key, entries in sorted(actuals.series.items()):
        years = sorted({y for y, _ in entries})
        full = [y for y in years if all((y, m) in entries for m in range(1, 13))]
        if not full:
            continue
        last = full[-1]
        first_year, first_month = min(entries)
        row = np.full(n_years * 12, np.nan)
        bud = np.full((n_years, 12), np.nan)
        for k in range(n_years):
            y = last - (n_years - 1 - k)
            for m in range(1, 13):
                if (y, m) >= (first_year, first_month):
                    row[k * 12 + m - 1] = entries.get((y, m), 0.0)
            if budgets is not None and y in budgets.series.get(key, {}):
                bud[k] = budgets.series[key][y]
        keys.append(key)
        rows.append(row)
        bud_rows.append(bud)
    panel = np.array(rows) if rows else np.zeros((0, n_years * 12))
    bud_panel = np.array(bud_rows) if budgets is not None and bud_rows else None
    return keys, panel, bud_panel


def _parse_cutoffs(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 11:
            raise UserError(f"--cutoffs {text!r}: expected months 1..11, e.g. 4,8,10")
        out.append(int(part))
    return sorted(set(out))


def _parse_models(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in models if m not in BACKTEST_MODELS]
    if bad or not models:
        raise UserError(
            f"--models {text!r}: unknown {', '.join(bad) or '(none)'}; "
            f"choose from {', '.join(BACKTEST_MODELS)}"
        )
    return models


def run_backtest(
    actuals_path: Path,
    cutoffs_text: str,
    models_text: str,
    budget_path: Path | None,
    csv_out: Path | None,
    json_out: Path | None,
    processes: int = 1,
) -> list[dict[str, object]]:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from forecasts.backtest import BASELINES, backtest_panel, eligible

    cutoffs = _parse_cutoffs(cutoffs_text)
    models = _parse_models(models_text)
    for target in (csv_out, json_out):
        if target is not None:
            _require_directory(target)
    profiles = _load_profiles()
    actuals = read_actuals(actuals_path)
    budgets = read_budgets(budget_path, profiles) if budget_path is not None else None
    _keys, panel, bud = backtest_panel_from_actuals(actuals, budgets)
    n_ok = int(eligible(panel).sum()) if len(_keys) else 0  # type: ignore[arg-type]
    if n_ok == 0:
        raise UserError(
            f"{actuals_path}: no series has a full calendar year and two full years before it"
        )
    ordered = list(BASELINES) + [m for m in models if m not in BASELINES]
    per_series = sum(1 for m in ordered if m in ("ets", "prophet"))
    total = len(cutoffs) * per_series * n_ok
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=total < 200) as progress:
        task = progress.add_task("backtest", total=max(total, 1))
        rows, _errors = backtest_panel(
            panel,  # type: ignore[arg-type]
            cutoffs,
            models,
            bud,  # type: ignore[arg-type]
            progress=lambda k: progress.advance(task, k),
            processes=processes,
        )
    table = Table(title=f"Backtest: {n_ok} series, last full year held out")
    for col in ("Cutoff", "Model", "Median APE %", "Mean APE %", "80 % coverage %"):
        table.add_column(col, justify="right")
    records = [r.as_dict() for r in rows]
    for r in rows:
        table.add_row(
            str(r.cutoff),
            r.model,
            f"{r.median_ape_pct:.2f}",
            f"{r.mean_ape_pct:.2f}",
            f"{r.coverage_80_pct:.1f}",
        )
    Console().print(table)
    if csv_out is not None:
        header = list(records[0].keys())
        write_atomically(csv_out, [[str(rec[h]) for h in header] for rec in records], header)
    if json_out is not None:
        tmp = json_out.with_name(f".{json_out.name}.tmp")
        tmp.write_text(json.dumps(records, indent=2), encoding="utf-8")
        os.replace(tmp, json_out)
    sys.stdout.flush()
    return records
