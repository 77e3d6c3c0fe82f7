"""Load ``config/org.yaml``, ``config/categories.yaml`` and ``config/accounts.yaml``.

A broken file fails at start with a message naming the file, the key and the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.domain import AccountRange, Category, DomainConfig, Measure
from core.errors import ConfigError
from core.hierarchy import LEVELS, UNMAPPED_ID, UNMAPPED_NAME, OrgNode, OrgTree
from core.yamlfile import read_yaml

_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrgNodeSpec(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    level: Literal["namnd", "forvaltning", "avdelning", "enhet"]
    children: list[OrgNodeSpec] = []


class KommunSpec(_Strict):
    name: str = Field(min_length=1)
    namnder: list[OrgNodeSpec] = Field(min_length=1)


class OrgFile(_Strict):
    """One of three forms: ``tree`` (one nämnd), ``namnder`` (one kommun's nämnder) or
    ``kommuner`` (several kommuner, each with its nämnder)."""

    municipality: str = ""
    tree: OrgNodeSpec | None = None
    namnder: list[OrgNodeSpec] | None = None
    kommuner: list[KommunSpec] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> OrgFile:
        given = [k for k in ("tree", "namnder", "kommuner") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of tree, namnder or kommuner"
                + (f" (found {', '.join(given)})" if given else "")
            )
        if self.kommuner is not None and self.municipality:
            raise ValueError("with kommuner, name each kommun (kommuner[].name), not municipality")
        return self

    def kommun_namnder(self) -> list[tuple[str, str, list[OrgNodeSpec]]]:
        """(kommun name, yaml key, nämnder) per kommun."""
        if self.tree is not None:
            return [(self.municipality, "tree", [self.tree])]
        if self.namnder is not None:
            return [(self.municipality, "namnder", self.namnder)]
        assert self.kommuner is not None
        return [(k.name, f"kommuner.{i}.namnder", k.namnder) for i, k in enumerate(self.kommuner)]


class CategorySpec(_Strict):
    name_sv: str
    kind: Literal["cost", "revenue"]
    profile: str = "flat"
    posting_lag_months: int = Field(default=0, ge=0, le=3)
    pay_revision_month: int | None = Field(default=None, ge=1, le=12)
    volume_measure: str | None = None


class MeasureSpec(_Strict):
    name_sv: str
    unit: str


class CategoriesFile(_Strict):
    profiles: dict[str, list[float]]
    categories: dict[str, CategorySpec]
    measures: dict[str, MeasureSpec]

    @field_validator("profiles")
    @classmethod
    def _twelve_positive_weights(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        for name, weights in value.items():
            if len(weights) != 12:
                raise ValueError(f"profile {name!r} has {len(weights)} weights, expected 12")
            if any(w < 0 for w in weights) or sum(weights) <= 0:
                raise ValueError(f"profile {name!r} needs non-negative weights with a positive sum")
        return value


class AccountRangeSpec(_Strict):
    from_: int = Field(alias="from", ge=0)
    to: int = Field(ge=0)
    category: str


class AccountsFile(_Strict):
    ranges: list[AccountRangeSpec]


def _parse(model: type[_M], path: Path) -> _M:
    try:
        return model.model_validate(read_yaml(path))
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(str(path), key, first["msg"]) from None


def _flatten(
    spec: OrgNodeSpec, parent: OrgNodeSpec | None, out: dict[str, OrgNode], path: Path, key: str
) -> None:
    if spec.id in out or spec.id == UNMAPPED_ID:
        raise ConfigError(str(path), f"{key}.id", f"duplicate or reserved org unit id {spec.id!r}")
    if parent is not None and LEVELS.index(spec.level) <= LEVELS.index(parent.level):
        raise ConfigError(
            str(path),
            f"{key}.level",
            f"{spec.level!r} cannot sit under {parent.level!r} ({parent.id})",
        )
    out[spec.id] = OrgNode(spec.id, spec.name, spec.level, parent.id if parent else None)
    for i, child in enumerate(spec.children):
        _flatten(child, spec, out, path, f"{key}.children.{i}")


def load_org(path: Path) -> tuple[str, OrgTree]:
    """The organisation and the kommun's name (empty when several kommuner are configured)."""
    spec = _parse(OrgFile, path)
    nodes: dict[str, OrgNode] = {}
    municipality_of: dict[str, str] = {}
    forms = spec.kommun_namnder()
    for kommun, key, namnder in forms:
        for i, namnd in enumerate(namnder):
            node_key = key if key == "tree" else f"{key}.{i}"
            if namnd.level != "namnd":
                raise ConfigError(
                    str(path),
                    f"{node_key}.level",
                    f"a top node must be a namnd, not {namnd.level!r}",
                )
            _flatten(namnd, None, nodes, path, node_key)
            municipality_of[namnd.id] = kommun
    # Unknown cost centres are rolled up under a top node of their own: their own owner, so
    # they are never dropped and never counted in a nämnd they may not belong to.
    nodes[UNMAPPED_ID] = OrgNode(UNMAPPED_ID, UNMAPPED_NAME, "namnd", None)
    return (forms[0][0] if len(forms) == 1 else ""), OrgTree(nodes, municipality_of)


def load_domain_config(config_dir: Path) -> DomainConfig:
    municipality, org = load_org(config_dir / "org.yaml")
    cat_path = config_dir / "categories.yaml"
    cats = _parse(CategoriesFile, cat_path)
    categories: dict[str, Category] = {}
    for cid, c in cats.categories.items():
        if c.profile not in cats.profiles:
            raise ConfigError(
                str(cat_path),
                f"categories.{cid}.profile",
                f"unknown profile {c.profile!r}; known: {sorted(cats.profiles)}",
            )
        if c.volume_measure is not None and c.volume_measure not in cats.measures:
            raise ConfigError(
                str(cat_path),
                f"categories.{cid}.volume_measure",
                f"unknown measure {c.volume_measure!r}",
            )
        weights = cats.profiles[c.profile]
        total = sum(weights)
        categories[cid] = Category(
            cid,
            c.name_sv,
            c.kind,
            tuple(w / total for w in weights),
            c.posting_lag_months,
            c.pay_revision_month,
            c.volume_measure,
        )
    measures = {mid: Measure(mid, m.name_sv, m.unit) for mid, m in cats.measures.items()}
    acc_path = config_dir / "accounts.yaml"
    ranges: list[AccountRange] = []
    for i, r in enumerate(_parse(AccountsFile, acc_path).ranges):
        key = f"ranges.{i}"
        if r.category not in categories:
            raise ConfigError(str(acc_path), f"{key}.category", f"unknown category {r.category!r}")
        if r.to < r.from_:
            raise ConfigError(str(acc_path), f"{key}.to", f"{r.to} is below from={r.from_}")
        for other in ranges:
            if r.from_ <= other.end and other.start <= r.to:
                raise ConfigError(
                    str(acc_path), key, f"{r.from_}–{r.to} overlaps {other.start}–{other.end}"
                )
        ranges.append(AccountRange(r.from_, r.to, r.category))
    return DomainConfig(org, categories, measures, ranges, municipality)
