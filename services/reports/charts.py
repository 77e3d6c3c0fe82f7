"""Charts of the delårsrapport: one PNG per avdelning and one for the nämnd.

Each chart has two panels for the node's net cost (category ``total``) in mnkr:

* *Per månad*: the monthly actuals (bars) against the periodised budget (steps), and the
  forecast of the remaining months with an 80 % band. A month's band is the full-year standard
  deviation spread evenly over the remaining months as if their errors were independent
  (σ_month = σ / √remaining), the approximation ``NodeForecast.next_month`` documents.
* *Ackumulerad avvikelse*: budget − net cost accumulated over the year (negative = underskott),
  actual to date and then forecast; the band widens from zero at the last actual month to the
  full-year 80 % interval (budget − high … budget − low) in December, in proportion to
  √(months ahead / months remaining). A node without a budget shows its accumulated cost.

Rendering uses matplotlib's Agg canvas directly (no pyplot, no global figure state) with fixed
rc parameters and no PNG metadata, so the same forecast always gives the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.swedish import MONTH_TICKS_SV, format_number_sv
from forecasts.live import NodeForecast

MNKR = 1e6
WIDTH_IN, HEIGHT_IN, DPI = 10.0, 3.8, 100

COLOUR_ACTUAL = "#1f5f8b"
COLOUR_BUDGET = "#444444"
COLOUR_FORECAST = "#c0392b"
COLOUR_BAND = "#f1a9a0"

_RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "savefig.dpi": DPI,
    "path.simplify": False,
}


@dataclass(frozen=True)
class Chart:
    org_unit: str
    title: str
    png: bytes
    width_px: int
    height_px: int


def monthly_band(node: NodeForecast) -> list[tuple[float, float]]:
    """80 % band of each forecast month (sek): path ± ``NodeForecast.month_spread``."""
    spread = node.month_spread
    return [(value - spread, value + spread) for value in node.path]


def cumulative_band(node: NodeForecast) -> list[tuple[float, float, float]]:
    """(forecast, low, high) of the accumulated net cost for months as_of … 12 (sek)."""
    remaining = len(node.path)
    start = node.actual_ytd
    out = [(start, start, start)]
    running = start
    for ahead, value in enumerate(node.path, start=1):
        running += value
        share = math.sqrt(ahead / remaining)
        # Scaled so that December is exactly the full-year interval (which may be asymmetric).
        out.append(
            (
                running,
                running - (node.full_year - node.low) * share,
                running + (node.high - node.full_year) * share,
            )
        )
    return out


def _swedish_axis(value: float, _pos: object = None) -> str:
    return format_number_sv(value, 0 if float(value).is_integer() else 1)


def _cumsum(values: Iterable[float]) -> list[float]:
    out, running = [], 0.0
    for value in values:
        running += value
        out.append(running)
    return out


def render_chart(node: NodeForecast, title: str) -> bytes:
    """The two-panel PNG of one node's net cost (see module doc)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    as_of = node.as_of_month
    months = list(range(1, 13))
    actual_months, forecast_months = months[:as_of], months[as_of:]
    budget = node.budget_monthly
    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
        FigureCanvasAgg(fig)
        monthly, cumulative = fig.subplots(1, 2)

        if budget is not None:
            monthly.step(
                months,
                [v / MNKR for v in budget],
                where="mid",
                color=COLOUR_BUDGET,
                linestyle="--",
                linewidth=1.2,
                label="Budget (periodiserad)",
            )
        monthly.plot(
            actual_months,
            [v / MNKR for v in node.actual_monthly],
            color=COLOUR_ACTUAL,
            marker="o",
            markersize=3.5,
            linewidth=1.8,
            label="Utfall",
        )
        if forecast_months:
            band = monthly_band(node)
            monthly.fill_between(
                forecast_months,
                [lo / MNKR for lo, _ in band],
                [hi / MNKR for _, hi in band],
                color=COLOUR_BAND,
                alpha=0.6,
                linewidth=0,
                label="80 %-intervall",
            )
            monthly.plot(
                forecast_months,
                [v / MNKR for v in node.path],
                color=COLOUR_FORECAST,
                marker="o",
                markersize=3,
                linewidth=1.5,
                label="Prognos",
            )
        monthly.set_title("Nettokostnad per månad (mnkr)")

        # With a budget the right panel is the accumulated deviation (budget − cost, negative =
        # underskott); without one it is the accumulated cost.
        baseline = _cumsum(budget) if budget is not None else [0.0] * 12
        sign = 1.0 if budget is not None else -1.0

        def shown(month: int, cumulative_cost: float) -> float:
            return sign * (baseline[month - 1] - cumulative_cost) / MNKR

        cumulative.axhline(0.0, color=COLOUR_BUDGET, linewidth=0.8)
        cumulative.plot(
            actual_months,
            [shown(m, c) for m, c in zip(actual_months, _cumsum(node.actual_monthly), strict=True)],
            color=COLOUR_ACTUAL,
            marker="o",
            markersize=3.5,
            linewidth=1.8,
            label="Utfall",
        )
        if forecast_months:
            cum = cumulative_band(node)
            xs = [as_of, *forecast_months]
            first = [shown(m, lo) for m, (_, lo, _) in zip(xs, cum, strict=True)]
            second = [shown(m, hi) for m, (_, _, hi) in zip(xs, cum, strict=True)]
            cumulative.fill_between(
                xs, first, second, color=COLOUR_BAND, alpha=0.6, linewidth=0, label="80 %-intervall"
            )
            end = shown(12, node.full_year)
            cumulative.plot(
                xs,
                [shown(m, v) for m, (v, _, _) in zip(xs, cum, strict=True)],
                color=COLOUR_FORECAST,
                linewidth=1.5,
                label=f"Prognos ({format_number_sv(end)} i dec)",
            )
        cumulative.set_title(
            "Ackumulerad avvikelse mot budget (mnkr)"
            if budget is not None
            else "Ackumulerad nettokostnad (mnkr)"
        )

        for axes in (monthly, cumulative):
            axes.set_xticks(months)
            axes.set_xticklabels(MONTH_TICKS_SV)
            axes.set_xlim(0.5, 12.5)
            axes.yaxis.set_major_formatter(FuncFormatter(_swedish_axis))
            axes.axvline(as_of + 0.5, color="#999999", linewidth=0.8, linestyle=":")
            axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=4)
        fig.suptitle(title, fontsize=11, fontweight="bold")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def render_charts(nodes: Iterable[tuple[str, str, NodeForecast | None]]) -> list[Chart]:
    """A chart per (org unit, name, total forecast); nodes without a forecast are skipped."""
    out = []
    for org_unit, name, node in nodes:
        if node is None:
            continue
        title = f"{name}: nettokostnad, utfall och prognos {node.year}"
        out.append(
            Chart(
                org_unit,
                title,
                render_chart(node, title),
                int(WIDTH_IN * DPI),
                int(HEIGHT_IN * DPI),
            )
        )
    return out
