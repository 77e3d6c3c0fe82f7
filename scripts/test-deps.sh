#!/usr/bin/env bash
# Debian packages the integration tests run for real: promtool and amtool (observability config),
# Chromium (the HTML report in a headless browser) and the PostgreSQL server binaries (a private
# cluster per test session). Installed only when missing, without recommended packages.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
    || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
    echo "test-deps: installing ${need[*]} with apt-get" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
