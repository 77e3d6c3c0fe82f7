"""The follow-up data model on SQLite and PostgreSQL: writes, the read API, versions, audit."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.followup.errors import Conflict, InvalidInput, NotFound
from services.followup.read import (
    approval_history,
    audit_trail,
    comment_history,
    load_follow_up,
    snapshot_versions,
)
from services.followup.write import (
    add_measure,
    approve,
    set_adjustment,
    set_comment,
    update_measure,
)
from tests.services.followup.fixtures import PERIOD


def test_an_empty_period_reads_as_empty(followup_engine: Any) -> None:
    follow_up = load_follow_up(followup_engine, PERIOD)
    assert follow_up.period == PERIOD
    assert dict(follow_up.nodes) == {}


def test_writes_read_back_with_history_and_audit(followup_engine: Any) -> None:
    set_comment(followup_engine, period=PERIOD, org_unit="AO", text="Första", by="anna")
    set_comment(followup_engine, period=PERIOD, org_unit="AO", text="Vikarier ökar", by="anna")
    measure_id = add_measure(
        followup_engine,
        period=PERIOD,
        org_unit="AO",
        text="Bemanningsöversyn",
        responsible="Anna Berg",
        amount_sek=2_500_000,
        status="beslutad",
        decided="2024-04-02",
        by="anna",
    )
    update_measure(
        followup_engine,
        period=PERIOD,
        org_unit="AO",
        measure_id=measure_id,
        status="genomford",
        realised_sek=1_200_000.0,
        by="anna",
    )
    set_adjustment(
        followup_engine,
        period=PERIOD,
        org_unit="1110",
        full_year_sek=90_000_000,
        reason="Placering upphör i oktober",
        by="karin",
    )
    nodes = load_follow_up(followup_engine, PERIOD).nodes
    assert set(nodes) == {"AO", "1110"}
    ao = nodes["AO"]
    assert (ao.comment, ao.comment_by) == ("Vikarier ökar", "anna")
    assert len(ao.measures) == 1
    measure = ao.measures[0]
    assert (measure.status, measure.realised_sek, measure.decided) == (
        "genomford",
        1_200_000.0,
        date(2024, 4, 2),
    )
    assert ao.adjusted_full_year_sek is None and ao.approval is None
    assert nodes["1110"].adjusted_full_year_sek == 90_000_000
    assert nodes["1110"].adjustment_reason == "Placering upphör i oktober"
    assert [c.text for c in comment_history(followup_engine, PERIOD, "AO")] == [
        "Vikarier ökar",
        "Första",
    ]
    actions = [(e.action, e.username) for e in audit_trail(followup_engine, PERIOD)]
    assert actions == [
        ("forecast", "karin"),
        ("measure_update", "anna"),
        ("measure_add", "anna"),
        ("comment", "anna"),
        ("comment", "anna"),
    ]
    update = audit_trail(followup_engine, PERIOD, "AO")[0]
    assert update.before["status"] == "beslutad" and update.after["status"] == "genomford"


def test_input_errors_name_the_field(followup_engine: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        set_adjustment(
            followup_engine, period=PERIOD, org_unit="AO", full_year_sek=1.0, reason=" ", by="x"
        )
    assert err.value.field == "reason"
    with pytest.raises(InvalidInput) as err:
        add_measure(
            followup_engine,
            period=PERIOD,
            org_unit="AO",
            text="t",
            responsible="r",
            amount_sek=1.0,
            status="klar",
            by="x",
        )
    assert err.value.field == "status"
    with pytest.raises(NotFound, match="NOPE"):
        set_comment(followup_engine, period=PERIOD, org_unit="NOPE", text="t", by="x")
    with pytest.raises(NotFound, match="2031-01"):
        set_comment(followup_engine, period="2031-01", org_unit="AO", text="t", by="x")
    assert audit_trail(followup_engine) == []


def test_approval_order_freezing_and_a_new_version(followup_engine: Any) -> None:
    with pytest.raises(Conflict, match="AO, IFO, LSS"):
        approve(followup_engine, period=PERIOD, org_unit="VON", by="ctrl")
    with pytest.raises(InvalidInput) as err:
        approve(followup_engine, period=PERIOD, org_unit="1110", by="ctrl")
    assert err.value.field == "org_unit"
    set_comment(followup_engine, period=PERIOD, org_unit="AO", text="Före", by="anna")
    for unit in ("AO", "LSS", "IFO"):
        approve(followup_engine, period=PERIOD, org_unit=unit, by="ctrl")
    approval = approve(followup_engine, period=PERIOD, org_unit="VON", by="ctrl", comment="OK")
    assert approval.snapshot_version == 1
    assert load_follow_up(followup_engine, PERIOD).nodes["VON"].approval == approval

    # A change below AO after the approval makes version 2; AO and VON must be approved again
    # (VON, with no other follow-up data, drops out of the nodes), LSS and IFO are carried over.
    set_comment(followup_engine, period=PERIOD, org_unit="1110", text="Efter", by="karin")
    assert [v for v, _, _ in snapshot_versions(followup_engine, PERIOD)] == [2, 1]
    nodes = load_follow_up(followup_engine, PERIOD).nodes
    assert nodes["AO"].approval is None and "VON" not in nodes
    assert nodes["LSS"].approval is not None and nodes["LSS"].approval.snapshot_version == 2
    frozen = [e for e in approval_history(followup_engine, PERIOD, "AO")]
    assert len(frozen) == 1 and not frozen[0].current
    assert frozen[0].frozen["comment"] == "Före"
    assert audit_trail(followup_engine, PERIOD)[1].action == "new_version"


def test_the_audit_table_rejects_changes(followup_engine: Any) -> None:
    set_comment(followup_engine, period=PERIOD, org_unit="AO", text="t", by="anna")
    with pytest.raises(DBAPIError), followup_engine.begin() as connection:
        connection.execute(text("DELETE FROM followup_audit"))
