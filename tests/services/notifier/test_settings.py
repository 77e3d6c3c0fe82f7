"""SMTP credentials: from the environment or a secret file, never shown in errors or reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import UserError
from services.notifier.settings import load_env_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PASSWORD", "PASSWORD_FILE", "USERNAME"):
        monkeypatch.delenv(f"BUDGETVAKT_SMTP_{name}", raising=False)


def test_the_password_from_a_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "smtp_password"
    secret.write_text("hemligt lösen\n", encoding="utf-8")
    monkeypatch.setenv("BUDGETVAKT_SMTP_USERNAME", "budgetvakt")
    monkeypatch.setenv("BUDGETVAKT_SMTP_PASSWORD_FILE", str(secret))
    _, smtp = load_env_settings()
    assert smtp.password.get_secret_value() == "hemligt lösen"
    assert smtp.uses_login
    assert "hemligt" not in repr(smtp) and "hemligt" not in str(smtp)


def test_a_missing_secret_file_names_the_variable_and_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BUDGETVAKT_SMTP_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(UserError) as caught:
        load_env_settings()
    assert str(caught.value).startswith("BUDGETVAKT_SMTP_PASSWORD_FILE: ")
    assert f"cannot read {tmp_path / 'absent'}: No such file or directory" in str(caught.value)


def test_password_and_password_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "smtp_password"
    secret.write_text("från-filen", encoding="utf-8")
    monkeypatch.setenv("BUDGETVAKT_SMTP_PASSWORD", "från-miljön")
    monkeypatch.setenv("BUDGETVAKT_SMTP_PASSWORD_FILE", str(secret))
    with pytest.raises(UserError, match="not both") as caught:
        load_env_settings()
    assert "från" not in str(caught.value)
