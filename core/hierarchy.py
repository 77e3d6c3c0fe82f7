"""The organisation tree (nämnd → förvaltning → avdelning → enhet) and roll-ups over it.

Pure data: loading it from ``config/org.yaml`` happens in ``services.config.domain``.
A cost centre that is not in the tree is rolled up under the explicit node ``omappad`` so that
its money is counted, visible and flagged, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

LEVELS: tuple[str, ...] = ("namnd", "forvaltning", "avdelning", "enhet")
UNMAPPED_ID = "omappad"
UNMAPPED_NAME = "Omappade kostnadsställen"


@dataclass(frozen=True)
class OrgNode:
    id: str
    name: str
    level: str
    parent: str | None


@dataclass
class OrgTree:
    """An immutable-by-convention tree; ``nodes`` maps id → node, roots have ``parent=None``."""

    nodes: dict[str, OrgNode]
    _children: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for node in self.nodes.values():
            if node.parent is not None:
                self._children.setdefault(node.parent, []).append(node.id)

    @property
    def root(self) -> OrgNode:
        return next(n for n in self.nodes.values() if n.parent is None)

    def is_known(self, unit_id: str) -> bool:
        return unit_id in self.nodes and unit_id != UNMAPPED_ID

    def children(self, node_id: str) -> list[OrgNode]:
        return [self.nodes[c] for c in self._children.get(node_id, [])]

    def path(self, unit_id: str) -> list[str]:
        """Ids from the unit itself up to the root; an unknown unit hangs under ``omappad``."""
        ids = [unit_id] if unit_id in self.nodes else [unit_id, UNMAPPED_ID]
        while (parent := self.nodes[ids[-1]].parent) is not None:
            ids.append(parent)
        return ids

    def level_of(self, node_id: str) -> str:
        node = self.nodes.get(node_id)
        return node.level if node is not None else "enhet"

    def rollup(self, values: Mapping[str, float]) -> dict[str, float]:
        """Sum leaf values into every ancestor; the result holds the leaves and all roll-ups."""
        out: dict[str, float] = {}
        for unit_id, value in values.items():
            for node_id in self.path(unit_id):
                out[node_id] = out.get(node_id, 0.0) + value
        return out

    def descendants_leaves(self, node_id: str) -> Iterable[str]:
        kids = self._children.get(node_id, [])
        if not kids:
            yield node_id
        for kid in kids:
            yield from self.descendants_leaves(kid)
