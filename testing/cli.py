"""Run ``python -m services <command>`` as a user would and capture what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

CLI_TIMEOUT_S = 120.0


def run_cli(
    *args: str,
    env: Mapping[str, str] | None = None,
    inherit_settings: bool = True,
    cwd: Path | None = None,
    timeout_s: float = CLI_TIMEOUT_S,
    stdin_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """The command's exit code, stdout and stderr (text); it logs JSON.

    ``env`` comes on top of this process's environment; ``inherit_settings=False`` first drops
    every ``BUDGETVAKT_*`` variable from it, so only ``env`` configures the command.
    ``stdin_text`` is the command's standard input (none: empty)."""
    base = {
        key: value
        for key, value in os.environ.items()
        if inherit_settings or not key.startswith("BUDGETVAKT_")
    }
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        env={**base, "BUDGETVAKT_LOG_FORMAT": "json", **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        input=stdin_text if stdin_text is not None else "",
    )
