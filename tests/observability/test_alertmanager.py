"""config/alertmanager: amtool check-config, routing (amtool config routes test), the Swedish
e-mail templates (amtool template render), and inhibition and delivery on a real Alertmanager
with a real SMTP server and a real webhook receiver."""

from __future__ import annotations

import json
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.demo.receivers import MailCatcher, WebhookCatcher
from services.processes.supervised import Supervised, free_port, http_ok, wait_until
from tests.observability.fixtures import (
    ALERTMANAGER_CONFIG,
    ALERTMANAGER_DIR,
    load_yaml,
    run_tool,
)

TEMPLATES_GLOB = str(ALERTMANAGER_DIR / "templates" / "*.tmpl")


def route(amtool: str, labels: dict[str, str]) -> list[str]:
    args = [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}"]
    result = run_tool([*args, *(f"{k}={v}" for k, v in labels.items())])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip().split(",")


@pytest.mark.integration
def test_config_passes_amtool(amtool: str) -> None:
    result = run_tool([amtool, "check-config", ALERTMANAGER_CONFIG])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 templates" in result.stdout


@pytest.mark.integration
def test_amtool_check_config_fails_on_an_unknown_receiver(amtool: str, tmp_path: Path) -> None:
    doc = load_yaml(ALERTMANAGER_CONFIG)
    doc["route"]["routes"][1]["routes"][2]["receiver"] = "controller-saknas"
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    shutil.copytree(ALERTMANAGER_DIR / "templates", tmp_path / "templates")
    result = run_tool([amtool, "check-config", broken])
    assert result.returncode != 0
    assert "controller-saknas" in result.stdout + result.stderr


BUDGET = {"kategori": "budget", "namnd": "VON", "year": "2025"}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # A minusprognos for the nämnd: case system, förvaltningschef, finance office.
        (
            {**BUDGET, "alertname": "MinusprognosNamnd", "severity": "critical", "level": "namnd",
             "org_unit": "VON", "category": "total"},
            ["arendesystem", "forvaltningschef-von", "ekonomi"],
        ),
        # The same from Grafana (it carries grafana_folder) routes alike.
        (
            {**BUDGET, "alertname": "Minusprognos för nämnd", "grafana_folder": "Budgetvakt",
             "severity": "critical", "level": "namnd", "org_unit": "VON"},
            ["arendesystem", "forvaltningschef-von", "ekonomi"],
        ),
        # An enhet in Äldreomsorg: its controller; critical enhet alerts stay with the controller.
        (
            {**BUDGET, "alertname": "BudgetavvikelseEnhet", "severity": "warning", "level": "enhet",
             "avdelning": "AO", "org_unit": "1110"},
            ["arendesystem", "controller-ao"],
        ),
        (
            {**BUDGET, "alertname": "BudgetavvikelseEnhet", "severity": "critical",
             "level": "enhet", "avdelning": "AO", "org_unit": "1110"},
            ["arendesystem", "controller-ao"],
        ),
        # A critical avdelning alert also reaches the förvaltningschef.
        (
            {**BUDGET, "alertname": "VikarierOverBudget", "severity": "critical",
             "level": "avdelning", "avdelning": "LSS", "org_unit": "LSS"},
            ["arendesystem", "forvaltningschef-von", "controller-lss"],
        ),
        # A cost centre outside the org tree has no namnd/avdelning: the finance office.
        (
            {"kategori": "budget", "alertname": "BudgetavvikelseEnhet", "severity": "warning",
             "level": "enhet", "org_unit": "9999"},
            ["arendesystem", "ekonomi"],
        ),
        ({"kategori": "budget", "alertname": "OmappatKostnadsstalle", "org_unit": "omappad",
          "severity": "warning"}, ["arendesystem", "ekonomi"]),
        # Service alerts go to operations only, whatever their severity.
        ({"kategori": "drift", "alertname": "BudgetvaktWorkerNere", "severity": "critical",
          "job": "budgetvakt-worker"}, ["drift"]),
        ({"kategori": "drift", "alertname": "BudgetvaktKonsumentfordrojning",
          "severity": "warning", "topic": "budgetvakt.cost.v1"}, ["drift"]),
        # Anything unlabelled (e.g. Prometheus' own alerts) lands with operations too.
        ({"alertname": "PrometheusRuleFailures", "severity": "warning"}, ["drift"]),
    ],
)  # fmt: skip
def test_routes(amtool: str, labels: dict[str, str], receivers: list[str]) -> None:
    assert route(amtool, labels) == receivers


@pytest.mark.integration
def test_every_unit_of_the_org_tree_reaches_its_controller(
    amtool: str, info_rules_doc: dict[str, Any], alertmanager_doc: dict[str, Any]
) -> None:
    # The labels an alert about each unit carries are those of its info series.
    receiver_names = {r["name"] for r in alertmanager_doc["receivers"]}
    units = [
        rule["labels"]
        for group in info_rules_doc["groups"]
        for rule in group["rules"]
        if rule["record"] == "budgetvakt:org_unit_info"
    ]
    assert len(units) >= 10
    for unit in units:
        avdelning = unit.get("avdelning")
        expected = (
            f"controller-{avdelning.lower()}"
            if avdelning is not None and avdelning != "omappad"
            else "ekonomi"
        )
        assert expected in receiver_names, f"no receiver {expected} for {unit['org_unit']}"
        labels = {**unit, "kategori": "budget", "severity": "warning", "year": "2025"}
        assert route(amtool, labels) == ["arendesystem", expected], unit["org_unit"]


def test_every_receiver_is_routed_to(alertmanager_doc: dict[str, Any]) -> None:
    def receivers(node: dict[str, Any]) -> Iterator[str]:
        yield node["receiver"]
        for child in node.get("routes", []):
            yield from receivers(child)

    routed = set(receivers(alertmanager_doc["route"]))
    defined = {r["name"] for r in alertmanager_doc["receivers"]}
    assert routed == defined


def test_business_and_service_alerts_have_their_own_rhythm(
    alertmanager_doc: dict[str, Any],
) -> None:
    routes = {r["matchers"][0]: r for r in alertmanager_doc["route"]["routes"]}
    budget = routes['kategori="budget"']
    assert budget["group_by"] == ["alertname", "namnd", "avdelning"]
    assert budget["group_wait"] == "10m" and budget["repeat_interval"] == "168h"
    root = alertmanager_doc["route"]
    assert root["group_wait"] == "30s" and root["repeat_interval"] == "4h"
    assert routes['kategori="drift"']["routes"][0]["repeat_interval"] == "1h"


def _render(amtool: str, template: str, data: dict[str, Any], tmp_path: Path, kind: str) -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data), encoding="utf-8")
    result = run_tool(
        [
            amtool,
            "template",
            "render",
            f"--template.glob={TEMPLATES_GLOB}",
            f"--template.text={{{{ template {json.dumps(template)} . }}}}",
            f"--template.data={data_file}",
            f"--template.type={kind}",
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _alert(status: str, severity: str, summary: str, ends: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "BudgetavvikelseEnhet", "severity": severity, "avdelning": "AO"},
        "annotations": {
            "summary": summary,
            "description": "Avvikelse (budget − prognos): −8,0 mnkr.",
        },
        "startsAt": "2025-06-03T08:15:00Z",
        "endsAt": ends,
    }


TEMPLATE_DATA = {
    "receiver": "controller-ao",
    "status": "firing",
    "alerts": [
        _alert("firing", "critical", "Underskott i prognosen 2025 för Hemtjänst Norr (1110)",
               "0001-01-01T00:00:00Z"),
        _alert("firing", "critical", "Underskott i prognosen 2025 för <Ekbacken> & co (1210)",
               "0001-01-01T00:00:00Z"),
        _alert("resolved", "warning", "Underskott i prognosen 2025 för Hemtjänst Syd (1120)",
               "2025-06-03T09:00:00Z"),
    ],
    "groupLabels": {"alertname": "BudgetavvikelseEnhet", "avdelning": "AO"},
    "commonLabels": {"alertname": "BudgetavvikelseEnhet", "avdelning": "AO"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
}  # fmt: skip


@pytest.mark.integration
def test_email_templates_render_in_swedish(amtool: str, tmp_path: Path) -> None:
    subject = _render(amtool, "budgetvakt.subject", TEMPLATE_DATA, tmp_path, "text")
    assert subject.strip() == (
        "[budgetvakt] Larm: Underskott i prognosen 2025 för Hemtjänst Norr (1110) m.fl. (2 larm)"
    )
    text = _render(amtool, "budgetvakt.text", TEMPLATE_DATA, tmp_path, "text")
    assert "Aktiva larm (2):" in text
    assert "Allvarlighetsgrad: kritisk. Aktivt sedan 2025-06-03 08:15." in text
    assert "Åtgärdade (1):" in text
    assert "Hemtjänst Syd (1120) (avslutat 2025-06-03 09:00)" in text
    html = _render(amtool, "budgetvakt.html", TEMPLATE_DATA, tmp_path, "html")
    assert '<html lang="sv">' in html
    assert "<h2>Aktiva larm (2)</h2>" in html
    # Alert texts are escaped in HTML.
    assert "&lt;Ekbacken&gt; &amp; co" in html and "<Ekbacken>" not in html
    resolved = {**TEMPLATE_DATA, "status": "resolved", "alerts": TEMPLATE_DATA["alerts"][2:]}
    subject = _render(amtool, "budgetvakt.subject", resolved, tmp_path, "text")
    assert (
        subject.strip()
        == "[budgetvakt] Åtgärdat: Underskott i prognosen 2025 för Hemtjänst Syd (1120)"
    )


# --- A real Alertmanager ---------------------------------------------------------------------


def _speed_up(node: dict[str, Any]) -> None:
    for key in ("group_wait", "group_interval"):
        if key in node:
            node[key] = "1s"
    for child in node.get("routes", []):
        _speed_up(child)


@pytest.fixture
def live_alertmanager(
    alertmanager_binary: str, tmp_path: Path
) -> Iterator[tuple[str, MailCatcher, WebhookCatcher]]:
    """Our config with SMTP and the webhook pointed at local servers and 1 s group timings;
    routes, inhibit rules, receivers and templates unchanged."""
    smtp = MailCatcher().start()
    hooks = WebhookCatcher().start()
    doc = load_yaml(ALERTMANAGER_CONFIG)
    doc["global"]["smtp_smarthost"] = f"127.0.0.1:{smtp.port}"
    doc["route"]["group_wait"] = doc["route"]["group_interval"] = "1s"
    _speed_up(doc["route"])
    for receiver in doc["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = hooks.url("/" + webhook["url"].split("://", 1)[1].split("/", 1)[1])
    (tmp_path / "am").mkdir()
    config = tmp_path / "am" / "alertmanager.yml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    shutil.copytree(ALERTMANAGER_DIR / "templates", tmp_path / "am" / "templates")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    alertmanager = Supervised(
        [
            alertmanager_binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=info",
        ],
        name="Alertmanager",
        ready=lambda: http_ok(f"{url}/-/ready", timeout_s=1),
        log_path=tmp_path / "alertmanager.log",
        start_timeout_s=30,
        stop_timeout_s=10,
    )
    try:
        alertmanager.start()
        yield url, smtp, hooks
    finally:
        alertmanager.stop()
        hooks.stop()
        smtp.stop()


def _post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    body = json.dumps(
        [{"labels": labels, "annotations": annotations} for labels, annotations in alerts]
    ).encode("utf-8")
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


def _alert_states(url: str) -> dict[tuple[str, ...], str]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as resp:
        alerts = json.loads(resp.read())
    return {
        tuple(f"{k}={v}" for k, v in sorted(a["labels"].items())): a["status"]["state"]
        for a in alerts
    }


def _key(labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(f"{k}={v}" for k, v in sorted(labels.items()))


ENHET = {**BUDGET, "level": "enhet", "avdelning": "AO", "org_unit": "1110",
         "org_unit_name": "Hemtjänst Norr", "forvaltning": "VOF"}  # fmt: skip
LIVE_ALERTS = {
    "enhet critical": {**ENHET, "alertname": "BudgetavvikelseEnhet", "severity": "critical",
                       "larm": "budgetavvikelse", "category": "total"},
    "enhet warning": {**ENHET, "alertname": "BudgetavvikelseEnhet", "severity": "warning",
                      "larm": "budgetavvikelse", "category": "total"},
    "volume critical": {**ENHET, "alertname": "VolymOverPlan", "severity": "critical",
                        "larm": "volym", "measure": "extra_nights"},
    "other volume warning": {**ENHET, "alertname": "VolymOverPlan", "severity": "warning",
                             "larm": "volym", "measure": "home_care_hours"},
    "nämnd": {**BUDGET, "alertname": "MinusprognosNamnd", "severity": "critical",
              "larm": "minusprognos_namnd", "level": "namnd", "org_unit": "VON",
              "category": "total"},
    "nämnd from grafana": {**BUDGET, "alertname": "Minusprognos för nämnd",
                           "severity": "critical", "larm": "minusprognos_namnd",
                           "level": "namnd", "org_unit": "VON", "grafana_folder": "Budgetvakt"},
    "worker down": {"alertname": "BudgetvaktWorkerNere", "kategori": "drift",
                    "severity": "critical", "larm": "worker_nere", "job": "budgetvakt-worker",
                    "instance": "w1"},
    "lag warning": {"alertname": "BudgetvaktKonsumentfordrojning", "kategori": "drift",
                    "severity": "warning", "larm": "konsumentfordrojning",
                    "topic": "budgetvakt.cost.v1"},
}  # fmt: skip
SUPPRESSED = {"enhet warning", "nämnd from grafana", "lag warning"}


@pytest.mark.integration
def test_live_alertmanager_inhibits_and_delivers(
    live_alertmanager: tuple[str, MailCatcher, WebhookCatcher],
) -> None:
    url, smtp, hooks = live_alertmanager
    summaries = {name: f"Sammanfattning: {name}" for name in LIVE_ALERTS}
    _post_alerts(
        url,
        [
            (labels, {"summary": summaries[name], "description": f"Beskrivning av {name}."})
            for name, labels in LIVE_ALERTS.items()
        ],
    )
    expected = {
        _key(labels): "suppressed" if name in SUPPRESSED else "active"
        for name, labels in LIVE_ALERTS.items()
    }
    wait_until(lambda: _alert_states(url) == expected, 20, "inhibition settled")

    recipients = {
        "erik.sjoberg@storvik.example": {
            "enhet critical",
            "volume critical",
            "other volume warning",
        },
        "ekonomi@storvik.example": {"nämnd"},
        "helena.dahl@storvik.example": {"nämnd"},
        "drift@storvik.example": {"worker down"},
    }  # fmt: skip

    def delivered() -> bool:
        for address, names in recipients.items():
            text = " ".join(m.body for m in smtp.handler.to(address))
            if not all(summaries[n] in text for n in names):
                return False
        hooked = json.dumps(
            [h.body for h in hooks.snapshot("/api/alertmanager")], ensure_ascii=False
        )
        return all(summaries[n] in hooked for n in ("enhet critical", "nämnd"))

    try:
        wait_until(delivered, 30, "mails and webhook calls")
    except AssertionError as err:
        got = [(m.to, m.subject) for m in smtp.handler.snapshot()]
        raise AssertionError(
            f"{err}; mails: {got}; webhook calls: {len(hooks.snapshot())}"
        ) from err
    everything = " ".join(m.body for m in smtp.handler.snapshot())
    everything += json.dumps([h.body for h in hooks.snapshot()], ensure_ascii=False)
    for name in SUPPRESSED:
        assert summaries[name] not in everything, f"{name} was inhibited but sent"
    assert smtp.handler.to("anna.wikstrom@storvik.example") == []
    critical_mail = next(
        m for m in smtp.handler.to("drift@storvik.example") if "worker down" in m.body
    )
    assert str(critical_mail.message["Subject"]).startswith("[budgetvakt] KRITISKT: ")
