"""/healthz (the process answers), /readyz (the database answers, the scheduler is alive) and /metrics
(Prometheus exposition of what the database holds and what this process did)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from monitor.api.context import ApiContext
from monitor.api.schemas import GUARDED, Health
from monitor.metrics import REGISTRY
from monitor.store.db import Database
from monitor.store.search import counts, ping

open_router = APIRouter(tags=["health"], responses=GUARDED)  # no token
router = APIRouter(tags=["health"], responses=GUARDED)

_GAUGES = {  # series name in search.counts → (metric, help, label names)
    "feeds": ("monitor_feeds", "Feeds by last poll outcome.", ["outcome"]),
    "feed_errors": ("monitor_feed_consecutive_errors", "Consecutive failed polls of each feed.", ["feed"]),
    "entries": ("monitor_entries", "Feed entries stored.", []),
    "articles": ("monitor_articles", "Articles stored.", []),
    "matches": ("monitor_matches", "Matches stored, by rule.", ["rule"]),
    "deliveries": ("monitor_deliveries", "Outbox rows by destination and status.", ["destination", "status"]),
    "digests": ("monitor_digests", "Digests by destination and status.", ["destination", "status"]),
}


class StoreCollector(Collector):
    """Gauges read from the database at each scrape."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, series in counts(self._db).items():
            metric, help_text, labels = _GAUGES[name]
            family = GaugeMetricFamily(metric, help_text, labels=labels)
            for values, value in series:
                family.add_metric(list(values), value)
            yield family


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


@open_router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process answers (no token needed)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(request: Request) -> Response:
    """Ready when the database answers and, in `monitor run`, the scheduler is alive."""
    ctx = _ctx(request)
    checks = {}
    try:
        ping(ctx.db)
        checks["database"] = "ok"
    except Exception as exc:  # an API boundary: any database failure means "not ready", said plainly
        checks["database"] = f"failing: {type(exc).__name__}"
    if ctx.heartbeat is not None:
        checks["scheduler"] = "ok" if ctx.heartbeat.alive() else "stalled"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(Health(status="ok" if ready else "failing", checks=checks).model_dump(),
                        status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(_ctx(request).db))
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
