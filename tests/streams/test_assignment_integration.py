"""Two workers over a kommun of two nämnder of equal size: one nämnd each.

Both nämnder are homed on partitions 0 and 1, which Faust's own count-balanced assignor gives to
the same worker: without ``streams.assignment`` one worker held the whole kommun (2 of 2 runs
timed out with the weights switched off).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from core.settings import DEFAULT_CONFIG_DIR
from services.processes.supervised import wait_until
from streams.ownership import home_partition
from tests.streams.fixtures import StreamCase

pytestmark = pytest.mark.integration

PARTITIONS = 4  # the workers' default
NAMNDER = ("VON", "TN")  # homes 0 and 1 of 4
UNITS_PER_NAMND = 5


def two_namnder_config(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    namnder = [
        {
            "id": namnd,
            "name": f"Nämnd {namnd}",
            "level": "namnd",
            "children": [
                {"id": f"{namnd}-{i}", "name": f"Enhet {namnd} {i}", "level": "enhet"}
                for i in range(UNITS_PER_NAMND)
            ],
        }
        for namnd in NAMNDER
    ]
    org = {"municipality": "Storvik kommun", "namnder": namnder}
    (config / "org.yaml").write_text(yaml.safe_dump(org, allow_unicode=True), encoding="utf-8")
    return config


def owned(worker_samples: list[tuple[str, dict[str, str], float]]) -> set[str]:
    return {
        labels["namnd"]
        for name, labels, value in worker_samples
        if name == "budgetvakt_owned_namnder" and value == 1.0
    }


def test_two_workers_hold_one_namnd_each(stream_case: StreamCase, tmp_path: Path) -> None:
    homes = {home_partition(n, PARTITIONS) for n in NAMNDER}
    assert homes == {0, 1}, "the test's premise: both homes in the first half"
    stream_case.settings["BUDGETVAKT_CONFIG_DIR"] = str(two_namnder_config(tmp_path))
    first = stream_case.start_worker()
    second = stream_case.start_worker()
    # A worker holds the nämnder it has state of.
    stream_case.publish(
        "cost",
        [
            {
                "event_id": f"c-{namnd}-{i}",
                "type": "cost",
                "org_unit": f"{namnd}-{i}",
                "period": "2025-01",
                "category": "salaries",
                "amount_sek": 1000.0 + i,
            }
            for namnd in NAMNDER
            for i in range(UNITS_PER_NAMND)
        ],
    )

    def one_each() -> bool:
        holdings = [owned(w.samples()) & set(NAMNDER) for w in (first, second)]
        return sorted(len(h) for h in holdings) == [1, 1] and set.union(*holdings) == set(NAMNDER)

    wait_until(one_each, 90, "each worker holding one nämnd")
