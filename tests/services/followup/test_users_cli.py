"""``budgetvakt users add|list|remove`` on a SQLite store, and the stored hash (argon2id)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.followup.models import UserRecord
from services.snapshots import make_engine, upgrade
from testing.cli import run_cli


def test_users_add_list_remove(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    env = {"BUDGETVAKT_DATABASE_URL": url, "BUDGETVAKT_DATA_DIR": str(tmp_path)}
    added = run_cli(
        "users",
        "add",
        "eva",
        "--role",
        "avdelningschef",
        "--node",
        "AO",
        "--password-stdin",
        env=env,
        stdin_text="ett-langt-losenord\n",
    )
    assert added.returncode == 0, added.stderr
    assert "added eva: avdelningschef of AO" in added.stdout
    again = run_cli(
        "users",
        "add",
        "eva",
        "--role",
        "controller",
        "--node",
        "VON",
        "--password-stdin",
        env=env,
        stdin_text="ett-annat-losenord\n",
    )
    assert again.returncode == 2 and "exists already" in again.stderr
    unknown_node = run_cli(
        "users",
        "add",
        "olle",
        "--role",
        "enhetschef",
        "--node",
        "9999",
        "--password-stdin",
        env=env,
        stdin_text="ett-langt-losenord\n",
    )
    assert unknown_node.returncode == 2 and "--node '9999'" in unknown_node.stderr
    short = run_cli(
        "users",
        "add",
        "olle",
        "--role",
        "enhetschef",
        "--node",
        "1110",
        "--password-stdin",
        env=env,
        stdin_text="kort\n",
    )
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    no_stdin = run_cli("users", "add", "olle", "--role", "enhetschef", "--node", "1110", env=env)
    assert no_stdin.returncode == 2 and "--password-stdin" in no_stdin.stderr

    listed = run_cli("users", "list", env=env)
    assert listed.stdout.splitlines() == ["eva\tavdelningschef\tAO"]
    engine = make_engine(url)
    with Session(engine) as session:
        stored = session.scalar(select(UserRecord.password_hash))
    engine.dispose()
    assert stored is not None and stored.startswith("$argon2id$")
    assert "ett-langt-losenord" not in stored

    assert run_cli("users", "remove", "eva", env=env).returncode == 0
    assert "no users" in run_cli("users", "list", env=env).stdout
    missing = run_cli("users", "remove", "eva", env=env)
    assert missing.returncode == 2 and "no user eva" in missing.stderr


def test_a_kommun_controller_is_given_several_namnder(tmp_path: Path) -> None:
    from tests.services.snapshots.fixtures import write_kommun_config

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    upgrade(url)
    config = write_kommun_config(tmp_path / "config")
    env = {
        "BUDGETVAKT_DATABASE_URL": url,
        "BUDGETVAKT_DATA_DIR": str(tmp_path),
        "BUDGETVAKT_CONFIG_DIR": str(config),
    }
    args = ["users", "add", "kim", "--role", "controller", "--node", "VON", "--node", "BUN"]
    added = run_cli(*args, "--password-stdin", env=env, stdin_text="ett-langt-losenord\n")
    assert added.returncode == 0, added.stderr
    assert "added kim: controller of VON,BUN" in added.stdout
    listed = run_cli("users", "list", env=env)
    assert "kim\tcontroller\tVON,BUN" in listed.stdout
    wrong = run_cli(
        "users",
        "add",
        "olle",
        "--role",
        "controller",
        "--node",
        "VON",
        "--node",
        "SN",
        "--password-stdin",
        env=env,
        stdin_text="ett-langt-losenord\n",
    )
    assert wrong.returncode == 2 and "--node 'SN' is not a node" in wrong.stderr
