"""Revision 0004 on a database with data: every snapshot gets the nämnd of its rows, versions
then count per nämnd and period, and the immutability and foreign keys hold as before."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from services.snapshots import make_engine, upgrade
from services.snapshots.migrate import current_revision
from services.snapshots.store import load_late_events, load_snapshot

NOW = datetime(2024, 4, 2, 8, 0, tzinfo=UTC)


def _snapshot(connection: Any, period: str, version: int, *, namnd: str | None = None) -> int:
    columns = "period, year, month, version, checkpoint, trigger, created_at, as_of_month, "
    columns += "model, late_event_count" + (", namnd" if namnd else "")
    values = ":period, 2024, :month, :version, NULL, 'period_close', :at, :month, 'auto', 0"
    values += ", :namnd" if namnd else ""
    connection.execute(
        text(f"INSERT INTO snapshot ({columns}) VALUES ({values})"),
        {
            "period": period,
            "month": int(period[-2:]),
            "version": version,
            "at": NOW,
            "namnd": namnd,
        },
    )
    return int(
        connection.execute(
            text(
                "SELECT id FROM snapshot WHERE period = :p AND version = :v"
                + (" AND namnd = :n" if namnd else "")
            ),
            {"p": period, "v": version, "n": namnd},
        ).scalar_one()
    )


def _row(connection: Any, snapshot_id: int, unit: str, level: str, parent: str | None) -> None:
    connection.execute(
        text(
            "INSERT INTO snapshot_row (snapshot_id, org_unit, org_unit_name, level, "
            "parent_org_unit, kind, category, year, as_of_month, budget_full_year, budget_ytd, "
            "actual_ytd, full_year, low, high, sigma, deviation, model, volume_effect, "
            "price_effect, actual_monthly, budget_monthly, path) VALUES (:s, :u, NULL, :l, :p, "
            "'cost', 'total', 2024, 3, 120.0, 30.0, 31.0, 125.0, 120.0, 130.0, 2.0, -5.0, "
            "'sum', NULL, NULL, '[10.0, 10.0, 11.0]', NULL, '[10.0, 10.0, 10.0, 10.0, 10.0, "
            "10.0, 10.0, 10.0, 10.0]')"
        ),
        {"s": snapshot_id, "u": unit, "l": level, "p": parent},
    )


def _old_database(url: str) -> Engine:
    """A database at 0003 with two periods of the one nämnd VON (version 2 of March written with
    no org, so no row has a parent), omappad rows inside it (as before the forest), a late event
    and a follow-up user."""
    assert upgrade(url, "0003") == "0003"
    engine = make_engine(url)
    with engine.begin() as connection:
        for period, version, with_parents in (
            ("2024-02", 1, True),
            ("2024-03", 1, True),
            ("2024-03", 2, False),
        ):
            snapshot_id = _snapshot(connection, period, version)
            _row(
                connection,
                snapshot_id,
                "omappad",
                "namnd" if not with_parents else "enhet",
                "VON" if with_parents else None,
            )
            _row(connection, snapshot_id, "VON", "namnd", None)
            _row(connection, snapshot_id, "1110", "enhet", "VON" if with_parents else None)
        connection.execute(
            text(
                "INSERT INTO late_event (event_id, org_unit, period, type, amount, received_at) "
                "VALUES ('late-1', '1110', '2024-02', 'cost', 10.0, :at)"
            ),
            {"at": NOW},
        )
        connection.execute(
            text(
                "INSERT INTO followup_user (username, password_hash, role, org_unit, created_at) "
                "VALUES ('kim', 'x', 'controller', 'VON', :at)"
            ),
            {"at": NOW},
        )
    return engine


def test_0004_back_fills_the_namnd_and_counts_versions_per_namnd(database_url: str) -> None:
    engine = _old_database(database_url)
    try:
        assert upgrade(database_url) == "0004" == current_revision(engine)
        with engine.connect() as connection:
            stored = connection.execute(
                text("SELECT period, version, namnd FROM snapshot ORDER BY id")
            ).all()
        assert [tuple(r) for r in stored] == [
            ("2024-02", 1, "VON"),
            ("2024-03", 1, "VON"),
            ("2024-03", 2, "VON"),
        ]
        march = load_snapshot(engine, "2024-03")  # the only nämnd is the default
        assert march is not None and (march.namnd, march.version) == ("VON", 2)
        assert [e.namnd for e in load_late_events(engine)] == [None]

        # Another nämnd's March starts at version 1; VON's version 2 cannot be written twice.
        with engine.begin() as connection:
            _snapshot(connection, "2024-03", 1, namnd="BUN")
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _snapshot(connection, "2024-03", 2, namnd="VON")
        # Snapshots stay immutable and rows keep pointing at an existing snapshot.
        with pytest.raises(Exception, match="immutable"), engine.begin() as connection:
            connection.execute(text("UPDATE snapshot SET namnd = 'BUN' WHERE version = 2"))
        with pytest.raises(Exception, match="immutable"), engine.begin() as connection:
            connection.execute(text("DELETE FROM snapshot WHERE period = '2024-02'"))
        with pytest.raises(IntegrityError), engine.begin() as connection:
            _row(connection, 999_999, "1110", "enhet", "VON")
        # A kommun's controller may hold several nodes.
        nodes = ",".join(f"NAMND{i:02d}" for i in range(40))
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE followup_user SET org_unit = :n WHERE username = 'kim'"),
                {"n": nodes},
            )
            assert (
                connection.execute(
                    text("SELECT role FROM followup_user WHERE org_unit = :n"), {"n": nodes}
                ).scalar_one()
                == "controller"
            )
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text("UPDATE followup_user SET role = 'kung'"))
    finally:
        engine.dispose()
