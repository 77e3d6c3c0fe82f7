"""A known loss, found while testing the move to nämnd keys (not caused by it): a worker that
starts in a consumer group with committed offsets, while input produced in between waits, can
skip the first record after the committed offset of one partition. The group's committed
offsets were checked to be right (the count of records applied), so the new worker's seek or
fetch skips it. Seen in about 1 run in 4 here, with the cost-centre scheme and no move, and on
main before the nämnd scheme. Kept as a reproduction for whoever fixes it (streams/faust_compat
``seek_after_recovery`` is the likely place)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from services.config.domain import load_domain_config
from tests.streams.fixtures import StreamCase
from tests.streams.test_ownership_migration import cost_totals, costs, forest_config, wait_exact

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.xfail(
    reason="known loss: the first record after a committed offset, waiting at start, is "
    "sometimes skipped (see module doc)",
    strict=False,
)
def test_events_produced_while_every_worker_is_stopped_count_once(
    stream_case: StreamCase, tmp_path: Path
) -> None:
    config = forest_config(tmp_path)
    domain = load_domain_config(config)
    stream_case.settings.update(
        {"BUDGETVAKT_CONFIG_DIR": str(config), "BUDGETVAKT_PARTITION_KEY": "cost_centre"}
    )
    first = stream_case.start_worker()
    before = costs("pre", 390, seed=1)
    stream_case.publish("cost", before)
    wait_exact(first, cost_totals(before, domain), "the first worker's totals")
    assert first.stop(signal.SIGTERM) == 0

    waiting = costs("waiting", 78, seed=2)
    stream_case.publish("cost", waiting)
    second = stream_case.start_worker()
    wait_exact(second, cost_totals(before + waiting, domain), "every event once after the start")
