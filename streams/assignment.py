"""Which worker holds which input partitions: whole nämnder, spread by their size.

Faust's assignor balances the *number* of partitions per worker. A nämnd lives on one partition
(its home, :mod:`streams.ownership`), and most partitions hold no nämnd at all, so a count-balanced
assignment can give one worker most of a kommun and another nothing: measured at 8 nämnder on
4 partitions, one of three workers held almost nothing (170 MiB) while another held most of the
forecasting (docs/performance.md, "A kommun of real size").

:class:`OwnerBalancedAssignor` keeps Faust's assignment for everything else and re-deals the
partitions of the input topics' co-partitioned group (input topics and the table's changelog
move together) by weight: a partition weighs as many cost centres as are homed on it. The
heaviest partitions go first, each to the worker with the least weight so far (a worker that
already holds it wins a tie, so a rebalance moves as little as it can); the empty partitions
then even out the counts. Every member computes nothing: only the group leader's assignor runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from faust.assignor import PartitionAssignor

from core.hierarchy import UNMAPPED_ID, OrgTree
from streams.ownership import Ownership

log = structlog.get_logger(__name__)

Weigh = Callable[[int], dict[int, float]]  # partition count → weight per partition


def owner_weights(org: OrgTree, ownership: Ownership) -> Weigh:
    """Weight per partition: the cost centres (leaves) homed on it, plus one for ``omappad``'s
    home (an unknown cost centre lands there)."""

    def weigh(partitions: int) -> dict[int, float]:
        weights: dict[int, float] = {}
        leaves = (n for n in org.nodes if n != UNMAPPED_ID and not org.children(n))
        for unit in leaves:
            home = ownership.home(unit, partitions)
            weights[home] = weights.get(home, 0.0) + 1.0
        unmapped = ownership.home(UNMAPPED_ID, partitions)
        weights[unmapped] = weights.get(unmapped, 0.0) + 1.0
        return weights

    return weigh


def balance(
    current: Mapping[str, set[int]], partitions: int, weights: Mapping[int, float]
) -> dict[str, set[int]]:
    """Each member's partitions: weighted ones dealt heaviest first to the lightest member
    (its current holder on a tie), then the empty ones to the members with the fewest.

    Deterministic for the same members, holdings and weights (ties end in member order)."""
    members = sorted(current)
    if not members:
        return {}
    holder = {p: m for m in members for p in current[m]}
    load = dict.fromkeys(members, 0.0)
    dealt: dict[str, set[int]] = {m: set() for m in members}
    heavy = sorted(
        (p for p in range(partitions) if weights.get(p, 0.0) > 0), key=lambda p: (-weights[p], p)
    )
    for partition in heavy:
        lightest = min(load.values())
        candidates = [m for m in members if load[m] == lightest]
        chosen = holder.get(partition) if holder.get(partition) in candidates else candidates[0]
        assert chosen is not None
        dealt[chosen].add(partition)
        load[chosen] += weights[partition]
    for partition in (p for p in range(partitions) if weights.get(p, 0.0) <= 0):
        fewest = min(len(dealt[m]) for m in members)
        candidates = [m for m in members if len(dealt[m]) == fewest]
        chosen = holder.get(partition) if holder.get(partition) in candidates else candidates[0]
        assert chosen is not None
        dealt[chosen].add(partition)
    return dealt


def copartitioned_with(
    assignments: Mapping[str, Any], anchor: str, partitions_by_topic: Mapping[str, int]
) -> list[str]:
    """The topics dealt together with ``anchor`` (same partition count, same partitions per
    member): Faust's co-partitioned group, which must move as one."""
    count = partitions_by_topic.get(anchor)
    return [
        topic
        for topic, n in partitions_by_topic.items()
        if n == count
        and all(
            sorted(a.actives.get(topic, [])) == sorted(a.actives.get(anchor, []))
            for a in assignments.values()
        )
    ]


class OwnerBalancedAssignor(PartitionAssignor):
    """Faust's assignor with the input partitions re-dealt by :func:`balance` (module doc).

    ``input_topics`` and ``weigh`` are set by the worker after the app is created; without
    them it is Faust's assignor unchanged."""

    input_topics: Sequence[str] = ()
    weigh: Weigh | None = None

    def _global_table_standby_assignments(
        self, assignments: Any, partitions_by_topic: Mapping[str, int]
    ) -> Any:
        self._balance_owners(assignments, partitions_by_topic)
        return super()._global_table_standby_assignments(assignments, partitions_by_topic)

    def _balance_owners(self, assignments: Any, partitions_by_topic: Mapping[str, int]) -> None:
        anchor = next((t for t in self.input_topics if t in partitions_by_topic), None)
        if anchor is None or self.weigh is None or not assignments:
            return
        partitions = partitions_by_topic[anchor]
        group = copartitioned_with(assignments, anchor, partitions_by_topic)
        current = {m: set(a.actives.get(anchor, [])) for m, a in assignments.items()}
        dealt = balance(current, partitions, self.weigh(partitions))
        for member, assignment in assignments.items():
            for topic in group:
                assignment.actives[topic] = sorted(dealt[member])
                standbys = assignment.standbys.get(topic)
                if standbys:  # none configured (table_standby_replicas=0); never both
                    assignment.standbys[topic] = [p for p in standbys if p not in dealt[member]]
        log.info(
            "partitions_dealt_by_weight",
            members=len(dealt),
            partitions={m[-8:]: sorted(p) for m, p in dealt.items()},
        )
