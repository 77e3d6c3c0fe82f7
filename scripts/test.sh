#!/usr/bin/env bash
# The whole test suite: lint, then pytest (unit and integration tests against the embedded broker).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
.venv/bin/ruff check .
.venv/bin/lint-imports --no-logo  # the layer contract of pyproject.toml [tool.importlinter]
.venv/bin/python -m pytest "$@"
