"""The kommun of the consumer-group test (tests/end_to_end/fixtures.py) is what that test
assumes: its configuration loads, its events are valid, seeded and complete, and the status
adapter reads both shapes of ``/forecasts/status``. Pure: no broker, no worker."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from contract.validation import parse_event
from core.hierarchy import UNMAPPED_ID
from services.config.domain import load_domain_config
from services.config.rules import load_rules
from services.notifier.routing import load_routing
from tests.end_to_end.fixtures import (
    NAMNDER,
    UNMAPPED_UNIT,
    YEAR,
    close_evaluated,
    kommun_events,
    namnd_of_unit,
    owner_of,
    producer_key,
    write_kommun_config,
)


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_kommun_config(tmp_path_factory.mktemp("kommun") / "config")


def test_the_kommun_config_loads_with_six_namnder_and_a_controller_each(config_dir: Path) -> None:
    domain = load_domain_config(config_dir)
    assert domain.org.namnder == list(NAMNDER)
    assert load_rules(config_dir, domain) is not None
    routing = load_routing(config_dir / "routing.yaml", domain.org, {})
    assert set(routing.by_unit) == set(NAMNDER)
    for unit, owner in namnd_of_unit().items():
        assert domain.org.owner_of(unit) == owner
        assert owner_of(unit) == owner
    assert domain.org.owner_of(UNMAPPED_UNIT) == UNMAPPED_ID


def test_the_events_are_valid_seeded_and_close_every_namnd_every_month(config_dir: Path) -> None:
    domain = load_domain_config(config_dir)
    events = kommun_events()
    assert events == kommun_events()  # seeded: the same every run
    everything = [
        *events.budgets,
        *(e for topic in events.history.values() for e in topic),
        *(e for month in events.months.values() for topic in month.values() for e in topic),
        *(e for closes in events.closes.values() for e in closes),
    ]
    for event in everything:
        parse_event(json.dumps(event).encode(), domain)
    assert not [i for i, n in Counter(e["event_id"] for e in everything).items() if n > 1]
    for month, closes in events.closes.items():
        assert {(c["org_unit"], c["period"]) for c in closes} == {
            (n, f"{YEAR}-{month:02d}") for n in NAMNDER
        }
    booked = {e["org_unit"] for e in events.months[1]["cost"]}
    assert booked == set(namnd_of_unit())  # every cost centre, and the unmapped one


def test_the_overruns_raise_the_forecast_year_above_budget_in_sn_and_von() -> None:
    events = kommun_events()
    budget = Counter[str]()
    for b in events.budgets:
        if b["year"] == YEAR and "category" in b:
            budget[owner_of(b["org_unit"])] += b["annual"]
    actual = events.cost_totals(12)
    over = {n for n in NAMNDER if actual[(n, YEAR)] > budget[n] * 1.02}
    assert over == {"VON"}  # SN's overrun is mostly corrected in July
    spring = events.cost_totals(5)[("SN", YEAR)] - events.cost_totals(1)[("SN", YEAR)]
    assert spring > budget["SN"] * 4 / 12 * 1.02  # SN's February–May overrun
    [correction] = [c for c in events.months[7]["cost"] if c["event_id"].startswith("corr-")]
    assert correction["amount_sek"] < 0


def test_producer_keys_are_the_namnd_but_every_third_the_cost_centre() -> None:
    event = {"org_unit": "2110"}
    assert [producer_key(i, event) for i in range(3)] == ["VON", "VON", "2110"]
    assert producer_key(0, {"org_unit": UNMAPPED_UNIT}) == UNMAPPED_ID


def test_close_evaluated_reads_the_per_owner_status_and_the_older_one() -> None:
    per_owner = {
        "evaluated": ["2025-03"],
        "owners": {"SN": {"evaluated": ["2025-03"]}, "VON": {"evaluated": ["2025-02"]}},
    }
    assert close_evaluated(per_owner, "SN", "2025-03")
    assert not close_evaluated(per_owner, "VON", "2025-03")  # not yet
    assert not close_evaluated(per_owner, "BUN", "2025-03")  # not this worker's
    older = {"evaluated": ["2025-03"]}
    assert close_evaluated(older, "BUN", "2025-03")
    assert not close_evaluated(older, "BUN", "2025-04")
