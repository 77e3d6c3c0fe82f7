"""The follow-up of a kommun with two nämnder (VON, BUN) that closed the same month: each
nämnd's follow-up, approvals and versions are its own."""

from __future__ import annotations

from typing import Any

import pytest

from services.followup.read import (
    approval_history,
    load_follow_up,
    periods_with_snapshots,
    snapshot_versions,
)
from services.followup.write import approve, set_comment
from services.snapshots.store import SeveralNamnder, load_snapshot
from tests.services.followup.fixtures import PERIOD


def test_each_namnd_reads_its_own_follow_up(kommun_followup_engine: Any) -> None:
    engine = kommun_followup_engine
    set_comment(engine, period=PERIOD, org_unit="AO", text="Vikarier", by="anna")
    set_comment(engine, period=PERIOD, org_unit="BFS", text="Fler barn", by="bo")
    von = load_follow_up(engine, PERIOD, namnd="VON")
    bun = load_follow_up(engine, PERIOD, namnd="BUN")
    assert set(von.nodes) == {"AO"} and von.nodes["AO"].comment == "Vikarier"
    assert set(bun.nodes) == {"BFS"} and bun.nodes["BFS"].comment == "Fler barn"
    assert dict(load_follow_up(engine, PERIOD, namnd="SN").nodes) == {}
    with pytest.raises(SeveralNamnder):
        load_follow_up(engine, PERIOD)
    assert periods_with_snapshots(engine, ["BUN"]) == [PERIOD]
    assert periods_with_snapshots(engine, ["SN"]) == []


def test_a_change_after_approval_versions_only_its_own_namnd(kommun_followup_engine: Any) -> None:
    engine = kommun_followup_engine
    approve(engine, period=PERIOD, org_unit="BFS", by="bo")
    approve(engine, period=PERIOD, org_unit="AO", by="cecilia")
    assert load_follow_up(engine, PERIOD, namnd="BUN").nodes["BFS"].approval is not None
    # A change below BUN's approved avdelning: BUN gets version 2, VON stays at version 1.
    set_comment(engine, period=PERIOD, org_unit="B1110", text="Sjukfrånvaro", by="bo")
    assert [v for v, _, _ in snapshot_versions(engine, PERIOD, "BUN")] == [2, 1]
    assert [v for v, _, _ in snapshot_versions(engine, PERIOD, "VON")] == [1]
    bun2 = load_snapshot(engine, PERIOD, namnd="BUN")
    assert bun2 is not None and bun2.version == 2 and bun2.trigger == "cli"
    assert {n.org_unit for n in bun2.forecast.nodes} >= {"BUN", "BFS", "B1110"}
    assert "AO" not in {n.org_unit for n in bun2.forecast.nodes}
    assert "BFS" not in load_follow_up(engine, PERIOD, namnd="BUN").nodes  # approval superseded
    von = load_follow_up(engine, PERIOD, namnd="VON").nodes["AO"]
    assert von.approval is not None and von.approval.snapshot_version == 1
    history = approval_history(engine, PERIOD, "BFS")
    assert [(e.approval.snapshot_version, e.current) for e in history] == [(1, False)]
    assert [e.org_unit for e in approval_history(engine, PERIOD, namnd="VON")] == ["AO"]
    # The nämnd can be approved once its avdelning is approved again, for version 2.
    approve(engine, period=PERIOD, org_unit="BFS", by="bo")
    approve(engine, period=PERIOD, org_unit="BUN", by="bo")
    approved = load_follow_up(engine, PERIOD, namnd="BUN").nodes["BUN"].approval
    assert approved is not None and approved.snapshot_version == 2
