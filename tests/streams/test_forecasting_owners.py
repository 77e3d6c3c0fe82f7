"""The live forecaster per owner (streams.forecasting, streams.owner_inputs): grouping by nämnd,
incremental runs, per-owner evaluation, snapshots, and what an ownership change does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from contract.output_records import AlertEvent
from core.domain import DomainConfig
from core.hierarchy import UNMAPPED_ID, OrgNode, OrgTree
from forecasts.deviations import RuleSet
from forecasts.live import TOTAL, OrganisationForecast
from streams.forecasting import LiveForecaster, ReadAlerts
from streams.owner_inputs import ForecastCache, ForecastRequest, OwnerIndex

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def kommun(domain: DomainConfig) -> DomainConfig:
    """The shipped nämnd (VON) and a second one, Socialnämnden (SN), in one kommun."""
    nodes = dict(domain.org.nodes)
    nodes["SN"] = OrgNode("SN", "Socialnämnden", "namnd", None)
    nodes["SNF"] = OrgNode("SNF", "Socialförvaltningen", "forvaltning", "SN")
    nodes["SNA"] = OrgNode("SNA", "Individ- och familjeomsorg", "avdelning", "SNF")
    nodes["5110"] = OrgNode("5110", "Försörjningsstöd", "enhet", "SNA")
    nodes["5120"] = OrgNode("5120", "Barn och familj", "enhet", "SNA")
    municipality = {"VON": "Storvik kommun", "SN": "Storvik kommun"}
    return replace(domain, org=OrgTree(nodes, municipality))


def _rules(domain: DomainConfig) -> RuleSet:
    from services.config.rules import load_rules

    return load_rules(CONFIG, domain)


class State:
    """Table items as the worker's state holds them: a changed key gets a new value object."""

    def __init__(self, domain: DomainConfig) -> None:
        self.domain = domain
        self.values: dict[str, Any] = {}
        self.version = 0

    def apply(self, raws: Sequence[dict[str, Any]], partition: int = 0) -> State:
        from contract.validation import parse_event
        from streams.aggregation import apply_events, state_key

        for raw in raws:
            event = parse_event(json.dumps(raw).encode(), self.domain)
            key = state_key(partition, event)
            self.values[key] = apply_events(self.values.get(key), [event], self.domain).value
        self.version += 1
        return self

    def items(self, partitions: set[int] | None = None) -> list[tuple[str, Any]]:
        from streams.aggregation import parse_key

        return [
            (k, v)
            for k, v in self.values.items()
            if partitions is None or parse_key(k).partition in partitions
        ]


def _postings(unit: str, through: str, spike: str = "2024-06", first_year: int = 2023) -> list[Any]:
    """Flat salaries of 1 mnkr a month on ``unit`` with a 12 mnkr budget, 2 mnkr more in
    ``spike``; one budget per year."""
    events: list[dict[str, Any]] = []
    for year in range(first_year, 2025):
        events.append(
            {
                "event_id": f"b-{unit}-{year}",
                "type": "budget",
                "org_unit": unit,
                "year": year,
                "category": "salaries",
                "annual": 12_000_000,
            }
        )
        for month in range(1, 13):
            period = f"{year}-{month:02d}"
            if period > through:
                break
            events.append(_cost(unit, period, 1_000_000 + (2_000_000 if period == spike else 0)))
    return events


def _cost(unit: str, period: str, amount: float, tag: str = "") -> dict[str, Any]:
    return {
        "event_id": f"c-{unit}-{period}{tag}",
        "type": "cost",
        "org_unit": unit,
        "period": period,
        "category": "salaries",
        "amount_sek": amount,
    }


def _close(unit: str, period: str, tag: str = "") -> dict[str, Any]:
    return {
        "event_id": f"close-{unit}-{period}{tag}",
        "type": "period_close",
        "org_unit": unit,
        "period": period,
    }


class Metrics:
    def __init__(self) -> None:
        self.forecast_status: Any = None
        self.durations: list[float] = []
        self.owned: list[str] = []
        self.firing = 0
        self.snapshot_failures = _Counter()

    def observe_forecast(self, seconds: float) -> None:
        self.durations.append(seconds)

    def set_alerts_firing(self, *books: Any) -> None:
        self.firing = sum(len(book.firing()) for book in books)

    def set_owned_namnder(self, owners: Any) -> None:
        self.owned = list(owners)

    def set_forecast_series_failed(self, counts: Any) -> None:
        self.series_failed = dict(counts)


class _Counter:
    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1


@dataclass
class MemorySnapshots:
    """The snapshot store's protocol in memory: one owner's forecast per write."""

    written: list[tuple[str, str]] = field(default_factory=list)  # (owner, period)
    forecasts: list[OrganisationForecast] = field(default_factory=list)

    def write(self, forecast: OrganisationForecast, period: str) -> object:
        tops = {n.org_unit for n in forecast.nodes if n.level == "namnd"}
        assert len(tops) == 1, f"one owner per snapshot, got {sorted(tops)}"
        self.written.append((tops.pop(), period))
        self.forecasts.append(forecast)
        return period

    def periods(self, owner: str) -> set[str]:
        return {period for who, period in self.written if who == owner}

    def record_late_events(self, events: Sequence[Any]) -> None:
        pass


@dataclass
class Sent:
    records: list[tuple[str, str, bytes]] = field(default_factory=list)

    def __call__(self, topic: str, key: str, value: bytes) -> None:
        self.records.append((topic, key, value))

    def alerts(self) -> list[dict[str, Any]]:
        return [json.loads(v) for t, _, v in self.records if t == "al"]

    def forecasts(self) -> list[dict[str, Any]]:
        return [json.loads(v) for t, _, v in self.records if t == "fc"]


@pytest.fixture
def make() -> Iterator[Callable[..., LiveForecaster]]:
    made: list[LiveForecaster] = []

    def build(domain: DomainConfig, publish: Any, **kwargs: Any) -> LiveForecaster:
        kwargs.setdefault("rules", None)
        forecaster = LiveForecaster(
            domain,
            "auto",
            kwargs.pop("rules"),
            publish,
            "fc",
            "al",
            kwargs.pop("metrics", None) or Metrics(),  # type: ignore[arg-type]
            **kwargs,
        )
        made.append(forecaster)
        return forecaster

    yield build
    for forecaster in made:
        forecaster.close()


def test_items_are_grouped_by_the_nämnd_on_their_path_and_unknown_units_by_omappad(
    kommun: DomainConfig,
) -> None:
    state = State(kommun)
    state.apply([_cost("1110", "2024-01", 1.0), _close("VON", "2024-01")], partition=0)
    state.apply([_cost("5110", "2024-01", 1.0)], partition=1)
    state.apply([_cost("9999", "2024-01", 1.0)], partition=2)
    groups, partitions = OwnerIndex(kommun.org).group(state.items())
    assert {owner: sorted(items) for owner, items in groups.items()} == {
        "VON": ["p0|1110|2024-01", "p0|VON|closed"],
        "SN": ["p1|5110|2024-01"],
        UNMAPPED_ID: ["p2|9999|2024-01"],
    }
    assert partitions == {"VON": {0}, "SN": {1}, UNMAPPED_ID: {2}}


def test_a_change_makes_only_the_forecasts_it_can_alter_stale(kommun: DomainConfig) -> None:
    state = State(kommun).apply(_postings("1110", through="2024-03"))
    cache = ForecastCache()
    assert cache.update(dict(state.items())).changed
    requests = [ForecastRequest(2023, 12), *(ForecastRequest(2024, m) for m in (1, 2, 3))]
    cache.forecasts = {r: OrganisationForecast(r.year, r.as_of_month) for r in requests}

    def kept_after(raws: list[Any]) -> list[ForecastRequest]:
        stale = cache.update(dict(state.apply(raws).items()))
        assert stale.changed
        kept = sorted(cache.forecasts)
        cache.forecasts = {r: OrganisationForecast(r.year, r.as_of_month) for r in requests}
        return kept

    assert kept_after([_close("VON", "2024-02")]) == requests  # a close alters no forecast
    assert kept_after([_cost("1110", "2024-03", 5.0, "-more")]) == requests[:3]
    assert kept_after([_cost("1110", "2024-02", 5.0, "-late")]) == requests[:2]
    # A new series (a category 1110 never had) is a new leaf of the year's whole panel.
    new_series = {**_cost("1110", "2024-03", 5.0, "-ot"), "category": "overtime"}
    assert kept_after([new_series]) == requests[:1]
    revised = {**_postings("1110", "2023-01", first_year=2024)[0], "event_id": "b2", "annual": 1.0}
    assert kept_after([revised]) == requests[:1]  # the 2024 budget: every 2024 forecast


def test_each_nämnd_has_its_own_panel_and_only_a_changed_nämnd_is_run_again(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    state = State(kommun)
    state.apply(_postings("1110", "2024-05") + _postings("1120", "2024-05"), partition=0)
    state.apply(_postings("5110", "2024-05"), partition=1)
    both = make(kommun, Sent())
    alone_sent = Sent()
    alone = make(kommun, alone_sent)
    assert asyncio.run(both.run_once(state.version, state.items()))
    assert asyncio.run(alone.run_once(state.version, state.items({0})))
    assert both.owners == ["SN", "VON"] and alone.owners == ["VON"]
    # VON's figures are the same whether or not the worker also holds SN.
    von = both.status.owners["VON"].latest[2024]
    assert alone.status.owners["VON"].latest[2024].nodes == von.nodes
    assert {e["org_unit"] for e in alone_sent.forecasts()} & {"SN", "5110"} == set()
    assert both.status.latest[2024].get("SN", TOTAL) is not None  # the merged view (gauges)
    computed = {o: s.forecasts_computed for o, s in both.status.owners.items()}
    runs = {o: s.runs for o, s in both.status.owners.items()}

    state.apply([_cost("5110", "2024-05", 10_000.0, "-more")], partition=1)
    assert asyncio.run(both.run_once(state.version, state.items()))
    von_status, sn_status = both.status.owners["VON"], both.status.owners["SN"]
    assert (von_status.runs, von_status.forecasts_computed) == (runs["VON"], computed["VON"])
    assert sn_status.runs == runs["SN"] + 1
    assert sn_status.forecasts_computed == computed["SN"] + 1  # as of May 2024 only
    assert both.status.state_version == state.version


def test_a_close_reuses_the_forecasts_made_before_it_and_the_result_is_as_from_scratch(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    rules = _rules(kommun)
    snapshots = MemorySnapshots()
    sent = Sent()
    forecaster = make(kommun, sent, rules=rules, snapshot_store=snapshots)
    forecaster.restore_alerts([])
    state = State(kommun).apply([*_postings("1110", "2024-06"), _close("VON", "2024-05")])
    asyncio.run(forecaster.run_once(state.version, state.items()))
    von = forecaster.status.owners["VON"]
    assert von.evaluated == ["2024-05"]
    computed = von.forecasts_computed

    state.apply([_close("VON", "2024-06")])  # June's postings are all in: nothing to compute
    asyncio.run(forecaster.run_once(state.version, state.items()))
    assert von.forecasts_computed == computed
    assert von.evaluated == ["2024-05", "2024-06"]
    assert ("VON", "2024-06") in snapshots.written
    assert any(a["period"] == "2024-06" for a in sent.alerts())  # the June spike

    state.apply([_cost("1110", "2024-07", 1_000_000)])  # July: only as of July is new
    asyncio.run(forecaster.run_once(state.version, state.items()))
    assert von.forecasts_computed == computed + 1
    state.apply([_cost("1110", "2024-05", 10_000, "-late")])  # May again: May, June, July
    asyncio.run(forecaster.run_once(state.version, state.items()))
    assert von.forecasts_computed == computed + 4

    fresh = make(kommun, Sent(), rules=rules)
    fresh.restore_alerts([])
    asyncio.run(fresh.run_once(state.version, state.items()))
    for year in (2023, 2024):
        assert fresh.status.latest[year].nodes == forecaster.status.latest[year].nodes


def test_every_nämnd_is_evaluated_at_its_own_latest_close(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    sent = Sent()
    snapshots = MemorySnapshots()
    forecaster = make(kommun, sent, rules=_rules(kommun), snapshot_store=snapshots)
    forecaster.restore_alerts([])
    state = State(kommun)
    state.apply([*_postings("1110", "2024-07"), _close("VON", "2024-06")], partition=0)
    state.apply(_postings("5110", "2024-07", spike="2024-04"), partition=1)
    state.apply([_close("SN", "2024-04")], partition=1)
    asyncio.run(forecaster.run_once(state.version, state.items()))
    owners = forecaster.status.owners
    assert owners["VON"].evaluated == ["2024-06"] and owners["SN"].evaluated == ["2024-04"]
    assert (owners["VON"].latest_close, owners["SN"].latest_close) == ("2024-06", "2024-04")
    by_owner = {(a["org_unit"] in ("5110", "SNA", "SNF", "SN"), a["period"]) for a in sent.alerts()}
    assert by_owner == {(False, "2024-06"), (True, "2024-04")}
    assert sorted(snapshots.written) == [("SN", "2024-04"), ("VON", "2024-06")]
    preliminary = {e["org_unit"]: e["preliminary"] for e in sent.forecasts() if e["year"] == 2024}
    assert preliminary["VON"] is True and preliminary["SN"] is True  # July is not closed


def test_omappad_gets_a_snapshot_only_when_it_holds_money(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    snapshots = MemorySnapshots()
    forecaster = make(kommun, Sent(), snapshot_store=snapshots)
    state = State(kommun).apply([_close("9999", "2024-01")], partition=2)
    asyncio.run(forecaster.run_once(state.version, state.items()))
    assert snapshots.written == []
    state.apply([_cost("9999", "2024-02", 5_000.0), _close("9999", "2024-02")], partition=2)
    asyncio.run(forecaster.run_once(state.version, state.items()))
    assert snapshots.written == [(UNMAPPED_ID, "2024-02")]


def test_a_newly_held_nämnd_snapshots_its_closed_periods_that_have_none(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    snapshots = MemorySnapshots()
    snapshots.written = [("VON", "2024-01"), ("SN", "2024-01"), ("SN", "2024-02")]
    forecaster = make(kommun, Sent(), snapshot_store=snapshots)
    state = State(kommun)
    state.apply(_postings("1110", "2024-03"), partition=0)
    state.apply([_close("VON", "2024-02"), _close("VON", "2024-03")], partition=0)
    state.apply([*_postings("5110", "2024-03"), _close("SN", "2024-02")], partition=1)
    asyncio.run(forecaster.run_once(state.version, state.items()))
    assert sorted(snapshots.written[3:]) == [("VON", "2024-02"), ("VON", "2024-03")]


def _alert_events(sent: Sent) -> list[AlertEvent]:
    return [AlertEvent.model_validate(a) for a in sent.alerts()]


def test_a_revocation_waits_for_the_publish_in_flight_and_stops_the_nämnd(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    sent = Sent()
    snapshots = MemorySnapshots()
    entered, release = asyncio.Event(), asyncio.Event()
    blocked: list[str] = []

    async def publish(topic: str, key: str, value: bytes) -> None:
        if topic == "al" and not blocked:
            blocked.append(key)
            entered.set()
            await release.wait()  # the broker is slow with the first alert
        sent(topic, key, value)

    flushed: list[int] = []

    async def flush() -> None:
        flushed.append(len(sent.alerts()))  # what was sent when the producer was flushed

    forecaster = make(kommun, publish, rules=_rules(kommun), snapshot_store=snapshots, flush=flush)
    forecaster.restore_alerts([])
    state = State(kommun)
    state.apply([*_postings("1110", "2024-06"), _close("VON", "2024-06")], partition=0)

    async def scenario() -> tuple[bool, bool]:
        run = asyncio.create_task(forecaster.run_once(state.version, state.items()))
        await entered.wait()
        revoke = asyncio.create_task(forecaster.revoke_partitions({0}))
        while forecaster.owners:  # until the revocation has fenced VON (it yields, no timer)
            await asyncio.sleep(0)
        waited = not revoke.done()  # the publish in flight holds it
        release.set()
        await revoke
        alerts_at_revocation = len(sent.alerts())
        await run
        return waited, alerts_at_revocation == len(sent.alerts())

    waited, nothing_after = asyncio.run(scenario())
    assert waited, "the revocation waits for the publish in flight"
    assert nothing_after, "no alert of a revoked nämnd after its revocation"
    assert len(sent.alerts()) == 1  # the one in flight, and no other
    assert flushed == [1], "the revocation flushed after the publish in flight"
    assert snapshots.written == []  # the snapshot comes after the alerts: not written
    assert forecaster.owners == [] and "VON" not in forecaster.status.owners


def test_an_assignment_reads_the_alert_topic_for_the_new_nämnd_before_evaluating_it(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    rules = _rules(kommun)
    # What another worker, owning both nämnder before, put on the alert topic.
    earlier = Sent()
    before = make(kommun, earlier, rules=rules)
    before.restore_alerts([])
    state = State(kommun)
    state.apply([*_postings("1110", "2024-06"), _close("VON", "2024-06")], partition=0)
    state.apply([*_postings("5110", "2024-06"), _close("SN", "2024-06")], partition=1)
    asyncio.run(before.run_once(state.version, state.items()))
    topic = _alert_events(earlier)
    assert {a.org_unit for a in topic} >= {"1110", "5110"}

    reads: list[int] = []

    def reader() -> ReadAlerts:
        async def read() -> list[AlertEvent]:
            reads.append(len(topic))
            return list(topic)

        return read

    sent = Sent()
    metrics = Metrics()
    forecaster = make(kommun, sent, rules=rules, read_alerts=reader(), metrics=metrics)
    asyncio.run(forecaster.run_once(state.version, state.items({0})))  # VON assigned
    assert reads == [len(topic)] and forecaster.owners == ["VON"]
    assert sent.alerts() == [], "VON's alerts are on the topic already: none sent again"
    assert forecaster.status.owners["VON"].evaluated == ["2024-06"]

    asyncio.run(forecaster.run_once(state.version + 1, state.items()))  # SN assigned too
    assert len(reads) == 2 and forecaster.owners == ["SN", "VON"]
    assert sent.alerts() == []
    assert metrics.firing == len({a.alert_id for a in topic if a.status != "resolved"})

    asyncio.run(forecaster.revoke_partitions({1}))
    assert forecaster.owners == ["VON"] and metrics.owned == ["VON"]
    # Meanwhile SN's new owner alerted on July; the topic has it when SN comes back.
    state.apply([_cost("5110", "2024-07", 9_000_000), _close("SN", "2024-07")], partition=1)
    other_sent = Sent()
    other = make(kommun, other_sent, rules=rules)
    other.restore_alerts(topic)
    asyncio.run(other.run_once(state.version, state.items({1})))
    july = [a for a in _alert_events(other_sent) if a.period == "2024-07"]
    assert july
    topic.extend(july)
    asyncio.run(forecaster.run_once(state.version + 2, state.items()))
    assert len(reads) == 3
    assert sent.alerts() == [], "SN's July alerts came from the other worker, not again"


def test_an_alert_read_that_a_revocation_overtook_is_thrown_away(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    reads: list[int] = []
    forecaster: LiveForecaster

    async def read() -> list[AlertEvent]:
        reads.append(1)
        if len(reads) == 1:
            await forecaster.revoke(["VON"])  # a rebalance while the topic is being read
        return []

    forecaster = make(kommun, Sent(), rules=_rules(kommun), read_alerts=read)
    state = State(kommun).apply([*_postings("1110", "2024-06"), _close("VON", "2024-06")])
    asyncio.run(forecaster.run_once(state.version, state.items()))
    assert forecaster.status.owners["VON"].evaluated == []  # no book: not evaluated
    asyncio.run(forecaster.run_once(state.version + 1, state.items()))
    assert len(reads) == 2 and forecaster.status.owners["VON"].evaluated == ["2024-06"]


def test_a_pass_without_a_close_gives_way_to_a_close(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    forecaster = make(kommun, Sent())
    state = State(kommun)
    state.apply(_postings("1110", "2024-05"), partition=0)
    state.apply(_postings("5110", "2024-05"), partition=1)
    close = asyncio.Event()
    close.set()  # a close arrived while the pass runs

    async def scenario() -> bool:
        return await forecaster.run_once(state.version, state.items(), close)

    assert not asyncio.run(scenario())
    assert forecaster.status.state_version == -1  # not every owner ran: due again
    ran = [o for o, s in forecaster.status.owners.items() if s.runs]
    assert len(ran) <= 1
    assert asyncio.run(forecaster.run_once(state.version, state.items()))
    assert all(s.runs == 1 for s in forecaster.status.owners.values())
    assert forecaster.status.state_version == state.version


def test_next_month_s_postings_before_the_close_leave_the_closed_month_s_forecast_cached(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    forecaster = make(kommun, Sent(), rules=_rules(kommun))
    forecaster.restore_alerts([])
    state = State(kommun).apply([*_postings("1110", "2024-06"), _close("VON", "2024-05")])
    asyncio.run(forecaster.run_once(state.version, state.items()))
    state.apply([_cost("1110", "2024-07", 1_000_000)])  # July's postings before June's close
    asyncio.run(forecaster.run_once(state.version, state.items()))
    von = forecaster.status.owners["VON"]
    computed = von.forecasts_computed
    state.apply([_close("VON", "2024-06")])
    asyncio.run(forecaster.run_once(state.version, state.items()))
    assert von.evaluated == ["2024-05", "2024-06"]
    assert von.forecasts_computed == computed  # as of June (and May) were kept


def test_the_status_and_the_metrics_are_per_owner(
    kommun: DomainConfig, make: Callable[..., LiveForecaster]
) -> None:
    from streams.aggregation import ActiveState
    from streams.forecasting import status_json
    from streams.metrics import WorkerMetrics

    metrics = WorkerMetrics(ActiveState(), kommun.org, measures=set(kommun.measures))
    snapshots = MemorySnapshots()
    forecaster = make(kommun, Sent(), metrics=metrics, snapshot_store=snapshots)
    state = State(kommun)
    state.apply([*_postings("1110", "2024-03"), _close("VON", "2024-02")], partition=0)
    state.apply(_postings("5110", "2024-02"), partition=1)
    asyncio.run(forecaster.run_once(state.version, state.items()))
    answer = status_json(forecaster.status)
    assert answer["owned"] == ["SN", "VON"] and answer["state_version"] == state.version
    assert answer["years"]["2024"]["as_of_month"] == 3  # the top level merges the owners
    von, sn = answer["owners"]["VON"], answer["owners"]["SN"]
    assert (von["runs"], von["latest_close"], von["snapshots"]) == (1, "2024-02", ["2024-02"])
    # 1110, AO, VOF and VON × salaries and total
    assert von["years"]["2024"] == {"as_of_month": 3, "preliminary": True, "nodes": 8}
    assert sn["years"]["2024"]["as_of_month"] == 2 and sn["snapshots"] == []
    assert sn["forecasts_computed"] == 2  # as of Dec 2023 and Feb 2024

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("budgetvakt_owned_namnder", namnd="VON") == 1
    assert sample("budgetvakt_owned_namnder", namnd="SN") == 1
    assert sample("budgetvakt_forecast_runs_total") == 2  # one per owner
    assert sample("budgetvakt_forecast_duration_seconds_count") == 2
    labels = {"org_unit": "SN", "category": "total", "year": "2024", "level": "namnd"}
    assert sample("budgetvakt_forecast_full_year_sek", **labels) is not None
    asyncio.run(forecaster.revoke_partitions({1}))
    assert sample("budgetvakt_owned_namnder", namnd="SN") is None
    assert sample("budgetvakt_forecast_full_year_sek", **labels) is None  # not this worker's
    assert status_json(forecaster.status)["owned"] == ["VON"]
