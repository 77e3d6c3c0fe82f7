"""The kommun generator (services.demo.kommun): sizes, ids, configuration, events, determinism,
and ``budgetvakt scenario --namnder``."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from contract.pii import contains_personal_id
from contract.validation import parse_event
from core.errors import UserError
from core.settings import DEFAULT_CONFIG_DIR
from services.config.domain import load_domain_config
from services.demo.kommun import (
    KOMMUN_CATEGORIES,
    MAX_NAMNDER,
    NAMND_TEMPLATES,
    build_kommun,
    check_config,
    write_kommun_config,
)
from services.demo.scenario import generate_from_design, read_jsonl
from testing.cli import run_cli
from tests.services.demo.fixtures import (
    KOMMUN_COST_CENTRES,
    KOMMUN_NAMNDER,
    KOMMUN_YEARS,
    KommunCase,
)

HEADER = {"namnder": 2, "cost_centres": 20, "seed": 1}


def _nämnd_net(case: KommunCase, year: int, actual: bool) -> dict[str, int]:
    values: dict[str, int] = {}
    if actual:
        for unit, amount in case.scenario.actual_by_unit(year).items():
            owner = case.domain.org.owner_of(unit)
            values[owner] = values.get(owner, 0) + amount
    else:
        for (unit, _), amount in case.scenario.cost_budget(year).items():
            owner = case.domain.org.owner_of(unit)
            values[owner] = values.get(owner, 0) + amount
    return values


def test_sizes_are_as_asked_and_every_cost_centre_is_in_the_org(
    generated_kommun: KommunCase,
) -> None:
    org = generated_kommun.domain.org
    assert org.namnder == [t.id for t in NAMND_TEMPLATES[:KOMMUN_NAMNDER]]
    assert [org.nodes[n].name for n in org.namnder][:3] == [
        "Vård- och omsorgsnämnden",
        "Socialnämnden",
        "Barn- och utbildningsnämnden",
    ]
    leaves = [n.id for n in org.nodes.values() if n.level == "enhet"]
    cost_centres = generated_kommun.kommun.cost_centres
    assert len(cost_centres) == KOMMUN_COST_CENTRES
    assert sorted(leaves) == sorted(cost_centres)
    for unit in cost_centres:
        levels = [org.level_of(node) for node in org.path(unit)]
        assert levels == ["enhet", "avdelning", "forvaltning", "namnd"], unit
    # One förvaltning per nämnd, every nämnd with at least one avdelning and enhet.
    for namnd in org.namnder:
        assert [c.level for c in org.children(namnd)] == ["forvaltning"]
        assert list(org.descendants_leaves(namnd))


def test_ids_and_recipients_are_unique(generated_kommun: KommunCase) -> None:
    org_ids = [n["id"] for n in _walk(generated_kommun.kommun.org_yaml()["namnder"])]
    assert len(org_ids) == len(set(org_ids))
    routing = generated_kommun.kommun.routing
    addresses = [r["channels"]["email"] for r in routing["recipients"].values()]
    assert len(addresses) == len(set(addresses))
    assert all(a.endswith("@storvik.example") for a in addresses)
    # An enhetschef per enhet, an avdelningschef per avdelning, a förvaltningschef and a
    # controller per nämnd.
    org = generated_kommun.domain.org
    assert set(routing["units"]) == set(org.nodes) - {"omappad"} - {
        n.id for n in org.nodes.values() if n.level == "forvaltning"
    }
    assert set(routing["controllers"]) == set(org.namnder)


def _walk(nodes: list[dict[str, object]]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for node in nodes:
        out.append(node)
        out += _walk(node.get("children", []))  # type: ignore[arg-type]
    return out


def test_the_written_configuration_loads_as_the_services_load_it(
    generated_kommun: KommunCase,
) -> None:
    names = sorted(p.name for p in generated_kommun.config_dir.iterdir())
    assert names == [
        "accounts.yaml",
        "categories.yaml",
        "checkpoints.yaml",
        "org.yaml",
        "routing.yaml",
        "rules.yaml",
    ]
    domain = check_config(generated_kommun.config_dir, generated_kommun.kommun)
    assert domain.municipality == "Storvik kommun"
    assert set(KOMMUN_CATEGORIES) <= set(domain.categories)
    assert len(KOMMUN_CATEGORIES) == 12
    # Per nämnd, as a per-nämnd worker sees it.
    von = domain.for_owner("VON")
    assert von.org.namnder == ["VON"]


def test_cost_centres_are_spread_by_budget_weight(generated_kommun: KommunCase) -> None:
    org = generated_kommun.domain.org
    per_namnd = Counter(org.owner_of(u) for u in generated_kommun.kommun.cost_centres)
    # The big nämnder (VON, BUN) get the most cost centres, the small (MBN) the fewest.
    assert per_namnd["BUN"] > per_namnd["KFN"] > per_namnd["MBN"] >= 1
    assert per_namnd["VON"] > per_namnd["SN"]
    assert sum(per_namnd.values()) == KOMMUN_COST_CENTRES


def test_budgets_have_a_real_kommuns_proportions(generated_kommun: KommunCase) -> None:
    last = generated_kommun.scenario.years[-1]
    budget = _nämnd_net(generated_kommun, last, actual=False)
    assert budget["VON"] == pytest.approx(1_050e6, rel=0.01)  # like Enköping's VON 2024
    assert budget["BUN"] > budget["VON"] > budget["KS"] > budget["KFN"] > budget["MBN"]
    assert 3.0e9 < sum(budget.values()) < 4.0e9  # ≈ 45 000 inhabitants
    first = _nämnd_net(generated_kommun, generated_kommun.scenario.years[0], actual=False)
    assert first["VON"] == pytest.approx(budget["VON"] / 1.04 ** (KOMMUN_YEARS - 1), rel=0.01)


def test_every_cost_centre_has_the_twelve_kostnadsslag_every_month(
    generated_kommun: KommunCase,
) -> None:
    scenario = generated_kommun.scenario
    assert len(scenario.costs) == KOMMUN_COST_CENTRES * 12 * 12 * KOMMUN_YEARS
    per_unit: dict[str, set[str]] = {}
    for cost in scenario.costs:
        per_unit.setdefault(cost["org_unit"], set()).add(cost["category"])
    assert set(per_unit) == set(generated_kommun.kommun.cost_centres)
    assert all(cats == set(KOMMUN_CATEGORIES) for cats in per_unit.values())
    for (unit, category), annual in scenario.cost_budget(scenario.years[-1]).items():
        kind = generated_kommun.domain.categories[category].kind
        assert annual != 0 and (annual < 0) == (kind == "revenue"), (unit, category)


def test_history_is_near_budget_and_the_forecast_year_overruns_in_some_namnder(
    generated_kommun: KommunCase,
) -> None:
    scenario = generated_kommun.scenario
    for year in scenario.years[:-1]:
        budget = _nämnd_net(generated_kommun, year, actual=False)
        actual = _nämnd_net(generated_kommun, year, actual=True)
        for namnd, amount in budget.items():
            assert abs(actual[namnd] - amount) < 0.015 * amount, (year, namnd)
    # Each history year has surprises of its own.
    surprises = [
        {(u, c) for (y, u, c), d in scenario.designed_deviation.items() if y == year and d}
        for year in scenario.years[:-1]
    ]
    assert surprises[0] != surprises[1]
    last = scenario.years[-1]
    budget = _nämnd_net(generated_kommun, last, actual=False)
    actual = _nämnd_net(generated_kommun, last, actual=True)
    deficit = {n: (budget[n] - actual[n]) / budget[n] for n in budget}
    assert deficit["VON"] < -0.005 and deficit["SN"] < -0.005  # alerts fire: vikarier, placements
    assert deficit["MBN"] > -0.005  # not every nämnd overruns
    whys = {o.why for o in scenario.overruns}
    assert {"vikarier", "övertid", "placeringar"} <= whys


def test_closes_per_namnd_every_month(generated_kommun: KommunCase) -> None:
    closes = generated_kommun.scenario.period_closes
    namnder = generated_kommun.domain.org.namnder
    assert len(closes) == len(namnder) * 12 * KOMMUN_YEARS
    first_month = [c["org_unit"] for c in closes[: len(namnder)]]
    assert first_month == namnder
    assert {c["period"] for c in closes[: len(namnder)]} == {
        f"{generated_kommun.scenario.years[0]}-01"
    }


def test_events_pass_the_stream_contract_and_hold_no_personnummer(
    generated_kommun: KommunCase,
) -> None:
    events = generated_kommun.scenario.all_events()
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids))
    known = set(generated_kommun.domain.org.nodes) - {"omappad"}
    # Every closed month's events are checked for a sample of the volume: all of one year.
    for event in events:
        if event.get("period", str(event.get("year", "")))[:4] != str(
            generated_kommun.scenario.years[-1]
        ):
            continue
        raw = json.dumps(event, ensure_ascii=False)
        parsed = parse_event(raw.encode(), generated_kommun.domain)
        assert parsed.event_id == event["event_id"]
        assert event["org_unit"] in known
        assert not contains_personal_id(raw), event["event_id"]
    for path in generated_kommun.config_dir.iterdir():
        assert not contains_personal_id(path.read_text("utf-8")), path.name


def test_same_seed_same_kommun_other_seed_other() -> None:
    first, again, other = build_kommun(3, 60, 5), build_kommun(3, 60, 5), build_kommun(3, 60, 6)
    assert first.org_yaml() == again.org_yaml()
    assert first.routing == again.routing
    assert first.design == again.design
    assert first.design.budget_mnkr != other.design.budget_mnkr
    assert first.cost_centres == other.cost_centres  # the ids depend on the sizes only


def test_events_are_deterministic(generated_kommun: KommunCase) -> None:
    again = generate_from_design(
        generated_kommun.kommun.design, generated_kommun.domain, 11, None, KOMMUN_YEARS
    )
    assert again.all_events() == generated_kommun.scenario.all_events()


@pytest.mark.parametrize(
    ("namnder", "cost_centres", "problem"),
    [
        (0, 10, "--namnder must be between 1 and"),
        (MAX_NAMNDER + 1, 100, "--namnder must be between 1 and"),
        (4, 3, "--cost-centres must be at least --namnder (4)"),
    ],
)
def test_impossible_sizes_are_refused(namnder: int, cost_centres: int, problem: str) -> None:
    with pytest.raises(UserError, match=re.escape(problem)):
        build_kommun(namnder, cost_centres)


def test_one_namnd_one_cost_centre_is_a_kommun_too(tmp_path: Path) -> None:
    kommun = build_kommun(1, 1)
    write_kommun_config(kommun, tmp_path / "config", DEFAULT_CONFIG_DIR, HEADER)
    domain = load_domain_config(tmp_path / "config")
    assert domain.org.namnder == ["VON"] and kommun.cost_centres == ["110001"]


def test_an_existing_configuration_is_refused_or_replaced_whole(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "org.yaml").write_text("# mine\n", encoding="utf-8")
    (config_dir / "notes.txt").write_text("keep me\n", encoding="utf-8")
    kommun = build_kommun(2, 20, 1)
    with pytest.raises(UserError, match=r"already holds a configuration; .* --force"):
        write_kommun_config(kommun, config_dir, DEFAULT_CONFIG_DIR, HEADER)
    assert (config_dir / "org.yaml").read_text("utf-8") == "# mine\n"
    write_kommun_config(kommun, config_dir, DEFAULT_CONFIG_DIR, HEADER, replace=True)
    assert not (config_dir / "notes.txt").exists()  # replaced whole, nothing left over
    assert load_domain_config(config_dir).org.namnder == ["VON", "SN"]
    assert [p.name for p in tmp_path.iterdir()] == ["config"]  # no staging directory left


def test_a_configuration_that_cannot_be_made_leaves_the_old_one(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("categories.yaml", "accounts.yaml", "checkpoints.yaml", "routing.yaml"):
        (source / name).write_text((DEFAULT_CONFIG_DIR / name).read_text("utf-8"), "utf-8")
    (source / "rules.yaml").write_text("rules: [{id: x, kind: nonsense}]\n", encoding="utf-8")
    config_dir = tmp_path / "out" / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "org.yaml").write_text("# mine\n", encoding="utf-8")
    with pytest.raises(UserError, match="does not load"):
        write_kommun_config(build_kommun(2, 20), config_dir, source, HEADER, replace=True)
    assert [p.name for p in config_dir.iterdir()] == ["org.yaml"]
    assert [p.name for p in config_dir.parent.iterdir()] == ["config"]


# --- The command --------------------------------------------------------------------------


def test_cli_writes_a_kommun_and_its_configuration(tmp_path: Path) -> None:
    out = tmp_path / "kommun"
    args = ["scenario", "--out", str(out), "--namnder", "3", "--cost-centres", "30"]
    result = run_cli(*args, "--years", "2", inherit_settings=False)
    assert result.returncode == 0, result.stderr
    assert "3 nämnder, 2023–2024" in result.stdout
    assert f"BUDGETVAKT_CONFIG_DIR={out / 'config'}" in result.stdout
    domain = load_domain_config(out / "config")
    assert domain.org.namnder == ["VON", "SN", "BUN"]
    costs = read_jsonl([out / "costs.jsonl"])
    assert len(costs) == 30 * 12 * 12 * 2
    assert {c["org_unit"] for c in costs} <= set(domain.org.nodes)
    closes = read_jsonl([out / "period_close.jsonl"])
    assert {c["org_unit"] for c in closes} == {"VON", "SN", "BUN"}
    org_before = (out / "config" / "org.yaml").read_text("utf-8")

    again = run_cli(*args, "--seed", "9", inherit_settings=False)
    assert again.returncode == 2
    assert "already holds a configuration" in again.stderr and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert (out / "config" / "org.yaml").read_text("utf-8") == org_before

    forced = run_cli(*args, "--years", "1", "--force", inherit_settings=False)
    assert forced.returncode == 0, forced.stderr
    assert load_domain_config(out / "config").org.namnder == ["VON", "SN", "BUN"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--namnder", "9", "--cost-centres", "10"], "--namnder"),
        (["--namnder", "3", "--cost-centres", "2"], "--cost-centres must be at least"),
        (["--cost-centres", "10"], "--cost-centres needs --namnder"),
    ],
)
def test_cli_bad_options_exit_2_without_a_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    result = run_cli("scenario", "--out", str(out), *args, inherit_settings=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing written


def test_cli_without_namnder_is_the_demo_as_before(tmp_path: Path) -> None:
    result = run_cli("scenario", "--out", str(tmp_path), "--years", "2", inherit_settings=False)
    assert result.returncode == 0, result.stderr
    assert "Vård- och omsorgsnämnden" in result.stdout and "Överskridande 2024" in result.stdout
    assert not (tmp_path / "config").exists()
    closes = read_jsonl([tmp_path / "period_close.jsonl"])
    assert {c["org_unit"] for c in closes} == {"VON"} and len(closes) == 24


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--namnder", "3"], "--namnder needs --cost-centres"),
        (["--force"], "--force needs --namnder"),
        (["--namnder", "0", "--cost-centres", "10"], "--namnder"),
    ],
)
def test_cli_option_combinations_are_checked_before_writing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    from services.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["scenario", "--out", str(out), *args])
    assert result.exit_code != 0
    said = str(result.exception) if isinstance(result.exception, UserError) else result.output
    assert message in said
    assert not out.exists()
