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

from forecasts.domain import DomainConfig
from services.demo import AvdelningRow, parse_samples, render_table, sum_metric
from services.scenario import Scenario, avdelning_of, format_mnkr, format_number_sv

NUMBER = r"\u2212?\d{1,3}(?: \d{3})*,\d"
ROW = re.compile(rf"\((AO|LSS|IFO|VON)\)\s+((?:{NUMBER}\s*)+)$")


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
    tmp_path: Path, scenario: Scenario, scenario_domain: DomainConfig
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
        avd = avdelning_of(scenario_domain, unit)
        budget[avd] = budget.get(avd, 0) + annual
    actual: dict[str, int] = {}
    for unit, amount in scenario.actual_by_unit(year).items():
        avd = avdelning_of(scenario_domain, unit)
        actual[avd] = actual.get(avd, 0) + amount
    december = tables["december"]
    for avd in ("AO", "LSS", "IFO"):
        budget_full_year, periodised, utfall, deviation, _pct = december[avd]
        assert budget_full_year == format_mnkr(budget[avd])
        assert periodised == format_mnkr(budget[avd])
        assert utfall == format_mnkr(actual[avd])
        assert deviation == format_mnkr(budget[avd] - actual[avd])
    assert december["VON"][2] == format_mnkr(sum(actual.values()))
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


@pytest.mark.slow
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


def test_report_rows_come_from_the_metrics(
    scenario: Scenario, scenario_domain: DomainConfig
) -> None:
    from services.demo import avdelning_rows

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
    rows = {r.id: r for r in avdelning_rows(samples, scenario, scenario_domain, 2024, 3)}
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
