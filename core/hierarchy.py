"""The organisation (nämnd → förvaltning → avdelning → enhet) and roll-ups over it.

Pure data: loading it from ``config/org.yaml`` happens in ``services.config.domain``.

The organisation is a forest: one tree per nämnd, possibly of several kommuner. The nämnd is the
unit of ownership (one worker forecasts, alerts on and snapshots a whole nämnd). A cost centre
that is not in any tree is rolled up under the explicit top node ``omappad``, its own owner, so
that its money is counted, visible and flagged, never dropped.
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
    # nämnd id → its kommun's name (empty when the configuration names none)
    municipality_of_namnd: dict[str, str] = field(default_factory=dict)
    _children: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for node in self.nodes.values():
            if node.parent is not None:
                self._children.setdefault(node.parent, []).append(node.id)

    @property
    def roots(self) -> list[OrgNode]:
        """The top nodes in configuration order: every nämnd, then ``omappad`` if present."""
        return [n for n in self.nodes.values() if n.parent is None]

    @property
    def namnder(self) -> list[str]:
        """The configured nämnder (top nodes), without ``omappad``."""
        return [n.id for n in self.roots if n.id != UNMAPPED_ID]

    @property
    def owners(self) -> list[str]:
        """Every unit of ownership: the nämnder and ``omappad``."""
        return [*self.namnder, UNMAPPED_ID]

    @property
    def root(self) -> OrgNode:
        """The one nämnd of a single-nämnd organisation; code that serves several nämnder
        must go through :attr:`namnder` / :meth:`subtree` instead."""
        namnder = self.namnder
        if len(namnder) != 1:
            raise ValueError(f"the organisation has {len(namnder)} nämnder; ask per nämnd")
        return self.nodes[namnder[0]]

    def owner_of(self, unit_id: str) -> str:
        """The nämnd whose worker processes ``unit_id``'s events; ``omappad`` when unknown."""
        return self.path(unit_id)[-1]

    def municipality_of(self, node_id: str) -> str:
        return self.municipality_of_namnd.get(self.owner_of(node_id), "")

    def subtree(self, owner: str) -> OrgTree:
        """One nämnd (or ``omappad``) as a tree of its own, for per-nämnd forecasts and reports."""
        keep = {owner}
        stack = [owner]
        while stack:
            for kid in self._children.get(stack.pop(), []):
                keep.add(kid)
                stack.append(kid)
        return OrgTree(
            {i: n for i, n in self.nodes.items() if i in keep},
            {k: v for k, v in self.municipality_of_namnd.items() if k in keep},
        )

    def is_known(self, unit_id: str) -> bool:
        return unit_id in self.nodes and unit_id != UNMAPPED_ID

    def children(self, node_id: str) -> list[OrgNode]:
        return [self.nodes[c] for c in self._children.get(node_id, [])]

    def path(self, unit_id: str) -> list[str]:
        """Ids from the unit itself up to the root; an unknown unit hangs under ``omappad``."""
        ids = [unit_id] if unit_id in self.nodes else [unit_id, UNMAPPED_ID]
        if ids[-1] not in self.nodes:  # a nämnd's subtree has no omappad node
            return ids
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
