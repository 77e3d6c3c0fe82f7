"""The worker's HTTP endpoints: ``/metrics``, ``/ready``, ``/forecasts/status`` and ``/unmapped``.

The answers are plain functions of the worker (tested without a web server); the views only
serve them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View

from streams.faust_compat import recovery_completed
from streams.forecasting import status_json
from streams.metrics import CONTENT_TYPE
from streams.pii_egress import EGRESS

if TYPE_CHECKING:
    from streams.app import WorkerApp


def is_ready(worker: WorkerApp) -> bool:
    """The state is rebuilt for the partitions this worker has, and nothing is moving."""
    app = worker.app
    return worker.ready and not app.rebalancing and recovery_completed(app) and not app.in_recovery


def ready_answer(worker: WorkerApp) -> tuple[dict[str, Any], int]:
    ok = is_ready(worker)
    return {"ready": ok, "partitions": sorted(worker.state.partitions)}, 200 if ok else 503


def forecast_status_answer(worker: WorkerApp) -> dict[str, Any]:
    # The demo and tests wait until the forecast has seen the state as it is now.
    return {**status_json(worker.forecaster.status), "current_state_version": worker.state.version}


def unmapped_answer(worker: WorkerApp) -> dict[str, Any]:
    """The cost centres with events that are not in the org tree, for ``budgetvakt unmapped``.

    Only here and in the events themselves: never a metric label (docs/metrics.md). The ids
    passed the personnummer guard on the way in and the output check on the way out."""
    units = sorted(worker.state.snapshot(worker.domain.org).unmapped_units)
    ids = [unit for unit in units if EGRESS.is_clean("web", unit)]
    return {"count": len(units), "org_units": ids, "partitions": sorted(worker.state.partitions)}


def register_views(worker: WorkerApp) -> None:
    @worker.app.page("/unmapped")
    class UnmappedView(View):
        async def get(self, request: Request) -> Response:
            return self.json(unmapped_answer(worker))

    @worker.app.page("/forecasts/status")
    class ForecastStatusView(View):
        async def get(self, request: Request) -> Response:
            return self.json(forecast_status_answer(worker))

    @worker.app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            names = request.query.getall("name[]", [])  # type: ignore[attr-defined]  # aiohttp's MultiDict
            return self.bytes(worker.metrics.exposition(names), content_type=CONTENT_TYPE)

    @worker.app.page("/ready")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            answer, status = ready_answer(worker)
            return self.json(answer, status=status)
