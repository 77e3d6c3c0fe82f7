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
    doc["route"]["routes"][1]["receiver"] = "controller-saknas"
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    shutil.copytree(ALERTMANAGER_DIR / "templates", tmp_path / "templates")
    result = run_tool([amtool, "check-config", broken])
    assert result.returncode != 0
    assert "controller-saknas" in result.stdout + result.stderr


# A worker alert as Prometheus' Budgetlarm labels it (rules.yml): rule, severity and unit from
# budgetvakt_alerts_firing, the org labels from budgetvakt:org_unit_info.
BUDGETLARM = {"alertname": "Budgetlarm", "kategori": "budget", "namnd": "VON"}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # The worker's alerts are shown, not sent (the notifier sends them), whatever the
        # level or severity, from Prometheus or from Grafana, inside the org tree or not.
        (
            {**BUDGETLARM, "rule": "budget_deviation", "larm": "budget_deviation",
             "severity": "critical", "level": "namnd", "org_unit": "VON"},
            ["visas-ej-skickas"],
        ),
        (
            {**BUDGETLARM, "rule": "budget_deviation", "larm": "budget_deviation",
             "severity": "critical", "level": "namnd", "org_unit": "VON",
             "grafana_folder": "Budgetvakt"},
            ["visas-ej-skickas"],
        ),
        (
            {**BUDGETLARM, "rule": "substitutes_ytd", "larm": "substitutes_ytd",
             "severity": "warning", "level": "enhet", "avdelning": "AO", "org_unit": "1110"},
            ["visas-ej-skickas"],
        ),
        (
            {"alertname": "Budgetlarm", "kategori": "budget", "rule": "budget_deviation",
             "larm": "budget_deviation", "severity": "info", "org_unit": "9999"},
            ["visas-ej-skickas"],
        ),
        # Data quality: the finance office.
        ({"kategori": "datakvalitet", "alertname": "OmappatKostnadsstalle", "org_unit": "omappad",
          "severity": "warning"}, ["ekonomi"]),
        ({"kategori": "datakvalitet", "alertname": "SenaHandelser", "severity": "warning"},
         ["ekonomi"]),
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
def test_no_worker_alert_is_mailed_from_alertmanager(
    amtool: str, info_rules_doc: dict[str, Any], alertmanager_doc: dict[str, Any]
) -> None:
    # One delivery path: the notifier (config/routing.yaml) tells the people of every unit.
    # Alertmanager's receiver for the worker's alerts has no integration at all.
    receivers = {r["name"]: r for r in alertmanager_doc["receivers"]}
    assert set(receivers["visas-ej-skickas"]) == {"name"}
    units = [
        rule["labels"]
        for group in info_rules_doc["groups"]
        for rule in group["rules"]
        if rule["record"] == "budgetvakt:org_unit_info"
    ]
    assert len(units) >= 10
    for unit in units:
        for severity in ("info", "warning", "critical"):
            labels = {**unit, **BUDGETLARM, "rule": "budget_deviation", "severity": severity}
            assert route(amtool, labels) == ["visas-ej-skickas"], (unit["org_unit"], severity)


def test_every_receiver_is_routed_to(alertmanager_doc: dict[str, Any]) -> None:
    def receivers(node: dict[str, Any]) -> Iterator[str]:
        yield node["receiver"]
        for child in node.get("routes", []):
            yield from receivers(child)

    routed = set(receivers(alertmanager_doc["route"]))
    defined = {r["name"] for r in alertmanager_doc["receivers"]}
    assert routed == defined


def test_data_quality_and_service_alerts_have_their_own_rhythm(
    alertmanager_doc: dict[str, Any],
) -> None:
    routes = {r["matchers"][0]: r for r in alertmanager_doc["route"]["routes"]}
    assert set(routes) == {'kategori="drift"', 'kategori="datakvalitet"', 'kategori="budget"'}
    quality = routes['kategori="datakvalitet"']
    assert quality["receiver"] == "ekonomi"
    assert quality["group_wait"] == "10m" and quality["repeat_interval"] == "168h"
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
        "labels": {"alertname": "OmappatKostnadsstalle", "severity": severity},
        "annotations": {
            "summary": summary,
            "description": "Lägg till kostnadsstället i organisationsträdet.",
        },
        "startsAt": "2025-06-03T08:15:00Z",
        "endsAt": ends,
    }


TEMPLATE_DATA = {
    "receiver": "ekonomi",
    "status": "firing",
    "alerts": [
        _alert("firing", "critical", "Kostnadsstället 9991 finns inte i organisationsträdet",
               "0001-01-01T00:00:00Z"),
        _alert("firing", "critical", "Kostnadsstället <9992> & co finns inte i organisationsträdet",
               "0001-01-01T00:00:00Z"),
        _alert("resolved", "warning", "Kostnadsstället 9993 finns inte i organisationsträdet",
               "2025-06-03T09:00:00Z"),
    ],
    "groupLabels": {"alertname": "OmappatKostnadsstalle"},
    "commonLabels": {"alertname": "OmappatKostnadsstalle"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
}  # fmt: skip


@pytest.mark.integration
def test_email_templates_render_in_swedish(amtool: str, tmp_path: Path) -> None:
    subject = _render(amtool, "budgetvakt.subject", TEMPLATE_DATA, tmp_path, "text")
    assert subject.strip() == (
        "[budgetvakt] Larm: Kostnadsstället 9991 finns inte i organisationsträdet m.fl. (2 larm)"
    )
    text = _render(amtool, "budgetvakt.text", TEMPLATE_DATA, tmp_path, "text")
    assert "Aktiva larm (2):" in text
    assert "Allvarlighetsgrad: kritisk. Aktivt sedan 2025-06-03 08:15." in text
    # Ended, not "åtgärdat": an alert that stops firing was not necessarily fixed by anyone.
    assert "Avslutade (1):" in text and "tgärd" not in text
    assert "organisationsträdet (avslutat 2025-06-03 09:00)" in text
    html = _render(amtool, "budgetvakt.html", TEMPLATE_DATA, tmp_path, "html")
    assert '<html lang="sv">' in html
    assert "<h2>Aktiva larm (2)</h2>" in html
    # Alert texts are escaped in HTML.
    assert "&lt;9992&gt; &amp; co" in html and "<9992>" not in html
    resolved = {**TEMPLATE_DATA, "status": "resolved", "alerts": TEMPLATE_DATA["alerts"][2:]}
    subject = _render(amtool, "budgetvakt.subject", resolved, tmp_path, "text")
    assert (
        subject.strip()
        == "[budgetvakt] Avslutat: Kostnadsstället 9993 finns inte i organisationsträdet"
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


ENHET = {**BUDGETLARM, "level": "enhet", "avdelning": "AO", "org_unit": "1110",
         "org_unit_name": "Hemtjänst Norr", "forvaltning": "VOF"}  # fmt: skip
LIVE_ALERTS = {
    "enhet critical": {**ENHET, "rule": "budget_deviation", "larm": "budget_deviation",
                       "severity": "critical"},
    "enhet warning": {**ENHET, "rule": "budget_deviation", "larm": "budget_deviation",
                      "severity": "warning"},
    "other rule info": {**ENHET, "rule": "home_care_hours_over_plan",
                        "larm": "home_care_hours_over_plan", "severity": "info"},
    "nämnd": {**BUDGETLARM, "rule": "budget_deviation", "larm": "budget_deviation",
              "severity": "critical", "level": "namnd", "org_unit": "VON"},
    "nämnd from grafana": {**BUDGETLARM, "rule": "budget_deviation", "larm": "budget_deviation",
                           "severity": "critical", "level": "namnd", "org_unit": "VON",
                           "grafana_folder": "Budgetvakt"},
    "unmapped": {"alertname": "OmappatKostnadsstalle", "kategori": "datakvalitet",
                 "severity": "warning", "larm": "omappat", "org_unit": "9999"},
    "worker down": {"alertname": "BudgetvaktWorkerNere", "kategori": "drift",
                    "severity": "critical", "larm": "worker_nere", "job": "budgetvakt-worker",
                    "instance": "w1"},
    "lag warning": {"alertname": "BudgetvaktKonsumentfordrojning", "kategori": "drift",
                    "severity": "warning", "larm": "konsumentfordrojning",
                    "topic": "budgetvakt.cost.v1"},
}  # fmt: skip
SUPPRESSED = {"enhet warning", "nämnd from grafana", "lag warning"}
SHOWN_NOT_SENT = {"enhet critical", "other rule info", "nämnd"}


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
        "ekonomi@storvik.example": {"unmapped"},
        "drift@storvik.example": {"worker down"},
    }

    def delivered() -> bool:
        for address, names in recipients.items():
            text = " ".join(m.body for m in smtp.handler.to(address))
            if not all(summaries[n] in text for n in names):
                return False
        return True

    try:
        wait_until(delivered, 30, "mails")
    except AssertionError as err:
        got = [(m.to, m.subject) for m in smtp.handler.snapshot()]
        raise AssertionError(f"{err}; mails: {got}") from err
    # The worker's alerts were routed with the same 1 s timings as the mails above: had any
    # receiver sent them, they would be here by now.
    everything = " ".join(m.body for m in smtp.handler.snapshot())
    everything += json.dumps([h.body for h in hooks.snapshot()], ensure_ascii=False)
    for name in SUPPRESSED | SHOWN_NOT_SENT:
        assert summaries[name] not in everything, f"{name} was sent"
    assert {a for m in smtp.handler.snapshot() for a in m.recipients} == set(recipients)
    assert hooks.snapshot() == []
    critical_mail = next(
        m for m in smtp.handler.to("drift@storvik.example") if "worker down" in m.body
    )
    assert str(critical_mail.message["Subject"]).startswith("[budgetvakt] KRITISKT: ")
