"""/feeds/matches.atom: the matches (same filters as /api/matches) as an Atom feed any reader can subscribe
to. Readers that cannot send an Authorization header pass the token as ``access_token`` in the URL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from monitor.api.context import ApiContext
from monitor.api.routes_matches import MAX_LIMIT, match_filter
from monitor.api.schemas import GUARDED
from monitor.store.queries import MatchView
from monitor.store.search import search_matches

router = APIRouter(tags=["feeds"], responses=GUARDED)
ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("", ATOM)


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    if text is not None:
        element.text = text
    return element


def _clean(text: str) -> str:
    """XML 1.0 cannot carry most control characters, whatever the escaping: they are dropped."""
    return "".join(c for c in text if c in "\t\n\r" or (" " <= c and c not in "\ufffe\uffff"))


def _entry(feed: ET.Element, match: MatchView) -> None:
    entry = _add(feed, "entry")
    _add(entry, "id", f"urn:monitor:match:{match.id}")
    _add(entry, "title", _clean(f"[{match.rule}] {match.title or '(no title)'}"))
    _add(entry, "updated", match.matched_at.isoformat())
    if match.published:
        _add(entry, "published", match.published.isoformat())
    if match.url and match.url.lower().startswith(("http://", "https://")):
        _add(entry, "link", href=_clean(match.url), rel="alternate")
    _add(_add(entry, "author"), "name", _clean(match.feed))
    _add(entry, "category", term=match.rule, label=_clean(match.rule_title))
    hits = match.explanation.get("hits")
    terms = sorted({str(h.get("term")) for h in hits if isinstance(h, dict)}) if isinstance(hits, list) else []
    summary = f"{match.explanation.get('snippet', '')}\n\nWhy: {match.rule_title} ({', '.join(terms)})"
    _add(entry, "summary", _clean(summary), type="text")


@router.get("/feeds/matches.atom", response_class=Response,
            responses={200: {"content": {"application/atom+xml": {}}}})
def matches_feed(
    request: Request,
    rule: Annotated[str | None, Query(max_length=64)] = None,
    feed: Annotated[str | None, Query(max_length=200)] = None,
    lang: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    severity: Annotated[Literal["alert", "digest"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    access_token: Annotated[str | None, Query(max_length=200, description="The token, for readers that "
                                                                          "cannot send headers.")] = None,
) -> Response:
    """The newest matches as Atom 1.0, each with its snippet and why it matched."""
    ctx: ApiContext = request.app.state.ctx
    found = search_matches(ctx.db, match_filter(rule, None, None, feed, lang, q, severity, None), limit)
    root = ET.Element(f"{{{ATOM}}}feed")
    _add(root, "id", "urn:monitor:matches" + (f":{rule}" if rule else ""))
    _add(root, "title", "monitor: matches" + (f" of {rule}" if rule else ""))
    _add(root, "updated", (found[0].matched_at if found else datetime.now(UTC)).isoformat())
    _add(root, "link", href=str(request.url.remove_query_params("access_token")), rel="self")
    _add(_add(root, "author"), "name", "monitor")
    for match in found:
        _entry(root, match)
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/atom+xml; charset=utf-8")
