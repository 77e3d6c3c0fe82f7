"""Moving a deployment from cost-centre keys to nämnd keys with ``budgetvakt migrate-keys``:
embedded broker, real ``budgetvakt worker`` processes, a kommun of three nämnder."""

from __future__ import annotations

import random
import re
import shutil
import signal
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.domain import DomainConfig
from core.settings import DEFAULT_CONFIG_DIR
from services.config.domain import load_domain_config
from services.processes.scrape import sum_metric
from services.processes.supervised import wait_until
from streams.ownership import Ownership, home_partition
from testing.cli import run_cli
from tests.streams.fixtures import StreamCase, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT_S = 90.0
PARTITIONS = 4  # the topics' default
NAMNDER = {
    "SN": ("S1", "S2", "S3", "S4"),
    "VON": ("V1", "V2", "V3", "V4"),
    "BUN": ("B1", "B2", "B3", "B4"),
}
UNITS = (*(u for units in NAMNDER.values() for u in units), "9999")  # 9999: in no nämnd
CATEGORIES = ("salaries", "substitutes", "overtime")
# Gauges computed from the aggregate state: what the move must leave exactly as it was.
STATE_GAUGES = (
    "budgetvakt_actual_ytd_sek",
    "budgetvakt_budget_full_year_sek",
    "budgetvakt_volume_ytd",
    "budgetvakt_actual_last_month",
    "budgetvakt_last_closed_period",
)
Samples = Sequence[tuple[str, dict[str, str], float]]


def forest_config(tmp_path: Path) -> Path:
    """The shipped configuration with a kommun of three nämnder as org.yaml."""
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    namnder = [
        {
            "id": namnd,
            "name": f"Nämnd {namnd}",
            "level": "namnd",
            "children": [
                {
                    "id": f"{namnd}-F",
                    "name": f"Förvaltning {namnd}",
                    "level": "forvaltning",
                    "children": [{"id": u, "name": f"Enhet {u}", "level": "enhet"} for u in units],
                }
            ],
        }
        for namnd, units in NAMNDER.items()
    ]
    org = {"municipality": "Storvik kommun", "namnder": namnder}
    (config / "org.yaml").write_text(yaml.safe_dump(org, allow_unicode=True), encoding="utf-8")
    return config


def costs(prefix: str, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "event_id": f"{prefix}-{i}",
            "type": "cost",
            "org_unit": UNITS[i % len(UNITS)],
            "period": f"2025-{1 + (i // len(UNITS)) % 12:02d}",
            "category": rng.choice(CATEGORIES),
            "amount_sek": round(rng.uniform(100, 90_000), 2),
        }
        for i in range(count)
    ]


def volumes(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-v{i}",
            "type": "volume",
            "org_unit": UNITS[i % len(UNITS)],
            "period": f"2025-{1 + i % 12:02d}",
            "measure": "home_care_hours",
            "value": float(100 + 7 * i),
            "unit": "h",
        }
        for i in range(count)
    ]


def budget(unit: str, annual: float, event_id: str, version: str = "KF") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "budget",
        "org_unit": unit,
        "year": 2025,
        "category": "salaries",
        "annual": annual,
        "version": version,
    }


def close(org_unit: str, period: str) -> dict[str, Any]:
    return {
        "event_id": f"close-{org_unit}-{period}",
        "type": "period_close",
        "org_unit": org_unit,
        "period": period,
    }


def cost_totals(events: Sequence[dict[str, Any]], domain: DomainConfig) -> dict[tuple, float]:
    """Every unique cost event summed into its cost centre and every ancestor, in öre."""
    seen: set[str] = set()
    out: dict[tuple, int] = defaultdict(int)
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        for node in domain.org.path(event["org_unit"]):
            if node in domain.org.nodes:
                out[(node, event["category"])] += round(event["amount_sek"] * 100)
    return {key: ore / 100 for key, ore in out.items()}


def gauge(samples: Samples, name: str) -> dict[tuple, float]:
    out: dict[tuple, float] = defaultdict(float)
    for sample_name, labels, value in samples:
        if sample_name == name:
            out[tuple(sorted(labels.items()))] += value
    return dict(out)


def actual_by_node(samples: Samples) -> dict[tuple, float]:
    out: dict[tuple, float] = defaultdict(float)
    for sample_name, labels, value in samples:
        if sample_name == "budgetvakt_actual_ytd_sek":
            out[(labels["org_unit"], labels["category"])] += value
    return dict(out)


def to_ore(values: dict[tuple, float]) -> dict[tuple, int]:
    return {key: round(value * 100) for key, value in values.items()}


def wait_exact(worker: WorkerProcess, expected: dict[tuple, float], what: str) -> None:
    want = to_ore(expected)

    def exact() -> bool:
        return to_ore(actual_by_node(worker.samples())) == want

    try:
        wait_until(exact, TIMEOUT_S, what)
    except TimeoutError as err:
        got = to_ore(actual_by_node(worker.samples()))
        differing = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
        examples = [(k, got.get(k), want.get(k)) for k in differing[:5]]
        raise AssertionError(f"{err}: {len(differing)} differ, e.g. {examples}") from None


def refused(case: StreamCase, scheme: str) -> str:
    """Start a worker with ``scheme``; it must exit with status 2 at once: its error line."""
    case.settings["BUDGETVAKT_PARTITION_KEY"] = scheme
    worker = case.start_worker(wait=False)
    wait_until(lambda: not worker.alive(), TIMEOUT_S, f"the {scheme} worker refuses to start")
    assert worker.returncode == 2
    log = worker.log_text()
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, log[-2000:]
    return errors[0]


def handled(worker: WorkerProcess, topic: str, outcome: str) -> float:
    return sum_metric(worker.samples(), "budgetvakt_events_total", topic=topic, outcome=outcome)


def test_moving_from_cost_centre_keys_to_namnd_keys_loses_nothing_and_counts_nothing_twice(
    stream_case: StreamCase, tmp_path: Path
) -> None:
    config = forest_config(tmp_path)
    domain = load_domain_config(config)
    assert domain.org.namnder == ["SN", "VON", "BUN"]
    namnd_keys = Ownership(domain.org, "namnd")
    by_cost_centre: Callable[[str], str] = str  # what the older producers set as the key
    moving = {u for u in UNITS if home_partition(u, PARTITIONS) != namnd_keys.home(u, PARTITIONS)}
    assert moving and set(UNITS) - moving  # some cost centres move, some are at home already
    stays = next(u for u in NAMNDER["SN"] if u not in moving)  # S1: both schemes' home agree
    stream_case.settings.update(
        {"BUDGETVAKT_CONFIG_DIR": str(config), "BUDGETVAKT_PARTITION_KEY": "cost_centre"}
    )
    cost_topic = stream_case.topics["cost"]

    # 1. The deployment as it was: keyed by cost centre, events keyed by cost centre.
    old = stream_case.start_worker()
    before = costs("pre", 390, seed=1)
    budgets = [budget(u, 1_000_000.0 * (i + 1), f"b-{u}") for i, u in enumerate(UNITS)]
    closes = [close(n, "2025-02") for n in NAMNDER] + [close("V1", "2025-03")]
    stream_case.publish("cost", before, by_cost_centre)
    stream_case.publish("volume", volumes("pre", 26), by_cost_centre)
    stream_case.publish("budget", budgets, by_cost_centre)
    stream_case.publish("period_close", closes, by_cost_centre)
    wait_exact(old, cost_totals(before, domain), "the cost-centre worker's totals")
    wait_until(
        lambda: (
            sum_metric(old.samples(), "budgetvakt_events_forwarded_total") == 0
            and sum_metric(old.samples(), "budgetvakt_last_closed_period") > 0
        ),
        TIMEOUT_S,
        "closes applied, nothing forwarded",
    )
    assert old.stop(signal.SIGTERM) == 0

    # 2. Not produced while every worker is stopped, but after the move (step 5): a worker
    # started with input waiting can skip the first record after the committed offset of a
    # partition, with or without a move (tests/streams/test_restart_with_waiting_input.py).

    # 3. A nämnd worker refuses the cost-centre state, and names the command to run.
    error = refused(stream_case, "namnd")
    assert "keyed by cost_centre" in error and "budgetvakt migrate-keys" in error

    # 4. migrate-keys: a dry run changes nothing, the run moves, a second run has nothing left.
    dry = run_cli("migrate-keys", "--dry-run", env=stream_case.env)
    assert dry.returncode == 0, dry.stderr
    moves = re.findall(r"move: p(\d+)\|([^|]+)\|.* → p(\d+)\|", dry.stdout)
    assert {unit for _, unit, _ in moves} == moving
    for old_partition, unit, new_partition in moves:
        assert int(old_partition) == home_partition(unit, PARTITIONS)
        assert int(new_partition) == namnd_keys.home(unit, PARTITIONS)
    assert "dry run: nothing changed" in dry.stdout
    assert "budgetvakt migrate-keys" in refused(stream_case, "namnd")  # still not migrated

    # The embedded broker keeps a stopped worker as a group member: the operator says so.
    done = run_cli("migrate-keys", "--workers-stopped", env=stream_case.env)
    assert done.returncode == 0, done.stderr
    assert f"moved {len(moves)} keys" in done.stdout
    again = run_cli("migrate-keys", "--workers-stopped", env=stream_case.env)
    assert again.returncode == 0, again.stderr
    assert "0 to move" in again.stdout and "state keyed by namnd" in again.stdout

    # 5. The nämnd worker takes the moved state; a cost-centre worker is now the one refused.
    stream_case.settings["BUDGETVAKT_PARTITION_KEY"] = "namnd"
    new = stream_case.start_worker()
    wait_exact(new, cost_totals(before, domain), "the moved state")
    # Producers not switched yet: keyed by cost centre, forwarded to the nämnd's home.
    pending = costs("pending", 78, seed=2)
    stream_case.publish("cost", pending, by_cost_centre)
    wait_exact(new, cost_totals(before + pending, domain), "the moved state plus new events")
    error = refused(stream_case, "cost_centre")
    assert "BUDGETVAKT_PARTITION_KEY=cost_centre but" in error and "keyed by namnd" in error
    stream_case.settings["BUDGETVAKT_PARTITION_KEY"] = "namnd"
    # Nor does migrate-keys run beside a running worker.
    beside = run_cli("migrate-keys", env=stream_case.env)
    assert beside.returncode == 2 and "still has 1 member(s)" in beside.stderr, beside.stderr

    # 6. More events: re-sent copies of applied ones keyed both ways, new ones keyed both ways,
    # a revised budget (replaces, does not add) and a later close.
    after = costs("post", 260, seed=3)
    stream_case.publish("cost", before[:60] + after[:130])  # keyed by nämnd
    stream_case.publish("cost", before[60:120] + pending[:20] + after[130:], by_cost_centre)
    stream_case.publish("budget", [*budgets[:4], budget(stays, 42_000.0, "b-rev", "TB1")])
    stream_case.publish("budget", budgets[4:8], by_cost_centre)
    stream_case.publish("period_close", [close("SN", "2025-03")])
    every_cost = before + pending + after
    wait_exact(new, cost_totals(every_cost, domain), "every unique cost exactly once")
    assert handled(new, cost_topic, "accepted") == len(pending) + len(after)
    assert handled(new, cost_topic, "duplicate") >= 60 + 60 + 20
    assert sum_metric(new.samples(), "budgetvakt_events_forwarded_total") > 0
    samples = new.samples()
    salaries_budget = {
        labels["org_unit"]: value
        for name, labels, value in samples
        if name == "budgetvakt_budget_full_year_sek" and labels["category"] == "salaries"
    }
    assert salaries_budget[stays] == 42_000.0  # the revision replaced the moved line
    assert salaries_budget["B4"] == 1_000_000.0 * (
        UNITS.index("B4") + 1
    )  # moved with its cost centre
    assert salaries_budget["omappad"] == 1_000_000.0 * len(UNITS)  # 9999, unknown, kept

    # 7. A fresh nämnd worker (another consumer group) fed the same topics shows the same state.
    fresh_env = {**stream_case.env, "BUDGETVAKT_APP_ID": f"{stream_case.app_id}-fresh"}
    fresh = WorkerProcess(fresh_env, tmp_path / "fresh-data", tmp_path / "fresh.log").start()
    stream_case.workers.append(fresh)
    fresh.wait_ready()
    wait_exact(fresh, cost_totals(every_cost, domain), "the fresh worker's totals")

    def differences() -> list[tuple[str, tuple, int | None, int | None]]:
        ours, theirs = new.samples(), fresh.samples()
        out = []
        for name in STATE_GAUGES:  # to the öre: sums applied in another order differ in ulps
            mine, other = to_ore(gauge(ours, name)), to_ore(gauge(theirs, name))
            out += [(name, k, mine.get(k), other.get(k)) for k in mine.keys() | other.keys()]
        return [d for d in out if d[2] != d[3]]

    try:
        wait_until(lambda: not differences(), TIMEOUT_S, "the migrated and the fresh agree")
    except TimeoutError as err:
        raise AssertionError(f"{err}: {sorted(differences())[:6]}") from None
    assert gauge(samples, "budgetvakt_last_closed_period")  # closes survived the move
