"""``/metrics``: Prometheus metrics, served when ``STEPD_METRICS`` is true.

Outside the OpenAPI document, which must not depend on settings; it is for scrapers.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.observability.metrics import Metrics

router = APIRouter(tags=["observability"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The application's metrics, as Prometheus text or OpenMetrics per ``Accept``."""
    collected: Metrics = request.app.state.metrics
    body, content_type = collected.exposition(request.headers.get("accept"))
    return Response(body, media_type=content_type)
