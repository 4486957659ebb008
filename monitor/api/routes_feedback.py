"""/api/matches/{id}/judgement and /api/judgements: analysts mark a match relevant or not relevant, and report
an article a rule missed; every judgement is stored with its time and the name of the token that sent it,
and becomes test data (`monitor labels export`, `monitor rules eval --feedback`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError

from monitor.api.context import ApiContext
from monitor.api.schemas import GUARDED, JudgementIn, JudgementOut, MissedById, MissedByUrl, Problem
from monitor.store import judgements as store

router = APIRouter(prefix="/api", tags=["feedback"], responses=GUARDED)
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": Problem,
                                                      "description": "No such match, rule or article."}}


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def _author(request: Request) -> str:
    return str(getattr(request.state, "token_name", "operator"))


def _within_limit(ctx: ApiContext, author: str, now: datetime) -> None:
    """429 when this token has sent MONITOR_FEEDBACK_PER_MINUTE judgements in the last minute."""
    if store.count_recent(ctx.db, author, now - timedelta(minutes=1)) >= ctx.settings.feedback_per_minute:
        raise HTTPException(429, "too many judgements from this token in a minute", headers={"Retry-After": "60"})


def judge_match(ctx: ApiContext, author: str, match_id: int, verdict: str, comment: str | None) -> store.Judgement:
    """Store a judgement of a stored match (404: no such match; 429: a flood)."""
    now = datetime.now(UTC)
    match = store.find_match(ctx.db, match_id)
    if match is None:
        raise HTTPException(404, "no such match")
    _within_limit(ctx, author, now)
    return store.add_judgement(ctx.db, match.article_id, match.rule, match.id, verdict, comment, author, now)


def report_missed(ctx: ApiContext, author: str, rule: str, article_id: int | None, url: str | None,
                  comment: str | None) -> store.Judgement:
    """Store that ``rule`` should have matched a stored article (given by id or link). A missed report of an
    article the rule did match is stored as a 'relevant' judgement of that match. 404: no such rule loaded,
    no such article."""
    if rule not in ctx.rules().ids():
        raise HTTPException(404, f"no rule {rule!r} is loaded")
    found = store.find_article(ctx.db, article_id=article_id, url=url)
    if found is None:
        raise HTTPException(404, "no stored article with this " + ("id" if article_id is not None else "url"))
    now = datetime.now(UTC)
    _within_limit(ctx, author, now)
    match_id = store.matched(ctx.db, found, rule)
    verdict = "missed" if match_id is None else "relevant"
    return store.add_judgement(ctx.db, found, rule, match_id, verdict, comment, author, now)


@router.post("/matches/{match_id}/judgement", response_model=JudgementOut, status_code=201, responses=NOT_FOUND)
def post_judgement(request: Request, match_id: Annotated[int, Path(ge=1, le=2**62)], body: JudgementIn
                   ) -> JudgementOut:
    """Mark a match relevant or not relevant (stored with the time and the token's name; the newest
    judgement of a match is the one in force)."""
    return JudgementOut.of(judge_match(_ctx(request), _author(request), match_id, body.verdict, body.comment))


@router.post("/judgements/missed", response_model=JudgementOut, status_code=201, responses=NOT_FOUND)
def post_missed(request: Request, body: MissedById | MissedByUrl) -> JudgementOut:
    """Report a stored article (by ``article_id`` or by ``url``) that a rule should have matched."""
    article_id = body.article_id if isinstance(body, MissedById) else None
    url = body.url if isinstance(body, MissedByUrl) else None
    return JudgementOut.of(report_missed(_ctx(request), _author(request), body.rule, article_id, url,
                                         body.comment))


@router.get("/judgements", response_model=list[JudgementOut])
def get_judgements(
    request: Request,
    since: Annotated[datetime | None, Query(description="Sent at or after (ISO 8601 with zone).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")] = 100,
) -> list[JudgementOut]:
    """Analysts' judgements, newest first."""
    if since is not None and since.tzinfo is None:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "since"), "input": None,
                                       "msg": "needs a time zone (e.g. 2026-11-20T08:00:00Z)"}])
    try:
        found = store.list_judgements(_ctx(request).db, since, limit=limit, newest_first=True)
    except OverflowError as exc:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "since"), "input": None,
                                       "msg": "out of range"}]) from exc
    return [JudgementOut.of(j) for j in found]
