"""Fixtures for the docker-compose.yml and Dockerfile checks (no Docker engine is needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_SCHEMA_PATH = Path(__file__).with_name("compose-spec.json")


@pytest.fixture(scope="session")
def compose_repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def compose_doc() -> dict[str, Any]:
    with (REPO_ROOT / "docker-compose.yml").open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    assert isinstance(doc, dict), "docker-compose.yml must be a mapping"
    return doc


@pytest.fixture(scope="session")
def compose_schema() -> dict[str, Any]:
    with COMPOSE_SCHEMA_PATH.open(encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema
