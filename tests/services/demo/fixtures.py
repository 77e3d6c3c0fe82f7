"""Fixtures for the scenario generator and the demo."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from core.domain import DomainConfig
from services.demo.kommun import Kommun
from services.demo.scenario import Scenario, generate_scenario


@pytest.fixture(scope="session")
def scenario(domain: DomainConfig) -> Scenario:
    return generate_scenario(seed=2024, overrun=True, domain=domain)


@dataclass(frozen=True)
class KommunCase:
    """A small generated kommun: every nämnd, few cost centres, its config loaded back."""

    kommun: Kommun
    config_dir: Path
    domain: DomainConfig
    scenario: Scenario


KOMMUN_NAMNDER = 8
KOMMUN_COST_CENTRES = 120
KOMMUN_YEARS = 3


@pytest.fixture(scope="session")
def generated_kommun(tmp_path_factory: pytest.TempPathFactory) -> KommunCase:
    from core.settings import DEFAULT_CONFIG_DIR
    from services.config.domain import load_domain_config
    from services.demo.kommun import build_kommun, write_kommun_config
    from services.demo.scenario import generate_from_design

    kommun = build_kommun(KOMMUN_NAMNDER, KOMMUN_COST_CENTRES, seed=11)
    config_dir = tmp_path_factory.mktemp("kommun") / "config"
    write_kommun_config(
        kommun,
        config_dir,
        DEFAULT_CONFIG_DIR,
        {"namnder": KOMMUN_NAMNDER, "cost_centres": KOMMUN_COST_CENTRES, "seed": 11},
    )
    domain = load_domain_config(config_dir)
    scenario = generate_from_design(kommun.design, domain, 11, None, KOMMUN_YEARS)
    return KommunCase(kommun, config_dir, domain, scenario)
