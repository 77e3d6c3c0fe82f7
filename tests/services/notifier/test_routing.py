"""Routing: the shipped config/routing.yaml, who gets which alert, and precise config errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from contract.output_records import AlertEvent
from core.domain import DomainConfig
from core.errors import ConfigError
from core.settings import REPO_ROOT
from services.notifier.engine import plan_notifications
from services.notifier.routing import Routing, load_routing
from testing.cli import run_cli
from tests.services.notifier.fixtures import make_alert


def recipients_of(routing: Routing, domain: DomainConfig, **alert: Any) -> set[str]:
    unit = alert.pop("org_unit")
    event = AlertEvent.model_validate(make_alert(unit, **alert))
    return {r.id for r in routing.recipients_for(event, domain.org)}


def test_shipped_routing_covers_every_enhet(routing: Routing, domain: DomainConfig) -> None:
    enheter = [n.id for n in domain.org.nodes.values() if n.level == "enhet"]
    assert len(enheter) == 10
    for unit in enheter:
        got = recipients_of(routing, domain, org_unit=unit, severity="info")
        assert got, f"no recipient for an info alert about {unit}"


def test_enhet_alert_goes_to_its_chef_and_the_avdelning(
    routing: Routing, domain: DomainConfig
) -> None:
    # An info alert: only the enhetschef (the avdelning's people start at warning).
    assert recipients_of(routing, domain, org_unit="1110", severity="info") == {"karin-holm"}
    # A warning: also the avdelningschef, the AO controller and the finance office's system.
    assert recipients_of(routing, domain, org_unit="1110", severity="warning") == {
        "karin-holm",
        "eva-sandberg",
        "erik-sjoberg",
        "ekonomienheten",
    }
    # A critical enhet alert: the förvaltningschef listens to avdelning level and up only.
    assert recipients_of(routing, domain, org_unit="3130", severity="critical") == {
        "omar-haddad",
        "nina-forsberg",
        "anna-wikstrom",
        "ekonomienheten",
    }


def test_upper_levels_reach_management_only_when_critical(
    routing: Routing, domain: DomainConfig
) -> None:
    assert recipients_of(routing, domain, org_unit="AO", severity="critical") == {
        "eva-sandberg",
        "erik-sjoberg",
        "helena-dahl",
        "ekonomienheten",
    }
    assert recipients_of(routing, domain, org_unit="AO", severity="warning") == {
        "eva-sandberg",
        "erik-sjoberg",
        "ekonomienheten",
    }
    assert recipients_of(routing, domain, org_unit="VON", severity="critical") == {
        "jonas-alm",
        "helena-dahl",
        "sara-oberg",
        "ekonomienheten",
    }
    # The förvaltning's controller hears of warnings about the whole; management does not.
    assert recipients_of(routing, domain, org_unit="VOF", severity="warning") == {
        "sara-oberg",
        "ekonomienheten",
    }


def test_plan_groups_per_recipient_and_channel(routing: Routing, domain: DomainConfig) -> None:
    alerts = [
        AlertEvent.model_validate(make_alert(unit, severity="warning"))
        for unit in ("1110", "1120", "1210")
    ]
    repeated = [*alerts, alerts[0]]  # the same event twice in one round
    notifications, repeats = plan_notifications(repeated, routing, domain)
    by_key = {
        (n.recipient.id, n.channel): n for n in notifications if n.recipient.id != "ekonomienheten"
    }
    assert repeats == 5  # the repeat reaches karin, eva, erik (mail + Teams) and ekonomienheten
    assert len(by_key[("erik-sjoberg", "email")].alerts) == 3
    assert len(by_key[("erik-sjoberg", "webhook")].alerts) == 3  # one Teams card for all three
    assert len(by_key[("karin-holm", "email")].alerts) == 1
    # JSON webhooks get one request per alert.
    json_hooks = [n for n in notifications if n.recipient.id == "ekonomienheten"]
    assert [len(n.alerts) for n in json_hooks] == [1, 1, 1]


# --- Config errors -------------------------------------------------------------------------------

VALID: dict[str, Any] = {
    "recipients": {
        "chef": {
            "name": "Karin Holm",
            "role": "Enhetschef",
            "min_severity": "info",
            "channels": {"email": "karin.holm@storvik.example"},
        },
        "kanal": {
            "name": "Ekonomi",
            "role": "Teams-kanal",
            "channels": {"webhook": {"url_env": "BUDGETVAKT_WEBHOOK_X", "format": "teams"}},
        },
    },
    "units": {"1110": ["chef"], "AO": ["kanal"]},
}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "routing.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def changed(**edits: Any) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    for dotted, value in edits.items():
        *parents, last = dotted.split("__")
        node = data
        for part in parents:
            node = node[part]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return data


ENVIRON = {
    "BUDGETVAKT_WEBHOOK_X": "https://hooks.storvik.example/x/secret-token",
    "BUDGETVAKT_WEBHOOK_FTP": "ftp://hooks.storvik.example/secret-token",
}


def test_valid_minimal_file_loads(tmp_path: Path, domain: DomainConfig) -> None:
    routing = load_routing(write(tmp_path, VALID), domain.org, ENVIRON)
    assert routing.recipients["kanal"].webhook_url == ENVIRON["BUDGETVAKT_WEBHOOK_X"]
    assert routing.recipients["kanal"].webhook_format == "teams"
    assert routing.recipients["kanal"].min_severity == "warning"  # the default
    assert routing.recipients["chef"].units == ("1110",)


@pytest.mark.parametrize(
    ("data", "key", "problem"),
    [
        (
            changed(units={"1110": ["chef"], "9999": ["kanal"]}),
            "units.9999",
            "unknown org unit '9999'",
        ),
        (changed(units__AO=["kanal", "nobody"]), "units.AO.1", "unknown recipient 'nobody'"),
        (changed(units__AO=["kanal", "kanal"]), "units.AO.1", "listed twice"),
        (changed(units={"1110": ["chef"]}), "recipients.kanal", "not attached to any org unit"),
        (
            "recipients: {}\nunits:\n  1110: []\n",
            "units",
            "org unit id 1110 must be quoted",
        ),
        (changed(recipients__chef__phone="070"), "recipients.chef.phone", "Extra inputs"),
        (
            changed(recipients__chef__channels={"email": "karin.holm"}),
            "recipients.chef.channels.email",
            "'karin.holm' is not an e-mail address",
        ),
        (
            changed(recipients__chef__channels={}),
            "recipients.chef.channels",
            "at least one channel",
        ),
        (
            changed(recipients__kanal__channels__webhook={"url_env": "X", "format": "slack"}),
            "recipients.kanal.channels.webhook.format",
            "'json' or 'teams'",
        ),
        (
            changed(recipients__kanal__channels__webhook={"url": "https://x.example/token"}),
            "recipients.kanal.channels.webhook",
            "a webhook URL is a secret",
        ),
        (
            changed(recipients__kanal__channels__webhook={"format": "teams"}),
            "recipients.kanal.channels.webhook",
            "exactly one of url_env and url_file",
        ),
        (
            changed(
                recipients__kanal__channels__webhook={"url_env": "A", "url_file": "/run/secrets/a"}
            ),
            "recipients.kanal.channels.webhook",
            "exactly one of url_env and url_file",
        ),
        (
            changed(recipients__kanal__channels__webhook={"url_env": "NOT A NAME"}),
            "recipients.kanal.channels.webhook.url_env",
            "should match pattern",
        ),
        (
            changed(recipients__kanal__channels__webhook={"url_env": "BUDGETVAKT_WEBHOOK_UNSET"}),
            "recipients.kanal.channels.webhook.url_env",
            "the environment variable BUDGETVAKT_WEBHOOK_UNSET is not set",
        ),
        (
            changed(recipients__kanal__channels__webhook={"url_env": "BUDGETVAKT_WEBHOOK_FTP"}),
            "recipients.kanal.channels.webhook",
            "the environment variable BUDGETVAKT_WEBHOOK_FTP holds no http(s) URL: URL scheme "
            "should be 'http' or 'https'",
        ),
        (
            changed(recipients__kanal__channels__webhook={"url_file": "/nonexistent/hook.url"}),
            "recipients.kanal.channels.webhook.url_file",
            "cannot read /nonexistent/hook.url: No such file or directory",
        ),
        (changed(recipients__chef__min_severity="high"), "recipients.chef.min_severity", "'info'"),
        (
            changed(recipients__chef__alert_levels=["kommun"]),
            "recipients.chef.alert_levels.0",
            "'namnd'",
        ),
        (changed(recipients__chef__name=KeyError), "recipients.chef.name", "Field required"),
        (
            changed(
                recipients={
                    "Karin Holm": VALID["recipients"]["chef"],
                    "kanal": VALID["recipients"]["kanal"],
                }
            ),
            "recipients.Karin Holm.[key]",
            "should match pattern",
        ),
        ("units: [\n", "line 2", "not valid YAML"),
        (changed(controllers={"9999": "chef"}), "controllers.9999", "unknown org unit '9999'"),
        (changed(controllers={"AO": "nobody"}), "controllers.AO", "unknown recipient 'nobody'"),
        (
            changed(actions={"critical": {"text": "Plan senast {deadline}."}}),
            "actions.critical",
            "give deadline",
        ),
        (
            changed(actions={"warning": {"text": "Svara {chef}."}}),
            "actions.warning",
            "unknown placeholder {chef}",
        ),
        (
            changed(
                actions={
                    "critical": {
                        "text": "Plan senast {deadline}.",
                        "deadline": {"working_days": 10, "day_of_next_month": 15},
                    }
                }
            ),
            "actions.critical.deadline",
            "exactly one of working_days and day_of_next_month",
        ),
        (
            changed(actions={"by_level": {"kommun": {"critical": None}}}),
            "actions.by_level.kommun.[key]",
            "'namnd'",
        ),
    ],
)
def test_config_errors_name_file_key_and_problem(
    tmp_path: Path, domain: DomainConfig, data: Any, key: str, problem: str
) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_routing(path, domain.org, ENVIRON)
    err = caught.value
    assert err.file == str(path)
    assert err.key == key
    assert problem in err.problem
    assert str(err).startswith(f"config error in {path}: {key}: ")


def test_missing_routing_file(tmp_path: Path, domain: DomainConfig) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_routing(tmp_path / "absent.yaml", domain.org)


def test_command_reports_a_bad_routing_file_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, changed(units={"1110": ["chef"], "AO": ["kanal"], "4110": ["chef"]}))
    result = run_cli(
        "notifier",
        env={
            "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: config first
            "BUDGETVAKT_NOTIFIER_ROUTING_FILE": str(path),
            "BUDGETVAKT_DATA_DIR": str(tmp_path / "data"),
        },
        inherit_settings=False,
        cwd=REPO_ROOT,
        timeout_s=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"config error in {path}: units.4110: unknown org unit '4110'" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_without_bootstrap_servers_is_a_user_error(tmp_path: Path) -> None:
    result = run_cli(
        "notifier",
        env={"BUDGETVAKT_DATA_DIR": str(tmp_path / "data")},
        inherit_settings=False,
        cwd=REPO_ROOT,
        timeout_s=60,
    )
    assert result.returncode == 2
    assert "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_names_a_bad_environment_value(tmp_path: Path) -> None:
    result = run_cli(
        "notifier",
        env={
            "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "BUDGETVAKT_SMTP_PORT": "smtp",
            "BUDGETVAKT_DATA_DIR": str(tmp_path / "data"),
        },
        inherit_settings=False,
        cwd=REPO_ROOT,
        timeout_s=60,
    )
    assert result.returncode == 2
    assert "BUDGETVAKT_SMTP_PORT: Input should be a valid integer" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_webhook_url_from_a_secret_file(tmp_path: Path, domain: DomainConfig) -> None:
    secret = tmp_path / "teams.url"
    secret.write_text("https://hooks.storvik.example/x/secret-token\n", encoding="utf-8")
    data = changed(recipients__kanal__channels__webhook={"url_file": str(secret)})
    routing = load_routing(write(tmp_path, data), domain.org, {})
    assert routing.recipients["kanal"].webhook_url == "https://hooks.storvik.example/x/secret-token"


def test_the_shipped_file_needs_its_webhook_variables(domain: DomainConfig) -> None:
    from core.settings import DEFAULT_CONFIG_DIR

    with pytest.raises(ConfigError) as caught:
        load_routing(DEFAULT_CONFIG_DIR / "routing.yaml", domain.org, {})
    assert caught.value.key == "recipients.erik-sjoberg.channels.webhook.url_env"
    assert "BUDGETVAKT_WEBHOOK_EKONOMI_ALDREOMSORG is not set" in caught.value.problem


def test_a_config_error_never_shows_the_url(tmp_path: Path, domain: DomainConfig) -> None:
    environ = {"BUDGETVAKT_WEBHOOK_X": "hooks.storvik.example/x/secret-token"}  # no scheme
    with pytest.raises(ConfigError) as caught:
        load_routing(write(tmp_path, VALID), domain.org, environ)
    assert "secret-token" not in str(caught.value)
    assert "BUDGETVAKT_WEBHOOK_X holds no http(s) URL" in str(caught.value)


# --- Controllers and requested actions -----------------------------------------------------------


def test_controller_is_inherited_from_the_nearest_unit_above(
    routing: Routing, domain: DomainConfig
) -> None:
    assert routing.controller_for("1110", domain.org).id == "erik-sjoberg"  # from AO
    assert routing.controller_for("3130", domain.org).id == "anna-wikstrom"  # from IFO
    assert routing.controller_for("VOF", domain.org).id == "sara-oberg"  # from VON


def test_actions_per_severity_level_and_closed_year(tmp_path: Path, domain: DomainConfig) -> None:
    data = changed(
        controllers={"AO": "chef"},
        actions={
            "warning": None,
            "by_level": {"avdelning": {"critical": {"text": "Ring {controller}."}}},
        },
    )
    routing = load_routing(write(tmp_path, data), domain.org, ENVIRON)
    assert routing.controller_for("1120", domain.org).id == "chef"
    assert routing.controller_for("2110", domain.org) is None  # nobody named above LSS boende
    actions = routing.actions
    assert actions.for_alert("warning", "enhet", False) is None  # null asks for nothing
    assert actions.for_alert("critical", "avdelning", False).text == "Ring {controller}."
    default_critical = actions.for_alert("critical", "enhet", False)
    assert default_critical is not None and default_critical.deadline is not None
    assert default_critical.deadline.working_days == 10
    closed = actions.for_alert("critical", "avdelning", True)
    assert closed is not None and "verksamhetsberättelsen" in closed.text


def test_deadlines_count_swedish_working_days() -> None:
    from services.notifier.actions import add_working_days, deadline, easter_sunday
    from services.notifier.routing import DeadlineSpec

    assert easter_sunday(2025) == date(2025, 4, 20)
    assert easter_sunday(2024) == date(2024, 3, 31)
    # Friday 12 September 2025 + 10 working days: two weekends skipped.
    assert add_working_days(date(2025, 9, 12), 10) == date(2025, 9, 26)
    # Around Christmas 2025: 24, 25, 26 and 31 December and 1, 6 January are days off.
    assert add_working_days(date(2025, 12, 19), 5) == date(2026, 1, 2)
    assert add_working_days(date(2025, 12, 22), 3) == date(2025, 12, 30)
    # Easter 2025: långfredagen 18 April and annandag påsk 21 April.
    assert add_working_days(date(2025, 4, 17), 1) == date(2025, 4, 22)
    # Midsommarafton 2025 is Friday 20 June.
    assert add_working_days(date(2025, 6, 19), 1) == date(2025, 6, 23)
    # Counted in Swedish time: 23:30 UTC on 12 September is already the 13th in Stockholm.
    late = datetime(2025, 9, 12, 23, 30, tzinfo=UTC)
    assert deadline(DeadlineSpec(working_days=1), late) == date(2025, 9, 15)
    assert deadline(DeadlineSpec(day_of_next_month=15), late) == date(2025, 10, 15)
    # A replayed history: March 2024 raised in December 2026 counts from the end of April 2024
    # (1 May and Kristi himmelsfärd, 9 May, are holidays).
    replayed = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    assert deadline(DeadlineSpec(working_days=10), replayed, "2024-03") == date(2024, 5, 16)
    # Raised in time (before the end of September): counted from the day it was raised.
    assert deadline(DeadlineSpec(working_days=10), late, "2025-08") == date(2025, 9, 26)
    assert deadline(DeadlineSpec(day_of_next_month=15), datetime(2025, 12, 3, tzinfo=UTC)) == date(
        2026, 1, 15
    )


def test_report_link_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import UserError
    from services.notifier.settings import NotifierSettings, load_env_settings

    for name in ("BUDGETVAKT_REPORT_BASE_URL", "BUDGETVAKT_REPORT_LINK"):
        monkeypatch.delenv(name, raising=False)
    assert NotifierSettings().report_url("2024-08", "AO") is None  # no base: no link
    monkeypatch.setenv("BUDGETVAKT_REPORT_BASE_URL", "https://intranat.storvik.example/bv/")
    assert NotifierSettings().report_url("2024-08", "AO") == (
        "https://intranat.storvik.example/bv/rapporter/delarsrapport-2024-08.html"
    )
    monkeypatch.setenv("BUDGETVAKT_REPORT_LINK", "{base}/perioder/{period}/noder/{org_unit}")
    assert NotifierSettings().report_url("2024-08", "AO") == (
        "https://intranat.storvik.example/bv/perioder/2024-08/noder/AO"
    )
    monkeypatch.setenv("BUDGETVAKT_REPORT_LINK", "{base}/{enhet}")
    with pytest.raises(UserError) as caught:
        load_env_settings()
    assert str(caught.value).startswith("BUDGETVAKT_REPORT_LINK: ")
    assert "{base}, {period}, {org_unit}" in str(caught.value)
