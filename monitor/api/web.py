"""The web page: recent matches with filters (rule, feed, language, text), each with its explanation and
the matched terms highlighted, and a feed-health panel. Server-rendered (Jinja2, every untrusted string
escaped), readable without JavaScript; signed in with the API token, kept in an HttpOnly cookie."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from monitor.api.context import ApiContext
from monitor.api.routes_feedback import judge_match, report_missed
from monitor.api.routes_matches import match_filter
from monitor.api.schemas import encode_cursor
from monitor.api.security import COOKIE, TokenCheck
from monitor.store import queries
from monitor.store.feedstate import feed_health
from monitor.store.judgements import MAX_COMMENT, Judgement, judgements_of_articles
from monitor.store.queries import MatchView
from monitor.store.search import MatchFilter, search_matches

router = APIRouter(include_in_schema=False)
_TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(default=True, default_for_string=True))
LANGUAGES = (("en", "English"), ("ko", "Korean"), ("zh", "Chinese"), ("ja", "Japanese"))
PAGE_SIZE = 50
_MARK_OPEN, _MARK_CLOSE = Markup("<mark>"), Markup("</mark>")


def _check(request: Request) -> TokenCheck:
    check: TokenCheck = request.app.state.token_check
    return check


def _signed_in(request: Request) -> bool:
    try:
        _check(request)(request)
    except HTTPException:  # 401: not signed in
        return False
    return True


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_TEMPLATES.get_template(name).render(**context), status_code=status)


def _highlighted(match: MatchView) -> Markup:
    return Markup("").join(_MARK_OPEN + escape(text) + _MARK_CLOSE if term else escape(text)
                           for text, term in match.snippet_pieces())


def _verdicts(judgements: list[Judgement], rule: str) -> list[dict[str, str]]:
    return [{"verdict": j.verdict.replace("_", " "), "author": j.author, "comment": j.comment or "",
             "at": f"{j.created_at:%Y-%m-%d %H:%M} UTC"} for j in judgements if j.rule == rule]


def _shown(match: MatchView, judgements: list[Judgement] | None = None) -> dict[str, Any]:
    hits = match.explanation.get("hits")
    clauses = match.explanation.get("clauses")
    link = match.url if match.url and match.url.lower().startswith(("http://", "https://")) else None
    return {"id": match.id, "judgements": _verdicts(judgements or [], match.rule),
            "rule": match.rule, "rule_title": match.rule_title, "title": match.title or "(no title)", "link": link,
            "feed": match.feed, "lang": match.lang, "matched_at": f"{match.matched_at:%Y-%m-%d %H:%M} UTC",
            "snippet": _highlighted(match),
            "terms": sorted({str(h.get("term")) for h in hits if isinstance(h, dict)}) if isinstance(hits, list)
            else [], "clauses": [str(c) for c in clauses] if isinstance(clauses, list) else []}


@router.get("/", response_class=HTMLResponse)
def page(
    request: Request,
    rule: Annotated[str | None, Query(max_length=64)] = None,
    feed: Annotated[str | None, Query(max_length=200)] = None,
    lang: Annotated[str | None, Query(max_length=20)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    before: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    if not _signed_in(request):
        return _render("login.html.j2", 401, wrong=False)
    ctx: ApiContext = request.app.state.ctx
    chosen = match_filter(rule or None, None, None, feed or None, lang or None, q or None, None, before or None)
    found = search_matches(ctx.db, chosen, PAGE_SIZE + 1)
    shown, more = found[:PAGE_SIZE], len(found) > PAGE_SIZE
    cursor = encode_cursor(shown[-1].matched_at, shown[-1].id) if more else None
    args = {k: v for k, v in {"rule": rule, "feed": feed, "lang": lang, "q": q}.items() if v}
    feeds = [feed_health(row) for row in queries.list_feed_rows(ctx.db)]
    judged = judgements_of_articles(ctx.db, sorted({m.article_id for m in shown}))
    back = "/?" + urlencode(args) if args else "/"
    return _render("page.html.j2", matches=[_shown(m, judged.get(m.article_id)) for m in shown], back=back,
                   notice=_NOTICES.get(request.query_params.get("done", "")), rules=ctx.rules().rules, feeds=feeds,
                   languages=LANGUAGES, chosen=MatchFilter(rule=rule, feed=feed, lang=lang, q=q),
                   next_cursor=cursor, next_link="/?" + urlencode({**args, "before": cursor or ""}))


def _sign_in(request: Request, token: str) -> Response:
    if not _check(request).matches(token):
        return _render("login.html.j2", 401, wrong=True)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=30 * 86400)
    return response


@router.get("/login")
def login_link(request: Request, token: Annotated[str, Query(max_length=200)] = "") -> Response:
    """The link `monitor run` prints: trades the token for the cookie."""
    return _sign_in(request, token)


@router.post("/login")
async def login_form(request: Request) -> Response:
    """The sign-in form (application/x-www-form-urlencoded, ``token``)."""
    body = (await request.body())[:4096].decode("utf-8", errors="replace")
    return _sign_in(request, (parse_qs(body).get("token") or [""])[0])


_NOTICES = {"judged": "Thank you: the judgement is stored (it is test data for the rules now).",
            "missed": "Thank you: the missed article is stored for its rule."}
MAX_FORM_BYTES = 8192


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, bounded; each field's first value."""
    body = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", errors="replace")
    return {key: values[0] for key, values in parse_qs(body).items()}


def _back(form: dict[str, str], done: str) -> RedirectResponse:
    """Back to the page the form was on (only a path of this site), saying what was done."""
    back = form.get("back", "/")
    if not back.startswith("/") or back.startswith("//") or "\\" in back or not back.isprintable():
        back = "/"
    separator = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{separator}done={done}", status_code=303)


def _form_error(message: str, status: int) -> HTMLResponse:
    return _render("error.html.j2", status, message=message)


async def _judged(request: Request, done: str, check: Callable[[dict[str, str]], str | None],
                  store: Callable[[str, dict[str, str]], object]) -> Response:
    """A feedback form of the page: the sign-in form for a stranger; else the form read, ``check`` (a message
    for a form not filled in as expected: 422), ``store`` as the signed-in token, and back to the page."""
    if not _signed_in(request):
        return _render("login.html.j2", 401, wrong=False)
    author = str(getattr(request.state, "token_name", "operator"))
    form = await _form(request)
    problem = check(form)
    if problem is None and len(form.get("comment", "")) > MAX_COMMENT:
        problem = f"The comment is longer than {MAX_COMMENT} characters."
    if problem is not None:
        return _form_error(problem, 422)
    try:
        store(author, form)
    except HTTPException as exc:
        return _form_error(str(exc.detail), exc.status_code)
    return _back(form, done)


def _stored_id(text: str) -> int | None:
    """A stored row's id as the form wrote it (digits, within the API's range), else None."""
    return int(text) if text.isdigit() and len(text) <= 18 else None


@router.post("/judge")
async def judge(request: Request) -> Response:
    """The page's relevant / not relevant buttons (``match_id``, ``verdict``, optional ``comment``)."""
    def check(form: dict[str, str]) -> str | None:
        if form.get("verdict") in ("relevant", "not_relevant") and _stored_id(form.get("match_id", "")):
            return None
        return "The form was not filled in as expected (match and verdict)."

    def store(author: str, form: dict[str, str]) -> object:
        return judge_match(request.app.state.ctx, author, _stored_id(form["match_id"]) or 0, form["verdict"],
                           form.get("comment", ""))

    return await _judged(request, "judged", check, store)


@router.post("/missed")
async def missed(request: Request) -> Response:
    """The page's "report a missed article" form (``rule``, ``article`` as a stored id or a link, ``comment``)."""
    def check(form: dict[str, str]) -> str | None:
        return None if form.get("article", "").strip() else "Give the stored article's id or its link."

    def store(author: str, form: dict[str, str]) -> object:
        article = form["article"].strip()
        by_id = _stored_id(article)
        return report_missed(request.app.state.ctx, author, form.get("rule", ""), by_id,
                             None if by_id is not None else article[:2000], form.get("comment", ""))

    return await _judged(request, "missed", check, store)
