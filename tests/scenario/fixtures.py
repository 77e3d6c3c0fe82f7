"""Fixtures for the scenario generator and the demo."""

from __future__ import annotations

import pytest

from core.domain import DomainConfig
from core.settings import DEFAULT_CONFIG_DIR
from services.config.domain import load_domain_config
from services.demo.scenario import Scenario, generate_scenario


@pytest.fixture(scope="session")
def scenario_domain() -> DomainConfig:
    return load_domain_config(DEFAULT_CONFIG_DIR)


@pytest.fixture(scope="session")
def scenario(scenario_domain: DomainConfig) -> Scenario:
    return generate_scenario(
        seed=2024, start_year=2023, years=2, overrun=True, domain=scenario_domain
    )
