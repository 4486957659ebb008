"""/api/matches: recent matches, filtered and paged; /api/matches/{id}: one article with every rule it
matched."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError

from monitor.api.context import ApiContext
from monitor.api.schemas import GUARDED, ArticleOut, MatchOut, MatchPage, Problem, decode_cursor, encode_cursor
from monitor.store.judgements import judgements_of_articles
from monitor.store.search import MatchFilter, article_matches, search_matches

router = APIRouter(prefix="/api", tags=["matches"], responses=GUARDED)
MAX_LIMIT = 200


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def invalid(parameter: str, message: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own (the documented HTTPValidationError)."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", parameter), "msg": message,
                                    "input": None}])


def match_filter(rule: str | None, since: datetime | None, until: datetime | None, feed: str | None,
                 lang: str | None, q: str | None, severity: str | None, cursor: str | None) -> MatchFilter:
    """The filter of a request (422 for a naive time or a cursor this API did not hand out)."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise invalid(name, "needs a time zone (e.g. 2026-11-20T08:00:00Z)")
    before = None
    if cursor:
        try:
            before = decode_cursor(cursor)
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid("cursor", "not a cursor from this API (use next_cursor as it was given)") from exc
    return MatchFilter(rule=rule, since=since, until=until, feed=feed, lang=lang, q=q, severity=severity, before=before)


@router.get("/matches", response_model=MatchPage)
def list_matches(
    request: Request,
    rule: Annotated[str | None, Query(max_length=64, description="Rule id.")] = None,
    since: Annotated[datetime | None, Query(description="Matched at or after (ISO 8601 with zone).")] = None,
    until: Annotated[datetime | None, Query(description="Matched before (ISO 8601 with zone).")] = None,
    feed: Annotated[str | None, Query(max_length=200, description="Feed name.")] = None,
    lang: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="Language.")]
    = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200,
                                   description="Text in the title, summary or text (Chinese, Japanese, Korean too).")]
    = None,
    severity: Annotated[Literal["alert", "digest"] | None, Query(description="Rule severity.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
) -> MatchPage:
    """Matches, newest first, each with its explanation. Page through with ``next_cursor``."""
    chosen = match_filter(rule, since, until, feed, lang, q, severity, cursor)
    found = search_matches(_ctx(request).db, chosen, limit + 1)
    page, more = found[:limit], len(found) > limit
    judged = judgements_of_articles(_ctx(request).db, sorted({m.article_id for m in page}))
    return MatchPage(items=[MatchOut.of(m, judged.get(m.article_id)) for m in page],
                     next_cursor=encode_cursor(page[-1].matched_at, page[-1].id) if more else None)


@router.get("/matches/{match_id}", response_model=ArticleOut,
            responses={404: {"model": Problem, "description": "No match with this id."}})
def get_match(request: Request, match_id: Annotated[int, Path(ge=1, le=2**62)]) -> ArticleOut:
    """The matched article and every rule it matched, with each explanation."""
    found = article_matches(_ctx(request).db, match_id)
    if found is None:
        raise HTTPException(404, "no such match")
    article, matches = found
    judged = judgements_of_articles(_ctx(request).db, [article.id or 0]).get(article.id or 0)
    return ArticleOut(match_id=match_id, article_id=article.id or 0, title=article.title, url=article.url,
                      lang=article.lang, published=article.published_at, summary=article.summary, text=article.text,
                      text_source=article.text_source, matches=[MatchOut.of(m, judged) for m in matches])
