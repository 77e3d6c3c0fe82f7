"""The real chain: two workers' /metrics (WorkerMetrics over state built by the worker's own
validation, aggregation, live-forecast and deviation-rule code), scraped by a real Prometheus
running config/prometheus/rules.yml. Checks that the rules' assumptions about metric names and
labels hold for what the worker really exports, that the per-worker shares add up, and that
Prometheus shows exactly the alerts the worker's rules (config/rules.yaml) fire."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
import yaml

from contract.validation import parse_event
from forecasts.deviations import AlertBook, evaluate
from forecasts.live import OrganisationForecast, forecast_organisation
from services.config.domain import load_domain_config
from services.config.rules import load_rules
from services.processes.supervised import Supervised, free_port, http_ok, wait_until
from streams.aggregation import ActiveState, apply_events, leaf_series, state_key
from streams.forecasting import ForecastStatus
from streams.metrics import CONTENT_TYPE, WorkerMetrics
from tests.observability.fixtures import (
    CONFIG_DIR,
    INFO_RULES_FILE,
    PROMETHEUS_CONFIG,
    RULES_FILE,
    load_yaml,
)

YEAR = 2025
AS_OF = 5
# (partition, enhet, category, monthly actual 2024 and 2025, annual budget 2025)
COSTS = [
    (0, "1110", "salaries", 4_000_000, 4_000_000, 48_000_000),
    # Vikarier 25 % above budget: the substitutes alert must start (pending) on 1110.
    (0, "1110", "substitutes", 500_000, 1_000_000, 9_600_000),
    (0, "1120", "salaries", 3_500_000, 3_600_000, 42_000_000),
    (1, "2110", "salaries", 2_000_000, 2_100_000, 24_000_000),
    (1, "2130", "salaries", 1_000_000, 1_000_000, 12_000_000),
]
HOME_CARE_HOURS = (0, "1110", 15_000, 16_000, 180_000)  # ≈ 6,7 % above plan


def _events(partition: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for p, unit, category, last_year, this_year, budget in COSTS:
        if p != partition:
            continue
        for year, months, amount in ((YEAR - 1, 12, last_year), (YEAR, AS_OF, this_year)):
            for month in range(1, months + 1):
                events.append(
                    {
                        "type": "cost",
                        "event_id": f"c-{unit}-{category}-{year}-{month:02d}",
                        "org_unit": unit,
                        "period": f"{year}-{month:02d}",
                        "category": category,
                        "amount_sek": amount,
                    }
                )
        events.append(
            {
                "type": "budget",
                "event_id": f"b-{unit}-{category}",
                "org_unit": unit,
                "year": YEAR,
                "category": category,
                "annual": budget,
            }
        )
    p, unit, last_year, this_year, plan = HOME_CARE_HOURS
    if p == partition:
        for year, months, hours in ((YEAR - 1, 12, last_year), (YEAR, AS_OF, this_year)):
            for month in range(1, months + 1):
                events.append(
                    {
                        "type": "volume",
                        "event_id": f"v-{unit}-{year}-{month:02d}",
                        "org_unit": unit,
                        "period": f"{year}-{month:02d}",
                        "measure": "home_care_hours",
                        "value": hours,
                        "unit": "h",
                    }
                )
        events.append(
            {
                "type": "budget",
                "event_id": f"b-{unit}-hours",
                "org_unit": unit,
                "year": YEAR,
                "measure": "home_care_hours",
                "annual": plan,
            }
        )
    return events


class FakeWorker:
    """One worker's state for one partition, built like the worker builds it; /metrics served
    by a real HTTP server."""

    def __init__(self, partition: int) -> None:
        domain = load_domain_config(CONFIG_DIR)
        table: dict[str, Any] = {}
        state = ActiveState()
        for raw in _events(partition):
            event = parse_event(json.dumps(raw).encode("utf-8"), domain)
            key = state_key(partition, event)
            result = apply_events(table.get(key), [event], domain)
            assert result.outcomes == ["accepted"], result.errors
            table[key] = result.value
            state.put(key, result.value)
        leaves, as_of = leaf_series(table.items(), YEAR)
        assert as_of == AS_OF
        self.forecast: OrganisationForecast = forecast_organisation(
            leaves, domain, YEAR, as_of, model="runrate"
        )
        self.metrics = WorkerMetrics(state, domain.org)
        self.metrics.forecast_status = ForecastStatus(latest={YEAR: self.forecast})
        # The shipped rules on this worker's forecast, as streams.forecasting runs them.
        self.book = AlertBook()
        rules = load_rules(CONFIG_DIR, domain)
        evaluate(rules, self.forecast, None, self.book, domain, datetime(2025, 6, 3, tzinfo=UTC))
        self.metrics.set_alerts_firing(self.book)
        metrics = self.metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = metrics.exposition()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self.server.server_address[1]}"
        Thread(target=self.server.serve_forever, daemon=True).start()

    def node(self, org_unit: str, category: str) -> Any:
        node = self.forecast.get(org_unit, category)
        assert node is not None, (org_unit, category)
        return node

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        pytest.fail("prometheus is not installed; run scripts/test-deps.sh", pytrace=False)
    return path


@pytest.fixture
def live_prometheus(
    prometheus_binary: str, tmp_path: Path
) -> Iterator[tuple[str, list[FakeWorker]]]:
    """Our prometheus.yml and rules with local targets and 1 s intervals (nothing else changed)."""
    workers = [FakeWorker(0), FakeWorker(1)]
    config = load_yaml(PROMETHEUS_CONFIG)
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    del config["alerting"]
    for job in config["scrape_configs"]:
        if job["job_name"] == "budgetvakt-worker":
            del job["dns_sd_configs"]
            job["static_configs"] = [{"targets": [w.target for w in workers]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for source in (RULES_FILE, INFO_RULES_FILE):
        doc = load_yaml(source)
        for group in doc["groups"]:
            group["interval"] = "1s"
        (tmp_path / source.name).write_text(
            yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    prometheus = Supervised(
        [
            prometheus_binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        name="Prometheus",
        ready=lambda: http_ok(f"{url}/-/ready", timeout_s=1),
        log_path=tmp_path / "prometheus.log",
        start_timeout_s=30,
        stop_timeout_s=15,
    )
    try:
        prometheus.start()
        yield url, workers
    finally:
        prometheus.stop()
        for worker in workers:
            worker.stop()


def query(url: str, promql: str) -> list[dict[str, Any]]:
    params = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}", timeout=5) as resp:
        answer = json.loads(resp.read())
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def one(url: str, promql: str) -> tuple[dict[str, str], float]:
    result = query(url, promql)
    assert len(result) == 1, (promql, result)
    return result[0]["metric"], float(result[0]["value"][1])


@pytest.mark.integration
def test_rules_on_real_worker_metrics(live_prometheus: tuple[str, list[FakeWorker]]) -> None:
    url, (ao_worker, lss_worker) = live_prometheus
    # The nämnd's deviation is the sum of both workers' shares (until both are scraped and the
    # rules evaluated, it is one worker's share: the transient the alerts' "for" rides out).
    expected = sum(w.node("VON", "total").deviation for w in (ao_worker, lss_worker))
    von = 'budgetvakt:forecast_deviation_sek:sum{org_unit="VON",category="total"}'

    def summed() -> bool:
        result = query(url, von)
        return len(result) == 1 and float(result[0]["value"][1]) == pytest.approx(expected)

    wait_until(summed, 60, "the nämnd deviation summed over both workers")
    # The worker's firing alerts per (rule, severity, unit), both workers together.
    expected_alerts = {
        (alert_id.split("|")[0], state.severity, alert_id.split("|")[1])
        for worker in (ao_worker, lss_worker)
        for alert_id, state in worker.book.firing().items()
    }
    assert ("substitutes_ytd", "critical", "1110") in expected_alerts
    assert ("budget_deviation", "warning", "2110") in expected_alerts

    def budgetlarm() -> set[tuple[str, str, str]]:
        return {
            (r["metric"]["rule"], r["metric"]["severity"], r["metric"]["org_unit"])
            for r in query(url, 'ALERTS{alertname="Budgetlarm", alertstate="firing"}')
        }

    wait_until(
        lambda: budgetlarm() == expected_alerts,
        30,
        "Prometheus showing the worker's alerts",
    )
    up = {r["metric"]["instance"] for r in query(url, 'up{job="budgetvakt-worker"} == 1')}
    assert up == {ao_worker.target, lss_worker.target}
    labels, deviation = one(url, von)
    assert deviation == pytest.approx(expected, rel=1e-9)
    assert labels == {
        "__name__": "budgetvakt:forecast_deviation_sek:sum",
        "org_unit": "VON",
        "org_unit_name": "Vård- och omsorgsnämnden",
        "namnd": "VON",
        "level": "namnd",
        "category": "total",
        "year": str(YEAR),
    }
    _, budget = one(url, 'budgetvakt:budget_full_year_sek:sum{org_unit="VON",category="total"}')
    assert budget == pytest.approx(sum(c[5] for c in COSTS), rel=1e-9)
    _, forecast = one(url, 'budgetvakt:forecast_full_year_sek:sum{org_unit="VON",category="total"}')
    assert forecast == pytest.approx(
        sum(w.node("VON", "total").full_year for w in (ao_worker, lss_worker)), rel=1e-9
    )

    # An enhet keeps its own worker's value and gets all its ancestors.
    labels, substitutes = one(
        url, 'budgetvakt:forecast_full_year_sek:sum{org_unit="1110",category="substitutes"}'
    )
    assert substitutes == pytest.approx(ao_worker.node("1110", "substitutes").full_year)
    assert (labels["avdelning"], labels["forvaltning"], labels["namnd"]) == ("AO", "VOF", "VON")
    _, share = one(
        url, 'budgetvakt:actual_ytd_vs_pro_rata:percent{org_unit="1110",category="substitutes"}'
    )
    assert share == pytest.approx(100 * 5_000_000 / (9_600_000 * AS_OF / 12))

    _, open_month = one(url, f'budgetvakt:forecast_year_open{{year="{YEAR}"}}')
    assert open_month == AS_OF
    _, over_plan = one(
        url,
        'budgetvakt:volume_forecast_over_plan:percent{org_unit="1110",measure="home_care_hours"}',
    )
    hours = ao_worker.node("1110", "home_care_hours").full_year
    assert over_plan == pytest.approx(100 * (hours / 180_000 - 1))

    # Shown as the worker fires them, at once, with the unit's names; nothing else is a budget
    # alert. VON's alert, reported by both workers, is one alert.
    (vikarier,) = query(
        url, 'ALERTS{alertname="Budgetlarm", rule="substitutes_ytd", org_unit="1110"}'
    )
    assert vikarier["metric"] == {
        "__name__": "ALERTS",
        "alertname": "Budgetlarm",
        "alertstate": "firing",
        "kategori": "budget",
        "larm": "substitutes_ytd",
        "rule": "substitutes_ytd",
        "severity": "critical",
        "org_unit": "1110",
        "org_unit_name": "Hemtjänst Norr",
        "level": "enhet",
        "namnd": "VON",
        "forvaltning": "VOF",
        "avdelning": "AO",
    }
    assert len(query(url, 'ALERTS{alertname="Budgetlarm", org_unit="VON"}')) == 1
    assert {r["metric"]["alertname"] for r in query(url, 'ALERTS{kategori="budget"}')} == {
        "Budgetlarm"
    }
    # The notifier's target (notifier:6067) does not resolve here: its scrapes fail.
    notifier_down = 'ALERTS{alertname="BudgetvaktNotifierNere"}'
    wait_until(lambda: bool(query(url, notifier_down)), 30, "the notifier-down alert")
    (down,) = query(url, notifier_down)
    assert down["metric"]["alertstate"] == "pending"
    assert down["metric"]["instance"] == "notifier:6067"
