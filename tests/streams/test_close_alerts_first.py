"""A pass where several nämnder closed sends every closing nämnd's alerts before any nämnd's
forecast events and snapshot (streams.forecasting): one nämnd's close does not wait for the
thousands of events and rows another's publishes after its alerts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from core.domain import DomainConfig
from forecasts.live import OrganisationForecast
from streams.forecasting import LiveForecaster
from tests.streams import test_forecasting_owners as owners_tests
from tests.streams.test_forecasting_owners import MemorySnapshots, State, _close, _postings, _rules

kommun = owners_tests.kommun  # the fixtures of the per-owner tests: VON and SN in one kommun
make = owners_tests.make


@dataclass
class Timeline:
    """Alerts, forecast events and snapshot writes in the order they happened."""

    entries: list[tuple[str, str]] = field(default_factory=list)  # (what, owner side)

    def __call__(self, topic: str, key: str, value: bytes) -> None:
        side = "SN" if key in ("5110", "SNA", "SNF", "SN") else "VON"
        self.entries.append(({"al": "alert", "fc": "forecast"}[topic], side))


@dataclass
class OrderedSnapshots(MemorySnapshots):
    timeline: Timeline = field(default_factory=Timeline)

    def write(self, forecast: OrganisationForecast, period: str) -> object:
        stored = super().write(forecast, period)
        self.timeline.entries.append(("snapshot", self.written[-1][0]))
        return stored


def test_every_closing_nämnds_alerts_go_out_before_any_forecast_event_or_snapshot(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    timeline = Timeline()
    snapshots = OrderedSnapshots(timeline=timeline)
    forecaster = make(kommun, timeline, rules=_rules(kommun), snapshot_store=snapshots)
    forecaster.restore_alerts([])
    state = State(kommun)
    state.apply([*_postings("1110", "2024-07"), _close("VON", "2024-06")], partition=0)
    state.apply(_postings("5110", "2024-07", spike="2024-04"), partition=1)
    state.apply([_close("SN", "2024-04")], partition=1)
    asyncio.run(forecaster.run_once(state.version, state.items()))

    kinds = [what for what, _ in timeline.entries]
    alerted = {side for what, side in timeline.entries if what == "alert"}
    assert alerted == {"VON", "SN"}  # both nämnder raised alerts at their close…
    last_alert = max(i for i, what in enumerate(kinds) if what == "alert")
    first_other = min(i for i, what in enumerate(kinds) if what != "alert")
    assert last_alert < first_other  # …and both were out before anything else
    assert sorted(snapshots.written) == [("SN", "2024-04"), ("VON", "2024-06")]
    assert kinds.count("forecast") > 0
    owners = forecaster.status.owners
    assert owners["VON"].evaluated == ["2024-06"] and owners["SN"].evaluated == ["2024-04"]
    assert all(forecaster._runs[o].settled for o in ("VON", "SN"))


def test_with_alerts_first_the_next_pass_sends_nothing_again(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    timeline = Timeline()
    forecaster = make(kommun, timeline, rules=_rules(kommun), snapshot_store=MemorySnapshots())
    forecaster.restore_alerts([])
    state = State(kommun)
    state.apply([*_postings("1110", "2024-07"), _close("VON", "2024-06")], partition=0)
    state.apply([*_postings("5110", "2024-07", spike="2024-04"), _close("SN", "2024-04")], 1)
    asyncio.run(forecaster.run_once(state.version, state.items()))
    sent = len(timeline.entries)
    assert not asyncio.run(forecaster.run_once(state.version, state.items()))
    assert len(timeline.entries) == sent
