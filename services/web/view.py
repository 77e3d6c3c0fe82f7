"""What a page or the API shows of one node in one period: the snapshot's figures beside the
follow-up (comment, åtgärder, förvaltningens prognos, approval). Per nämnd: a period view is one
nämnd's snapshot and follow-up."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy

from core.domain import DomainConfig
from core.period import Period
from forecasts.live import TOTAL, NodeForecast
from services.followup.read import Measure, NodeFollowUp, PeriodFollowUp, load_follow_up
from services.snapshots.store import StoredSnapshot, load_snapshot


@dataclass(frozen=True)
class Driver:
    category: str  # id
    name: str  # Swedish
    deviation_sek: float  # budget − forecast of the category
    volume_effect_sek: float | None
    price_effect_sek: float | None


@dataclass(frozen=True)
class NodeView:
    org_unit: str
    name: str
    level: str
    depth: int
    budget_full_year_sek: float | None
    budget_ytd_sek: float | None
    actual_ytd_sek: float
    forecast_full_year_sek: float
    forecast_low_sek: float
    forecast_high_sek: float
    deviation_sek: float | None  # budget − forecast
    driver: Driver | None
    last_month_forecast_sek: float | None
    last_year_outcome_sek: float | None
    follow_up: NodeFollowUp | None

    @property
    def adjusted_full_year_sek(self) -> float | None:
        return self.follow_up.adjusted_full_year_sek if self.follow_up else None

    @property
    def measures(self) -> tuple[Measure, ...]:
        return self.follow_up.measures if self.follow_up else ()

    def as_json(self, period: str, snapshot_version: int) -> dict[str, Any]:
        follow = self.follow_up
        approval = follow.approval if follow else None
        return {
            "period": period,
            "snapshot_version": snapshot_version,
            "org_unit": self.org_unit,
            "name": self.name,
            "level": self.level,
            "budget_full_year_sek": self.budget_full_year_sek,
            "budget_ytd_sek": self.budget_ytd_sek,
            "actual_ytd_sek": self.actual_ytd_sek,
            "forecast_full_year_sek": self.forecast_full_year_sek,
            "forecast_low_sek": self.forecast_low_sek,
            "forecast_high_sek": self.forecast_high_sek,
            "deviation_sek": self.deviation_sek,
            "driver": asdict(self.driver) if self.driver else None,
            "last_month_forecast_sek": self.last_month_forecast_sek,
            "last_year_outcome_sek": self.last_year_outcome_sek,
            "adjusted_full_year_sek": self.adjusted_full_year_sek,
            "adjustment_reason": follow.adjustment_reason if follow else None,
            "comment": follow.comment if follow else None,
            "comment_by": follow.comment_by if follow else None,
            "measures": [
                {**asdict(m), "decided": m.decided.isoformat() if m.decided else None}
                for m in self.measures
            ],
            "approved": approval is not None,
            "approval": (
                {
                    "approved_by": approval.approved_by,
                    "approved_at": approval.approved_at.isoformat(),
                    "snapshot_version": approval.snapshot_version,
                    "comment": approval.comment,
                }
                if approval
                else None
            ),
        }


@dataclass(frozen=True)
class PeriodView:
    period: str
    namnd: str  # the owner: a nämnd id or "omappad"
    namnd_name: str
    snapshot: StoredSnapshot
    nodes: dict[str, NodeView]  # in tree order (nämnd first, depth-first)
    follow_up: PeriodFollowUp


def _totals(snapshot: StoredSnapshot | None) -> dict[str, NodeForecast]:
    if snapshot is None:
        return {}
    return {
        n.org_unit: n for n in snapshot.forecast.nodes if n.kind == "cost" and n.category == TOTAL
    }


def _drivers(snapshot: StoredSnapshot, domain: DomainConfig) -> dict[str, Driver]:
    """Per node: the cost category with the largest deficit (most negative budget − forecast)."""
    worst: dict[str, NodeForecast] = {}
    for node in snapshot.forecast.nodes:
        if node.kind != "cost" or node.category == TOTAL or node.deviation is None:
            continue
        current = worst.get(node.org_unit)
        if current is None or node.deviation < (current.deviation or 0.0):
            worst[node.org_unit] = node
    out: dict[str, Driver] = {}
    for unit, node in worst.items():
        if node.deviation is None or node.deviation >= 0:
            continue
        category = domain.categories.get(node.category)
        out[unit] = Driver(
            category=node.category,
            name=category.name_sv if category else node.category,
            deviation_sek=node.deviation,
            volume_effect_sek=node.volume_effect,
            price_effect_sek=node.price_effect,
        )
    return out


def load_period_view(
    engine: sqlalchemy.Engine,
    domain: DomainConfig,
    period: str,
    version: int | None = None,
    *,
    namnd: str,
) -> PeriodView | None:
    """The nämnd's latest (or given) snapshot of the period with its follow-up; None without a
    snapshot. ``domain`` is the whole organisation's; the view sees the nämnd's part."""
    snapshot = load_snapshot(engine, period, version, namnd=namnd)
    if snapshot is None:
        return None
    year, month = Period.parse_exact(period)
    last_month = (
        load_snapshot(engine, f"{year}-{month - 1:02d}", namnd=namnd) if month > 1 else None
    )
    last_year = load_snapshot(engine, f"{year - 1}-12", namnd=namnd)
    totals, previous, outcome = _totals(snapshot), _totals(last_month), _totals(last_year)
    drivers = _drivers(snapshot, domain)
    follow_up = load_follow_up(engine, period, namnd=namnd)
    org = domain.org.subtree(namnd)
    ordered: list[tuple[str, int]] = []

    def walk(node_id: str, depth: int) -> None:
        ordered.append((node_id, depth))
        for child in org.children(node_id):
            walk(child.id, depth + 1)

    if namnd in org.nodes:
        walk(namnd, 0)
    ordered += [(unit, 1) for unit in totals if unit not in {u for u, _ in ordered}]
    nodes: dict[str, NodeView] = {}
    for unit, depth in ordered:
        total = totals.get(unit)
        if total is None:
            continue
        org_node = org.nodes.get(unit)
        last_year_total = outcome.get(unit)
        nodes[unit] = NodeView(
            org_unit=unit,
            name=org_node.name if org_node else unit,
            level=total.level,
            depth=depth,
            budget_full_year_sek=total.budget_full_year,
            budget_ytd_sek=total.budget_ytd,
            actual_ytd_sek=total.actual_ytd,
            forecast_full_year_sek=total.full_year,
            forecast_low_sek=total.low,
            forecast_high_sek=total.high,
            deviation_sek=total.deviation,
            driver=drivers.get(unit),
            last_month_forecast_sek=previous[unit].full_year if unit in previous else None,
            last_year_outcome_sek=last_year_total.actual_ytd if last_year_total else None,
            follow_up=follow_up.nodes.get(unit),
        )
    top = domain.org.nodes.get(namnd)
    return PeriodView(period, namnd, top.name if top else namnd, snapshot, nodes, follow_up)
