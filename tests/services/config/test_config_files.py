"""The shipped config loads; a broken config file fails with file, key and problem named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.hierarchy import UNMAPPED_ID
from core.settings import DEFAULT_CONFIG_DIR
from services.config.domain import load_domain_config


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def test_shipped_config_loads() -> None:
    domain = load_domain_config(DEFAULT_CONFIG_DIR)
    assert domain.org.root.level == "namnd"
    assert {"salaries", "substitutes", "overtime", "revenue_grants"} <= set(domain.categories)
    assert domain.categories["overtime"].posting_lag_months == 1
    for category in domain.categories.values():
        assert sum(category.profile) == pytest.approx(1.0)
    # omappad is a top node of its own: the owner of unknown cost centres
    assert domain.org.nodes[UNMAPPED_ID].parent is None
    assert domain.org.owners == [domain.org.root.id, UNMAPPED_ID]


def test_unknown_org_unit_rolls_up_under_omappad() -> None:
    org = load_domain_config(DEFAULT_CONFIG_DIR).org
    totals = org.rollup({"1110": 100.0, "ZZ-9": 5.0})
    root = org.root.id
    assert totals["ZZ-9"] == 5.0
    assert totals[UNMAPPED_ID] == 5.0
    assert totals[root] == 100.0  # not counted in a nämnd it may not belong to
    assert org.path("ZZ-9") == ["ZZ-9", UNMAPPED_ID]
    assert org.owner_of("ZZ-9") == UNMAPPED_ID
    assert org.owner_of("1110") == root


def test_periodise_sums_exactly_to_annual() -> None:
    domain = load_domain_config(DEFAULT_CONFIG_DIR)
    months = domain.periodise("substitutes", 9_100_000.0)
    assert len(months) == 12
    assert sum(months) == 9_100_000.0
    assert max(months[5:8]) > months[0]  # summer substitutes


def test_account_mapping() -> None:
    domain = load_domain_config(DEFAULT_CONFIG_DIR)
    assert domain.category_for_account(5025) == "substitutes"
    assert domain.category_for_account(3510) == "revenue_grants"
    assert domain.category_for_account(9999) is None


@pytest.mark.parametrize(
    ("file", "old", "new", "key", "problem"),
    [
        (
            "categories.yaml",
            "profile: summer_substitutes,",
            "profile: winter,",
            "categories.substitutes.profile",
            "unknown profile 'winter'",
        ),
        (
            "categories.yaml",
            "posting_lag_months: 1,",
            "posting_lag_months: many,",
            "categories.overtime.posting_lag_months",
            "valid integer",
        ),
        (
            "categories.yaml",
            "flat: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]",
            "flat: [1, 1, 1]",
            "profiles",
            "has 3 weights, expected 12",
        ),
        (
            "accounts.yaml",
            "{from: 3500, to: 3599, category: revenue_grants}",
            "{from: 3500, to: 3599, category: grants}",
            "ranges.1.category",
            "unknown category 'grants'",
        ),
        ("accounts.yaml", "{from: 3600, to: 3999", "{from: 3400, to: 3999", "ranges.2", "overlaps"),
    ],
)
def test_broken_config_names_file_key_and_problem(
    config_copy: Path, file: str, old: str, new: str, key: str, problem: str
) -> None:
    path = config_copy / file
    text = path.read_text(encoding="utf-8")
    assert old in text, "the test's edit must apply to the shipped file"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_domain_config(config_copy)
    message = str(caught.value)
    assert file in message
    assert key in message
    assert problem in message


def test_missing_file_is_named(config_copy: Path) -> None:
    (config_copy / "accounts.yaml").unlink()
    with pytest.raises(ConfigError, match=r"accounts\.yaml.*file not found"):
        load_domain_config(config_copy)


MINIMAL_ORG = """
municipality: Test
tree:
  id: N
  name: Nämnd
  level: namnd
  children:
    - id: F
      name: Förvaltning
      level: forvaltning
      children:
        - {id: A, name: Avdelning, level: avdelning, children: [{id: E1, name: E, level: enhet}]}
"""


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        (
            "{id: E1, name: E, level: enhet}",
            "{id: E1, name: E, level: avdelning}",
            "tree.children.0.children.0.children.0.level",
            "cannot sit under 'avdelning'",
        ),
        (
            "{id: E1, name: E, level: enhet}",
            "{id: A, name: E, level: enhet}",
            "tree.children.0.children.0.children.0.id",
            "duplicate or reserved org unit id 'A'",
        ),
        (
            "{id: E1, name: E, level: enhet}",
            "{id: E1, name: E, level: team}",
            "tree.children.0.children.0.children.0.level",
            "Input should be",
        ),
        (
            "{id: E1, name: E, level: enhet}",
            "{id: E1, name: E, level: enhet, boss: x}",
            "tree.children.0.children.0.children.0.boss",
            "Extra inputs are not permitted",
        ),
        ("municipality: Test", "municipality: [unclosed", "line 3", "not valid YAML"),
    ],
)
def test_broken_org_file(config_copy: Path, old: str, new: str, key: str, problem: str) -> None:
    assert old in MINIMAL_ORG
    (config_copy / "org.yaml").write_text(MINIMAL_ORG.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_domain_config(config_copy)
    assert caught.value.file.endswith("org.yaml")
    assert caught.value.key == key
    assert problem in caught.value.problem


def _enhet(unit_id: str) -> dict[str, object]:
    return {"id": unit_id, "name": f"Enhet {unit_id}", "level": "enhet"}


def _namnd(namnd_id: str, *units: str) -> dict[str, object]:
    return {
        "id": namnd_id,
        "name": f"Nämnd {namnd_id}",
        "level": "namnd",
        "children": [
            {
                "id": f"{namnd_id}-F",
                "name": "Förvaltning",
                "level": "forvaltning",
                "children": [_enhet(u) for u in units],
            }
        ],
    }


def _write_org(config: Path, document: dict[str, object]) -> None:
    import yaml

    (config / "org.yaml").write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")


def test_a_kommun_with_several_namnder_is_a_forest_owned_per_namnd(config_copy: Path) -> None:
    _write_org(
        config_copy,
        {"municipality": "Storvik kommun", "namnder": [_namnd("SN", "1", "2"), _namnd("BUN", "3")]},
    )
    domain = load_domain_config(config_copy)
    org = domain.org
    assert org.namnder == ["SN", "BUN"]
    assert org.owners == ["SN", "BUN", UNMAPPED_ID]
    assert org.owner_of("3") == "BUN" and org.owner_of("SN-F") == "SN"
    assert org.municipality_of("2") == "Storvik kommun"
    assert org.rollup({"1": 1.0, "3": 2.0, "x": 4.0}) == {
        "1": 1.0,
        "SN-F": 1.0,
        "SN": 1.0,
        "3": 2.0,
        "BUN-F": 2.0,
        "BUN": 2.0,
        "x": 4.0,
        UNMAPPED_ID: 4.0,
    }
    with pytest.raises(ValueError, match="2 nämnder"):
        _ = org.root
    bun = domain.for_owner("BUN")
    assert bun.org.root.id == "BUN"
    assert set(bun.org.nodes) == {"BUN", "BUN-F", "3"}
    assert bun.org.path("1") == ["1", UNMAPPED_ID]  # not in this nämnd


def test_several_kommuner_name_each_namnd_s_kommun(config_copy: Path) -> None:
    _write_org(
        config_copy,
        {
            "kommuner": [
                {"name": "Knivsta kommun", "namnder": [_namnd("K-SN", "1")]},
                {
                    "name": "Enköpings kommun",
                    "namnder": [_namnd("E-VON", "2"), _namnd("E-SN", "3")],
                },
            ]
        },
    )
    domain = load_domain_config(config_copy)
    assert domain.municipality == ""
    assert domain.org.municipality_of("3") == "Enköpings kommun"
    assert domain.for_owner("K-SN").municipality == "Knivsta kommun"


@pytest.mark.parametrize(
    ("document", "key", "message"),
    [
        ({"municipality": "X"}, "(top level)", "exactly one of tree, namnder or kommuner"),
        (
            {"tree": _namnd("A", "1"), "namnder": [_namnd("B", "2")]},
            "(top level)",
            "found tree, namnder",
        ),
        (
            {"namnder": [_namnd("A", "1"), _namnd("B", "1")]},
            "namnder.1.children.0.children.0.id",
            "duplicate",
        ),
        ({"namnder": [_enhet("1")]}, "namnder.0.level", "must be a namnd"),
        ({"kommuner": [{"name": "K", "namnder": []}]}, "kommuner.0.namnder", "at least 1"),
    ],
)
def test_a_broken_org_file_names_the_key(
    config_copy: Path, document: dict[str, object], key: str, message: str
) -> None:
    _write_org(config_copy, document)
    with pytest.raises(ConfigError) as caught:
        load_domain_config(config_copy)
    assert key in str(caught.value)
    assert message in str(caught.value)
