import os
from pathlib import Path

from typer.testing import CliRunner

from services.cli import app


def test_help_lists_the_program() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "budgetvakt" in result.output.lower()


def test_bad_settings_and_unreadable_config_get_a_message_not_a_traceback(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    from core.settings import DEFAULT_CONFIG_DIR

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    (config / "rules.yaml").write_bytes(b"\xff\xfe rules")
    cases = [
        (
            {"BUDGETVAKT_FORECAST_MODEL": "nope"},
            ["report", "--period", "2024-08"],
            "BUDGETVAKT_FORECAST_MODEL: Value error, unknown model 'nope'",
        ),
        (
            {"BUDGETVAKT_CONFIG_DIR": str(config), "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": "x:1"},
            ["worker"],
            "rules.yaml: (file): not UTF-8 text (byte 0)",
        ),
        (
            {
                "BUDGETVAKT_SMTP_CA_FILE": str(tmp_path / "none.pem"),
                "BUDGETVAKT_KAFKA_BOOTSTRAP_SERVERS": "x:1",
            },
            ["notifier"],
            "BUDGETVAKT_SMTP_CA_FILE: Path does not point to a file",
        ),
    ]
    for env, args, expected in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "services", *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (args, proc.stderr[-2000:])
        assert expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
