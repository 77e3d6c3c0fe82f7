"""The database URL is a secret: masked in repr/str, printed only with its password hidden."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.settings import Settings

URL = "postgresql+psycopg2://budgetvakt:hemligt-lösen@db.storvik.example:5432/budgetvakt"


def test_the_database_url_is_masked_when_settings_are_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BUDGETVAKT_DATABASE_URL", URL)
    settings = Settings()
    assert settings.database_configured
    assert settings.database_url_or_default() == URL
    for shown in (repr(settings), str(settings), str(settings.model_dump())):
        assert "hemligt" not in shown


def test_without_a_url_the_embedded_sqlite_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.delenv("BUDGETVAKT_DATABASE_URL", raising=False)
    monkeypatch.setenv("BUDGETVAKT_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert not settings.database_configured
    assert settings.database_url_or_default() == f"sqlite:///{tmp_path}/budgetvakt.sqlite"


def test_url_errors_hide_the_password() -> None:
    from services.snapshots.engine import describe_url, make_engine

    assert describe_url(URL) == (
        "postgresql+psycopg2://budgetvakt:***@db.storvik.example:5432/budgetvakt"
    )
    with pytest.raises(UserError) as caught:
        make_engine("postgresql+nosuchdriver://budgetvakt:hemligt-lösen@db/x")
    assert "hemligt" not in str(caught.value)
    assert "***" in str(caught.value)
