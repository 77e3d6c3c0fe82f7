"""The home of an event (``streams.ownership``), the recorded scheme, and the re-keying plan
(``streams.rekeying``): pure logic, no broker."""

from __future__ import annotations

import json

import pytest

from core.hierarchy import UNMAPPED_ID, OrgNode, OrgTree
from streams.ownership import (
    Ownership,
    SchemeRecord,
    effective_record,
    home_partition,
    judge,
    moved_units,
)
from streams.rekeying import latest_values, plan_rekeying

PARTITIONS = 4


def forest() -> OrgTree:
    """Three nämnder (SN, VON, BUN), each with a förvaltning and two enheter, and omappad."""
    nodes = [OrgNode(UNMAPPED_ID, "Omappade", "namnd", None)]
    for namnd, units in (("SN", ("S1", "S2")), ("VON", ("V1", "V2")), ("BUN", ("B1", "B2"))):
        nodes.append(OrgNode(namnd, namnd, "namnd", None))
        nodes.append(OrgNode(f"{namnd}-F", "F", "forvaltning", namnd))
        nodes += [OrgNode(u, u, "enhet", f"{namnd}-F") for u in units]
    return OrgTree({n.id: n for n in nodes})


def test_the_home_of_an_event_is_the_partition_of_its_namnd_s_key() -> None:
    org = forest()
    ownership = Ownership(org)
    for unit, namnd in (("S1", "SN"), ("S2", "SN"), ("V1", "VON"), ("SN-F", "SN"), ("SN", "SN")):
        assert ownership.key(unit) == namnd
        assert ownership.home(unit, PARTITIONS) == home_partition(namnd, PARTITIONS)
    # An unknown cost centre is owned by omappad: a home of its own, never dropped.
    assert ownership.key("9999") == UNMAPPED_ID
    assert ownership.home("9999", PARTITIONS) == home_partition(UNMAPPED_ID, PARTITIONS)
    # Every cost centre of a nämnd has one home, so one worker holds the nämnd whole.
    assert len({ownership.home(u, 64) for u in ("S1", "S2", "SN-F", "SN")}) == 1


def test_the_cost_centre_scheme_keys_by_the_org_unit_itself() -> None:
    ownership = Ownership(forest(), "cost_centre")
    assert ownership.key("S1") == "S1"
    assert ownership.key("9999") == "9999"
    assert ownership.home("S1", 1000) == home_partition("S1", 1000)
    with pytest.raises(ValueError, match="unknown partition key scheme"):
        Ownership(forest(), "kommun")  # type: ignore[arg-type]


def test_owners_on_partitions_are_the_namnder_whose_home_is_there() -> None:
    ownership = Ownership(forest())
    homes = {o: home_partition(o, PARTITIONS) for o in ("SN", "VON", "BUN", UNMAPPED_ID)}
    for partition in range(PARTITIONS):
        expected = [o for o, home in homes.items() if home == partition]
        assert ownership.owners_on({partition}, PARTITIONS) == expected
    assert sorted(ownership.owners_on(range(PARTITIONS), PARTITIONS)) == sorted(homes)


# --- The recorded scheme ----------------------------------------------------------------------


def record(
    scheme: str, state: str = "initial", owners: dict[str, str] | None = None
) -> SchemeRecord:
    return SchemeRecord(scheme, state, PARTITIONS, owners or {})  # type: ignore[arg-type]


def test_a_record_survives_its_bytes_and_garbage_is_no_record() -> None:
    original = record("namnd", "migrated", {"S1": "SN"})
    back = SchemeRecord.from_bytes(original.to_bytes())
    assert back is not None
    assert (back.scheme, back.state, back.partitions, back.owners) == (
        "namnd",
        "migrated",
        PARTITIONS,
        {"S1": "SN"},
    )
    for raw in (b"", b"{", b"[]", b'{"scheme": "kommun", "state": "initial"}', b'{"state": 1}'):
        assert SchemeRecord.from_bytes(raw) is None


def test_the_first_initial_record_wins_and_each_migration_replaces_it() -> None:
    assert effective_record([]) is None
    first, loser = record("cost_centre"), record("namnd")
    assert effective_record([first, loser]) == first  # two workers raced on an empty deployment
    migrating = record("namnd", "migrating")
    assert effective_record([first, loser, migrating]) == migrating
    done = record("namnd", "migrated")
    assert effective_record([first, migrating, done, record("cost_centre")]) == done


def test_a_worker_records_its_scheme_on_an_empty_deployment() -> None:
    ownership = Ownership(forest())
    verdict = judge(None, False, ownership, PARTITIONS, "app")
    assert verdict.refusal is None and verdict.record is not None
    assert (verdict.record.scheme, verdict.record.state) == ("namnd", "initial")
    assert verdict.record.owners["S1"] == "SN" and verdict.record.owners["BUN"] == "BUN"
    legacy = judge(None, True, Ownership(forest(), "cost_centre"), PARTITIONS, "app")
    assert legacy.record is not None and legacy.record.scheme == "cost_centre"


@pytest.mark.parametrize(
    ("recorded", "state_exists", "scheme", "says"),
    [
        (None, True, "namnd", "written with cost-centre keys"),
        (record("cost_centre"), True, "namnd", "BUDGETVAKT_PARTITION_KEY=namnd but"),
        (record("namnd"), True, "cost_centre", "is keyed by namnd"),
        (record("namnd", "migrating"), True, "namnd", "has not finished"),
        (record("namnd", "migrating"), True, "cost_centre", "has not finished"),
    ],
)
def test_a_worker_refuses_a_scheme_that_is_not_the_state_s(
    recorded: SchemeRecord | None, state_exists: bool, scheme: str, says: str
) -> None:
    verdict = judge(recorded, state_exists, Ownership(forest(), scheme), PARTITIONS, "app-x")  # type: ignore[arg-type]
    assert verdict.refusal is not None and verdict.record is None
    assert says in verdict.refusal
    assert "budgetvakt migrate-keys" in verdict.refusal and "app-x" in verdict.refusal
    assert "\n" not in verdict.refusal


def test_a_namnd_worker_refuses_when_the_org_tree_moved_a_cost_centre_to_another_owner() -> None:
    ownership = Ownership(forest())
    owners = ownership.owner_map()
    assert judge(record("namnd", "migrated", owners), True, ownership, 4, "a").refusal is None
    # S1 was under VON when the state was keyed; 7777 was unknown (omappad) and is now known.
    before = {**owners, "S1": "VON"}
    del before["S2"]
    assert moved_units(before, owners) == ["S1", "S2"]
    verdict = judge(record("namnd", "migrated", before), True, ownership, 4, "a")
    assert verdict.refusal is not None
    assert "moves 2 node(s)" in verdict.refusal and "S1: VON → SN" in verdict.refusal
    assert "S2: omappad → SN" in verdict.refusal
    # The cost-centre scheme does not depend on the tree.
    cost_centre = Ownership(forest(), "cost_centre")
    assert judge(record("cost_centre"), True, cost_centre, 4, "a").refusal is None


# --- The re-keying plan -----------------------------------------------------------------------


def value(*ids: str, amount: float = 100.0) -> dict[str, object]:
    return {"ids": list(ids), "cost": {"salaries": amount}}


def cost_centre_state(units: dict[str, dict[str, object]]) -> dict[str, tuple[int, object]]:
    """Table values as a cost-centre-keyed worker wrote them: ``p{home(unit)}|unit|2025-03``."""
    out: dict[str, tuple[int, object]] = {}
    for unit, val in units.items():
        partition = home_partition(unit, PARTITIONS)
        out[f"p{partition}|{unit}|2025-03"] = (partition, val)
    return out


def test_every_key_away_from_its_namnd_s_home_moves_there_with_its_value() -> None:
    ownership = Ownership(forest())
    units = {u: value(f"e-{u}") for u in ("S1", "S2", "V1", "V2", "B1", "B2", "9999")}
    latest = cost_centre_state(units)
    plan = plan_rekeying(latest, ownership, PARTITIONS)

    assert not plan.conflicts
    moved = {m.old_key: m for m in plan.moves}
    for key, (partition, val) in latest.items():
        unit = key.split("|")[1]
        home = ownership.home(unit, PARTITIONS)
        if partition == home:
            assert key not in moved
            continue
        move = moved[key]
        assert (move.new_key, move.new_partition, move.old_partition) == (
            f"p{home}|{unit}|2025-03",
            home,
            partition,
        )
        assert move.value == val and move.write
        assert move.owner == ownership.key(unit)
    assert plan.at_home + len(plan.moves) == len(latest)
    assert len(plan.moves) > 0  # the example must move something to prove anything
    # The unknown cost centre goes to omappad's home (murmur2 puts them apart at 4 partitions).
    assert home_partition("9999", PARTITIONS) != home_partition(UNMAPPED_ID, PARTITIONS)
    assert (
        moved["p0|9999|2025-03"].new_key
        == f"p{home_partition(UNMAPPED_ID, PARTITIONS)}|9999|2025-03"
    )
    assert moved["p0|9999|2025-03"].owner == UNMAPPED_ID


def test_the_plan_after_it_was_carried_out_moves_nothing() -> None:
    ownership = Ownership(forest())
    latest = cost_centre_state({u: value(u) for u in ("S1", "S2", "V1", "V2", "B1", "B2")})
    plan = plan_rekeying(latest, ownership, PARTITIONS)
    after = dict(latest)
    for move in plan.moves:
        after[move.new_key] = (move.new_partition, move.value)
        after[move.old_key] = (move.old_partition, None)
    again = plan_rekeying(after, ownership, PARTITIONS)
    assert again.moves == [] and again.conflicts == []
    assert again.at_home == len(latest)


def test_a_run_interrupted_after_the_writes_only_drops_the_old_keys() -> None:
    ownership = Ownership(forest())
    latest = cost_centre_state({u: value(u) for u in ("S1", "S2", "V1", "V2", "B1", "B2")})
    plan = plan_rekeying(latest, ownership, PARTITIONS)
    half = dict(latest)
    for move in plan.moves[: max(1, len(plan.moves) // 2)]:
        half[move.new_key] = (move.new_partition, move.value)  # written, not yet tombstoned
    resumed = plan_rekeying(half, ownership, PARTITIONS)
    assert {m.old_key for m in resumed.moves} == {m.old_key for m in plan.moves}
    written_before = {m.new_key for m in plan.moves[: max(1, len(plan.moves) // 2)]}
    assert {m.new_key for m in resumed.writes} == {m.new_key for m in plan.moves} - written_before


def test_two_different_values_for_one_key_are_a_conflict_not_a_sum() -> None:
    ownership = Ownership(forest())
    unit = next(
        u
        for u in ("S1", "S2", "V1", "V2", "B1", "B2")
        if home_partition(u, PARTITIONS) != ownership.home(u, PARTITIONS)
    )
    home = ownership.home(unit, PARTITIONS)
    old = home_partition(unit, PARTITIONS)
    latest = {
        f"p{old}|{unit}|2025-03": (old, value("a")),
        f"p{home}|{unit}|2025-03": (home, value("a", "b", amount=250.0)),  # a namnd worker ran
    }
    plan = plan_rekeying(latest, ownership, PARTITIONS)
    assert plan.conflicts == [f"{unit}|2025-03"]
    assert plan.moves == []


def test_budgets_and_closes_move_like_months_and_tombstones_are_gone() -> None:
    ownership = Ownership(forest())
    unit = next(
        u
        for u in ("S1", "S2", "V1", "V2", "B1", "B2")
        if home_partition(u, PARTITIONS) != ownership.home(u, PARTITIONS)
    )
    old, home = home_partition(unit, PARTITIONS), ownership.home(unit, PARTITIONS)
    budget = {"ids": ["b"], "budget": {"salaries": {"kind": "category", "annual": 12.0}}}
    closed = {"ids": ["c"], "closed": ["2025-03"], "close_count": {"2025-03": 1}}
    latest = {
        f"p{old}|{unit}|budget|2025": (old, budget),
        f"p{old}|{unit}|closed": (old, closed),
        f"p{old}|{unit}|2024-01": (old, None),  # deleted: nothing to move
        "not a table key": (0, {"ids": []}),
    }
    plan = plan_rekeying(latest, ownership, PARTITIONS)
    assert {m.new_key: m.value for m in plan.moves} == {
        f"p{home}|{unit}|budget|2025": budget,
        f"p{home}|{unit}|closed": closed,
    }
    assert plan.unreadable == 1


def test_latest_values_reads_faust_s_json_keys_and_tombstones_in_log_order() -> None:
    from faust.serializers import codecs

    def dumps(obj: object) -> bytes:
        return bytes(codecs.dumps("json", obj))

    records = [
        (1, dumps("p1|Å1|2025-03"), dumps(value("a"))),
        (1, dumps("p1|Å1|2025-03"), dumps(value("a", "b"))),
        (2, dumps("p2|X|2025-03"), dumps(value("x"))),
        (2, dumps("p2|X|2025-03"), None),
        (3, None, b"{}"),
        (3, b"not json", b"{}"),
    ]
    assert latest_values(records) == {
        "p1|Å1|2025-03": (1, value("a", "b")),
        "p2|X|2025-03": (2, None),
    }
    assert json.loads(dumps("p1|Å1|2025-03")) == "p1|Å1|2025-03"
