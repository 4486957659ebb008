"""/api/rules, /api/feeds and /api/deliveries: what the service runs with and how it is doing."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from monitor.api.context import ApiContext
from monitor.api.schemas import GUARDED, DeliveryOut, FeedOut, RuleOut
from monitor.store import queries
from monitor.store.feedstate import feed_health
from monitor.store.outbox import list_deliveries
from monitor.store.search import rule_stats

router = APIRouter(prefix="/api", tags=["status"], responses=GUARDED)


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


@router.get("/rules", response_model=list[RuleOut])
def list_rules(request: Request) -> list[RuleOut]:
    """The rules in force, with how many matches each has stored and when it last matched."""
    ctx = _ctx(request)
    stats = rule_stats(ctx.db)
    return [RuleOut(id=r.id, title=r.title, description=r.description or None, severity=r.severity,
                    routes=list(r.routes), source=r.source, matches=stats.get(r.id, (0, None))[0],
                    last_match=stats.get(r.id, (0, None))[1]) for r in ctx.rules().rules]


@router.get("/feeds", response_model=list[FeedOut])
def list_feeds(request: Request) -> list[FeedOut]:
    """Every polled feed's fetch state: health (ok, warning, failing, never polled), last error."""
    rows = queries.list_feed_rows(_ctx(request).db)
    return [FeedOut.model_validate(feed_health(row)) for row in rows]


@router.get("/deliveries", response_model=list[DeliveryOut])
def deliveries(
    request: Request,
    status: Annotated[Literal["pending", "sending", "sent", "failed", "dead"] | None,
                      Query(description="Only rows in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="At most this many, newest first.")] = 50,
) -> list[DeliveryOut]:
    """The outbox: one row per (article, destination) with its state, attempts and last error."""
    rows = list_deliveries(_ctx(request).db, status, limit)
    return [DeliveryOut.model_validate({**row.model_dump(), "rules": json.loads(row.rules)}) for row in rows]
