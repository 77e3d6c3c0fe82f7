"""Who may do what (pure rules over the shipped org tree), and logins and sessions on SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.domain import DomainConfig
from services.followup.users import (
    User,
    add_user,
    login,
    logout,
    may_approve,
    may_read,
    may_write,
    session_user,
)

NOW = datetime(2024, 9, 1, tzinfo=UTC)


def user(role: str, node: str) -> User:
    return User("u", role, node, NOW)


@pytest.mark.parametrize(
    ("role", "node", "reads", "writes", "approves"),
    [
        # node: (reads, writes, approves) for 1110, 1120, AO, LSS, VON
        ("enhetschef", "1110", "10101", "10000", "00000"),
        ("avdelningschef", "AO", "11101", "11100", "00000"),
        ("controller", "VON", "11111", "11111", "11111"),
        ("controller", "AO", "11111", "11100", "11100"),
        ("forvaltningschef", "VOF", "11111", "00000", "00000"),
    ],
)
def test_each_role_reads_writes_and_approves_only_where_it_belongs(
    domain: DomainConfig, role: str, node: str, reads: str, writes: str, approves: str
) -> None:
    who = user(role, node)
    targets = ("1110", "1120", "AO", "LSS", "VON")
    got = {
        "reads": "".join("1" if may_read(domain.org, who, t) else "0" for t in targets),
        "writes": "".join("1" if may_write(domain.org, who, t) else "0" for t in targets),
        "approves": "".join("1" if may_approve(domain.org, who, t) else "0" for t in targets),
    }
    assert got == {"reads": reads, "writes": writes, "approves": approves}


def test_login_sessions_expire_and_end_at_logout(store_engine: Any, domain: DomainConfig) -> None:
    add_user(
        store_engine,
        domain.org,
        username="eva",
        role="avdelningschef",
        node="AO",
        password="ett-langt-losenord",
    )
    assert login(store_engine, "eva", "fel-losenord-x", timedelta(hours=1)) is None
    assert login(store_engine, "ingen", "ett-langt-losenord", timedelta(hours=1)) is None
    live = login(store_engine, "eva", "ett-langt-losenord", timedelta(hours=1))
    assert live is not None and live.user.role == "avdelningschef"
    found = session_user(store_engine, live.token)
    assert found is not None and found.csrf_token == live.csrf_token
    assert session_user(store_engine, live.token + "x") is None
    expired = login(store_engine, "eva", "ett-langt-losenord", timedelta(seconds=-1))
    assert expired is not None and session_user(store_engine, expired.token) is None
    logout(store_engine, live.token)
    assert session_user(store_engine, live.token) is None
