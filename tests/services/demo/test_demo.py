"""``budgetvakt demo`` end to end: a real embedded broker and a real worker process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.domain import DomainConfig
from core.swedish import MONTH_NAMES_SV, format_mnkr, format_number_sv
from services.demo.run import (
    AvdelningRow,
    Checkpoint,
    ForecastFigures,
    caught_line,
    forecasts_from_samples,
    print_checkpoint,
    render_table,
)
from services.demo.scenario import Scenario, avdelning_of
from services.processes.scrape import parse_samples, sum_metric

NUMBER = r"\u2212?\d{1,3}(?: \d{3})*,\d"
# Numbers separated by spaces, or by the en dash of an interval ("1 051,3–1 094,5").
ROW = re.compile(rf"\((AO|LSS|IFO|VON)\)\s+((?:{NUMBER}[\s\u2013]*)+)$")
FORECAST_HEADINGS = ("Prognos helår", "80 %-intervall", "Prognos avvikelse")
CAUGHT = re.compile(
    rf"Underskottet syntes i prognosen (?:redan|först) i (\w+): prognos ({NUMBER}) mnkr "
    rf"för nämnden \(utfall vid årets slut ({NUMBER}) mnkr\)"
)


def _mnkr(text: str) -> float:
    return float(text.replace("\u2212", "-").replace(" ", "").replace(",", "."))


def _demo_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"COLUMNS": "200", "BUDGETVAKT_DATA_DIR": str(tmp_path), "NO_COLOR": "1"})
    env.pop("BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS", None)
    return env


def _tables(output: str) -> dict[str, dict[str, list[str]]]:
    """Rows per printed checkpoint: {"december": {"AO": [budget, periodised, utfall, …]}}."""
    tables: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in output.splitlines():
        heading = re.search(r"utfall t\.o\.m\. (\w+) (\d{4})", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
            continue
        match = ROW.search(line.rstrip())
        if match and current is not None:
            current[match.group(1)] = re.findall(NUMBER, match.group(2))
    return tables


def _port_closed(port: int) -> bool:
    """Nothing listens on the loopback port any more (connection refused)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.integration
def test_demo_prints_the_scenarios_totals_and_stops_what_it_started(
    tmp_path: Path, scenario: Scenario, domain: DomainConfig
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "services", "demo", "--seed", "2024"],
        env=_demo_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=280,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    tables = _tables(proc.stdout)
    assert list(tables) == ["mars", "april", "augusti", "december"], proc.stdout[-3000:]

    year = scenario.years[-1]
    budget: dict[str, int] = {}
    for (unit, _), annual in scenario.cost_budget(year).items():
        avd = avdelning_of(domain, unit)
        budget[avd] = budget.get(avd, 0) + annual
    actual: dict[str, int] = {}
    for unit, amount in scenario.actual_by_unit(year).items():
        avd = avdelning_of(domain, unit)
        actual[avd] = actual.get(avd, 0) + amount
    december = tables["december"]
    for avd in ("AO", "LSS", "IFO"):
        budget_full_year, periodised, utfall, deviation, _pct, *_forecast = december[avd]
        assert budget_full_year == format_mnkr(budget[avd])
        assert periodised == format_mnkr(budget[avd])
        assert utfall == format_mnkr(actual[avd])
        assert deviation == format_mnkr(budget[avd] - actual[avd])
    assert december["VON"][2] == format_mnkr(sum(actual.values()))

    # The forecast columns at every checkpoint, for every avdelning and the nämnd:
    # forecast, interval low, interval high, forecast deviation; the forecast inside its interval
    # and the deviation equal to budget − forecast.
    assert proc.stdout.count("Prognos avvikelse") == 4, proc.stdout[-3000:]
    for heading in FORECAST_HEADINGS:
        assert heading in proc.stdout
    for name, table in tables.items():
        assert set(table) == {"AO", "LSS", "IFO", "VON"}, name
        for avd, cells in table.items():
            assert len(cells) == 9, (name, avd, cells)
            full_budget, forecast, low, high, forecast_deviation = (
                _mnkr(c) for c in (cells[0], *cells[5:])
            )
            assert low <= forecast <= high, (name, avd, cells)
            assert abs(full_budget - forecast - forecast_deviation) <= 0.15, (name, avd)
    # In December the forecast is the year's actual, with nothing left to be uncertain about.
    for avd, cells in december.items():
        actual_mnkr = _mnkr(cells[2])
        assert all(abs(_mnkr(c) - actual_mnkr) <= 0.1 for c in cells[5:8]), (avd, cells)
        assert abs(_mnkr(cells[8]) - _mnkr(cells[3])) <= 0.1, (avd, cells)
    # The story: the nämnd's forecast shows the deficit in April, and the closing line says when
    # the forecast caught it (no later than the delårsrapport in August) against the outcome.
    assert tables["april"]["VON"][8].startswith("\u2212"), tables["april"]["VON"]
    caught = CAUGHT.search(proc.stdout)
    assert caught, proc.stdout[-2000:]
    assert caught.group(1) in MONTH_NAMES_SV[:8]
    assert caught.group(2).startswith("\u2212")
    assert caught.group(3) == format_mnkr(sum(budget.values()) - sum(actual.values()))
    hours = re.findall(r"Hemtjänsttimmar t\.o\.m\. månaden: ([\d ]+) h mot plan ([\d ]+) h", output)
    assert len(hours) == 4
    year_hours = [
        v
        for v in scenario.volumes
        if v["measure"] == "home_care_hours" and v["period"][:4] == "2024"
    ]
    assert hours[-1][0] == format_number_sv(sum(v["value"] for v in year_hours), 0)
    assert hours[-1][1] == format_number_sv(346_000, 0)
    # The story: äldreomsorgen is over its periodised budget at the March forecast already.
    assert tables["mars"]["AO"][3].startswith("\u2212")
    assert "Signal t.o.m. april" in proc.stdout and "Äldreomsorg" in proc.stdout

    # Everything the demo started is stopped: the broker and the worker's web port are gone.
    bootstrap = re.search(r"Broker \(Tansu\) på (\S+)", proc.stdout)
    worker_port = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", proc.stdout)
    assert bootstrap and worker_port
    assert _port_closed(int(bootstrap.group(1).rsplit(":", 1)[1]))
    assert _port_closed(int(worker_port.group(1)))
    assert "Worker stoppad (kod 0)" in proc.stdout
    # The follow-up went through budgetvakt web's API after the August close; its server stops.
    web = re.search(r"under demon: http://127\.0\.0\.1:(\d+)/perioder/(\d{4}-08)/noder/AO", output)
    assert web, proc.stdout[-3000:]
    assert "controllern har godkänt delårsprognosen (AO, LSS, IFO, VOF, VON)" in output
    assert _port_closed(int(web.group(1)))


@pytest.mark.integration
def test_interrupted_demo_cleans_up(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "services", "demo"],
        env=_demo_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    bootstrap = worker_port = None
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if found := re.search(r"Broker \(Tansu\) på (\S+)", line):
                bootstrap = found.group(1)
            if found := re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line):
                worker_port = int(found.group(1))
                proc.send_signal(signal.SIGINT)
                break
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + rest
    assert bootstrap and worker_port, output
    assert proc.returncode == 130, output
    assert "Avbrutet" in output
    assert _port_closed(int(bootstrap.rsplit(":", 1)[1]))
    assert _port_closed(worker_port)


def test_report_rows_come_from_the_metrics(scenario: Scenario, domain: DomainConfig) -> None:
    from services.demo.run import avdelning_rows

    text = "\n".join(
        [
            "# TYPE budgetvakt_actual_ytd_sek gauge",
            'budgetvakt_actual_ytd_sek{org_unit="AO",category="substitutes",year="2024",'
            'level="avdelning"} 1.5e6',
            'budgetvakt_actual_ytd_sek{org_unit="AO",category="revenue_fees",year="2024",'
            'level="avdelning"} -0.5e6',
            'budgetvakt_actual_ytd_sek{org_unit="AO",category="salaries",year="2023",'
            'level="avdelning"} 9e9',
            'budgetvakt_actual_ytd_sek{org_unit="1110",category="salaries",year="2024",'
            'level="enhet"} 7e9',
            "# TYPE budgetvakt_budget_full_year_sek gauge",
            'budgetvakt_budget_full_year_sek{org_unit="LSS",category="salaries",year="2024",'
            'level="avdelning"} 2e6',
        ]
    )
    samples = parse_samples(text)
    assert sum_metric(samples, "budgetvakt_actual_ytd_sek", org_unit="AO", year="2024") == 1e6
    rows = {r.id: r for r in avdelning_rows(samples, scenario, domain, 2024, 3)}
    assert rows["AO"].actual_ytd == 1e6
    assert rows["LSS"].budget_full_year == 2e6
    assert rows["IFO"].actual_ytd == 0
    assert (
        0
        < rows["AO"].budget_ytd
        < sum(a for (u, _), a in scenario.cost_budget(2024).items() if u.startswith("1"))
    )


def test_table_uses_swedish_format() -> None:
    from rich.console import Console

    rows = [AvdelningRow("AO", "Äldreomsorg", 590.5e6, 200e6, 206.04e6)]
    console = Console(width=160, record=True, color_system=None)
    console.print(render_table(rows, 2024, 4, "Vård- och omsorgsnämnden"))
    text = console.export_text()
    assert "utfall t.o.m. april 2024" in text
    assert _tables(text)["april"]["AO"] == ["590,5", "200,0", "206,0", "\u22126,0", "\u22123,0"]


def test_forecasts_come_from_the_workers_total_gauges() -> None:
    lines = []
    for unit, level, full, low, high, deviation in (
        ("VON", "namnd", 1100.0, 1090.0, 1110.0, -50.0),
        ("AO", "avdelning", 600.0, 595.0, 605.0, -10.0),
    ):
        for name, value in (
            ("budgetvakt_forecast_full_year_sek", full),
            ("budgetvakt_forecast_low_sek", low),
            ("budgetvakt_forecast_high_sek", high),
            ("budgetvakt_forecast_deviation_sek", deviation),
        ):
            for category, factor in (("total", 1.0), ("salaries", 0.5)):
                lines.append(
                    f'{name}{{org_unit="{unit}",category="{category}",year="2024",'
                    f'level="{level}"}} {value * factor}'
                )
    lines.append(
        'budgetvakt_forecast_full_year_sek{org_unit="LSS",category="total",year="2023",'
        'level="avdelning"} 1'
    )
    figures = forecasts_from_samples(parse_samples("\n".join(lines)), 2024)
    assert set(figures) == {"VON", "AO"}
    assert figures["VON"] == ForecastFigures(1050.0, 1100.0, 1090.0, 1110.0)
    assert figures["VON"].deviation == -50.0
    assert figures["AO"].overrun_certain


def _checkpoint(month: int, budget: float, forecast: float, low: float, high: float) -> Checkpoint:
    return Checkpoint(2024, month, [], {"VON": ForecastFigures(budget, forecast, low, high)})


def test_caught_line_names_the_first_material_deficit_and_when_it_was_certain() -> None:
    checkpoints = [
        _checkpoint(3, 1000e6, 1005e6, 990e6, 1020e6),  # under 1 % of the budget
        _checkpoint(4, 1000e6, 1030e6, 995e6, 1065e6),  # material, the interval spans budget
        _checkpoint(8, 1000e6, 1040e6, 1030e6, 1050e6),  # the whole interval above budget
        _checkpoint(12, 1000e6, 1039.9e6, 1039.9e6, 1039.9e6),
    ]
    assert caught_line(checkpoints, "VON") == (
        "Underskottet syntes i prognosen redan i april: prognos \u221230,0 mnkr för nämnden "
        "(utfall vid årets slut \u221239,9 mnkr); hela 80 %-intervallet låg över budget "
        "från augusti."
    )
    only_december = [*(_checkpoint(m, 1000e6, 1005e6, 990e6, 1020e6) for m in (3, 4, 8)),
                     _checkpoint(12, 1000e6, 1030e6, 1030e6, 1030e6)]  # fmt: skip
    assert caught_line(only_december, "VON") == (
        "Underskottet syntes i prognosen först i december: prognos \u221230,0 mnkr för nämnden "
        "(utfall vid årets slut \u221230,0 mnkr)."
    )
    within_budget = [_checkpoint(m, 1000e6, 1005e6, 990e6, 1020e6) for m in (3, 4, 8, 12)]
    assert caught_line(within_budget, "VON") == (
        "Prognosen visade inget tydligt underskott för nämnden "
        "(utfall vid årets slut \u22125,0 mnkr)."
    )


def test_forecast_columns_in_one_table_or_two_when_the_terminal_is_narrow() -> None:
    from rich.console import Console

    rows = [AvdelningRow("AO", "Äldreomsorg", 590.5e6, 200e6, 206.04e6)]
    forecasts = {
        "AO": ForecastFigures(590.5e6, 612.6e6, 597.8e6, 627.4e6),
        "VON": ForecastFigures(590.5e6, 612.6e6, 597.8e6, 627.4e6),
    }
    wide = Console(width=200, record=True, color_system=None)
    print_checkpoint(wide, rows, 2024, 4, "Vård- och omsorgsnämnden", "VON", forecasts)
    text = wide.export_text()
    for heading in FORECAST_HEADINGS:
        assert heading in text
    assert _tables(text)["april"]["AO"] == [
        "590,5", "200,0", "206,0", "\u22126,0", "\u22123,0", "612,6", "597,8", "627,4", "\u221222,1"
    ]  # fmt: skip
    assert "597,8\u2013627,4" in text

    narrow = Console(width=80, record=True, color_system=None)
    print_checkpoint(narrow, rows, 2024, 4, "Vård- och omsorgsnämnden", "VON", forecasts)
    text = narrow.export_text()
    assert "utfall t.o.m. april 2024 (mnkr)" in text
    assert "prognos helår t.o.m. april 2024 (mnkr)" in text
    assert "597,8\u2013627,4" in text and "\u221222,1" in text
    assert max(len(line) for line in text.splitlines()) <= 80
