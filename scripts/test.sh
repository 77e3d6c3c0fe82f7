#!/usr/bin/env bash
# The whole test suite: lint, then pytest in two runs so that failures show fast: the unit tests
# (no broker, database, browser or Prometheus tool; about a minute), then the integration tests
# (the embedded broker, real workers and notifiers, PostgreSQL, Chromium, promtool/amtool, the
# demo). With arguments, pytest runs once with them: `scripts/test.sh tests/services/reports -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
.venv/bin/ruff check .
.venv/bin/lint-imports --no-logo  # the layer contract of pyproject.toml [tool.importlinter]
if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest -m "not integration"
.venv/bin/python -m pytest -m integration
