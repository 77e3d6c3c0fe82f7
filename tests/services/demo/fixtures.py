"""Fixtures for the scenario generator and the demo."""

from __future__ import annotations

import pytest

from core.domain import DomainConfig
from services.demo.scenario import Scenario, generate_scenario


@pytest.fixture(scope="session")
def scenario(domain: DomainConfig) -> Scenario:
    return generate_scenario(seed=2024, overrun=True, domain=domain)
