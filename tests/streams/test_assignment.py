"""streams.assignment: whole nämnder dealt over the workers by size."""

from __future__ import annotations

from types import SimpleNamespace

from core.domain import DomainConfig
from core.hierarchy import UNMAPPED_ID, OrgNode, OrgTree
from streams.assignment import balance, copartitioned_with, owner_weights
from streams.ownership import Ownership, home_partition


def test_the_heaviest_partitions_are_dealt_first_to_the_lightest_worker() -> None:
    weights = {0: 500.0, 1: 400.0, 2: 300.0, 3: 200.0, 5: 100.0}
    # Faust's count-balanced deal gave "a" the three heaviest.
    current = {"a": {0, 1, 2}, "b": {3, 4, 5}, "c": {6, 7, 8}}
    dealt = balance(current, 9, weights)
    loads = {m: sum(weights.get(p, 0.0) for p in ps) for m, ps in dealt.items()}
    assert sorted(loads.values()) == [500.0, 500.0, 500.0]  # Faust's: 1 200, 300, 0
    assert sorted(p for ps in dealt.values() for p in ps) == list(range(9))  # each exactly once
    assert sorted(len(ps) for ps in dealt.values()) == [3, 3, 3]  # empty ones even the counts


def test_a_tie_keeps_a_partition_where_it_is() -> None:
    weights = {0: 10.0, 1: 10.0}
    dealt = balance({"a": {1}, "b": {0}}, 2, weights)
    assert dealt == {"a": {1}, "b": {0}}
    assert balance({"a": {1}, "b": {0}}, 2, weights) == dealt  # deterministic


def test_one_worker_gets_everything_and_no_worker_nothing() -> None:
    assert balance({"only": set()}, 4, {2: 3.0}) == {"only": {0, 1, 2, 3}}
    assert balance({}, 4, {2: 3.0}) == {}


def test_a_partition_weighs_the_cost_centres_homed_on_it(domain: DomainConfig) -> None:
    org = domain.org
    ownership = Ownership(org)
    weights = owner_weights(org, ownership)(4)
    leaves = [n for n in org.nodes if n != UNMAPPED_ID and not org.children(n)]
    assert sum(weights.values()) == len(leaves) + 1  # and one for omappad's home
    (namnd,) = org.namnder
    assert weights[home_partition(namnd, 4)] >= len(leaves)


def test_nämnder_of_a_kommun_spread_by_size() -> None:
    nodes = {
        "STOR": OrgNode("STOR", "Stor nämnd", "namnd", None),
        "LITEN": OrgNode("LITEN", "Liten nämnd", "namnd", None),
        UNMAPPED_ID: OrgNode(UNMAPPED_ID, "Omappad", "namnd", None),
    }
    for i in range(30):
        nodes[f"S{i}"] = OrgNode(f"S{i}", f"S{i}", "enhet", "STOR")
    for i in range(3):
        nodes[f"L{i}"] = OrgNode(f"L{i}", f"L{i}", "enhet", "LITEN")
    org = OrgTree(nodes)
    weights = owner_weights(org, Ownership(org))(64)
    assert weights[home_partition("STOR", 64)] == 30
    assert weights[home_partition("LITEN", 64)] == 3


def test_the_co_partitioned_group_is_the_topics_dealt_alike() -> None:
    assignments = {
        "a": SimpleNamespace(actives={"cost": [0, 1], "changelog": [1, 0], "alert": [0]}),
        "b": SimpleNamespace(actives={"cost": [2, 3], "changelog": [2, 3], "alert": [1, 2, 3]}),
    }
    counts = {"cost": 4, "changelog": 4, "alert": 4, "other": 8}
    assert copartitioned_with(assignments, "cost", counts) == ["cost", "changelog"]
