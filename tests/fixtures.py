"""Fixtures every area shares: the shipped configuration, loaded once per session.

Read-only by convention: a test that needs a changed configuration builds its own copy.
"""

from __future__ import annotations

import pytest

from core.domain import DomainConfig
from core.settings import DEFAULT_CONFIG_DIR
from services.config.domain import load_domain_config
from services.notifier.routing import Routing, load_routing


@pytest.fixture(scope="session")
def domain() -> DomainConfig:
    """The shipped domain: config/domain.yaml (org tree, categories, measures)."""
    return load_domain_config(DEFAULT_CONFIG_DIR)


@pytest.fixture(scope="session")
def routing(domain: DomainConfig) -> Routing:
    """The shipped alert routing: config/routing.yaml on the shipped org tree."""
    return load_routing(DEFAULT_CONFIG_DIR / "routing.yaml", domain.org)
