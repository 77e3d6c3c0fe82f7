"""Alert routing and mails in a deployment of several nämnder: recipients per nämnd, a kommun's
ekonomichef who hears every nämnd's critical alerts, and mails that name the nämnd (and the
kommun when there are several)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from contract.output_records import AlertEvent
from core.domain import DomainConfig
from core.errors import ConfigError
from services.config.domain import load_domain_config
from services.notifier.render import email_body
from services.notifier.routing import Routing, load_routing
from tests.services.notifier.fixtures import make_alert
from tests.services.snapshots.fixtures import write_kommun_config

ROUTING: dict[str, Any] = {
    "recipients": {
        "vera": {
            "name": "Vera Lind",
            "role": "Controller VON",
            "min_severity": "warning",
            "channels": {"email": "vera@storvik.example"},
        },
        "bo": {
            "name": "Bo Ek",
            "role": "Controller BUN",
            "min_severity": "info",
            "channels": {"email": "bo@storvik.example"},
        },
        "eva": {
            "name": "Eva Holm",
            "role": "Ekonomichef Storvik kommun",
            "min_severity": "critical",
            "channels": {"email": "eva@storvik.example"},
        },
    },
    "units": {"VON": ["vera"], "BUN": ["bo"]},
    "kommuner": {"Storvik kommun": ["eva"]},
}


@pytest.fixture
def kommun(tmp_path: Path) -> tuple[Path, DomainConfig]:
    config = write_kommun_config(tmp_path / "config")
    return config, load_domain_config(config)


def _routing(config: Path, domain: DomainConfig, document: dict[str, Any]) -> Routing:
    path = config / "routing.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
    return load_routing(path, domain.org, {})


def _alert(unit: str, severity: str) -> AlertEvent:
    return AlertEvent.model_validate(make_alert(unit, severity=severity))


def _to(routing: Routing, domain: DomainConfig, unit: str, severity: str) -> set[str]:
    return {r.id for r in routing.recipients_for(_alert(unit, severity), domain.org)}


def test_each_namnd_has_its_recipients_and_the_ekonomichef_hears_every_critical(
    kommun: tuple[Path, DomainConfig],
) -> None:
    config, domain = kommun
    routing = _routing(config, domain, ROUTING)
    assert _to(routing, domain, "B1110", "info") == {"bo"}
    assert _to(routing, domain, "B1110", "warning") == {"bo"}
    assert _to(routing, domain, "B1110", "critical") == {"bo", "eva"}
    assert _to(routing, domain, "1110", "warning") == {"vera"}
    assert _to(routing, domain, "AO", "critical") == {"vera", "eva"}
    # "*": every nämnd, whatever the kommun is called.
    every = _routing(config, domain, {**ROUTING, "kommuner": {"*": ["eva"]}})
    assert _to(every, domain, "BUN", "critical") == {"bo", "eva"}


def test_an_unknown_kommun_is_a_config_error(kommun: tuple[Path, DomainConfig]) -> None:
    config, domain = kommun
    with pytest.raises(ConfigError, match=r"kommuner\.Uppsala kommun.*Storvik kommun"):
        _routing(config, domain, {**ROUTING, "kommuner": {"Uppsala kommun": ["eva"]}})
    with pytest.raises(ConfigError, match="unknown recipient 'nils'"):
        _routing(config, domain, {**ROUTING, "kommuner": {"Storvik kommun": ["nils"]}})


def test_the_mail_names_the_namnd_and_a_digest_of_two_namnder_the_kommun(
    kommun: tuple[Path, DomainConfig],
) -> None:
    config, domain = kommun
    routing = _routing(config, domain, ROUTING)
    alerts = [_alert("B1110", "critical"), _alert("1110", "critical")]
    body = email_body(routing.recipients["eva"], alerts, domain)
    assert "budgetvakt har 2 budgetlarm för Storvik kommun efter stängningen av augusti 2025:" in (
        body
    )
    assert "Förskola 1110 (B1110), Barn- och utbildningsnämnden · augusti 2025" in body
    assert "Hemtjänst Norr (1110), Vård- och omsorgsnämnden · augusti 2025" in body
    assert "Storvik kommun ·" not in body  # one kommun: not repeated on every item


def test_with_several_kommuner_the_mail_names_the_kommun(tmp_path: Path) -> None:
    config = write_kommun_config(tmp_path / "config")
    document = yaml.safe_load((config / "org.yaml").read_text("utf-8"))
    von, bun = document["namnder"]
    (config / "org.yaml").write_text(
        yaml.safe_dump(
            {
                "kommuner": [
                    {"name": "Storvik kommun", "namnder": [von]},
                    {"name": "Älvby kommun", "namnder": [bun]},
                ]
            },
            allow_unicode=True,
        ),
        "utf-8",
    )
    domain = load_domain_config(config)
    routing = _routing(config, domain, {**ROUTING, "kommuner": {"*": ["eva"]}})
    alerts = [_alert("B1110", "critical"), _alert("1110", "critical")]
    body = email_body(routing.recipients["eva"], alerts, domain)
    assert "2 budgetlarm för flera kommuner" in body
    assert "Förskola 1110 (B1110), Barn- och utbildningsnämnden, Älvby kommun · " in body
    assert "Hemtjänst Norr (1110), Vård- och omsorgsnämnden, Storvik kommun · " in body
    only_bun = email_body(routing.recipients["bo"], alerts[:1], domain)
    assert "budgetvakt har ett budgetlarm för Förskola 1110" in only_bun
