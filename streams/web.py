"""The worker's HTTP endpoints: ``/metrics``, ``/ready`` and ``/forecasts/status``.

The answers are plain functions of the worker (tested without a web server); the views only
serve them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View

from streams.faust_compat import recovery_completed
from streams.forecasting import status_json
from streams.metrics import CONTENT_TYPE

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


def register_views(worker: WorkerApp) -> None:
    @worker.app.page("/forecasts/status")
    class ForecastStatusView(View):
        async def get(self, request: Request) -> Response:
            return self.json(forecast_status_answer(worker))

    @worker.app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(worker.metrics.exposition(), content_type=CONTENT_TYPE)

    @worker.app.page("/ready")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            answer, status = ready_answer(worker)
            return self.json(answer, status=status)
