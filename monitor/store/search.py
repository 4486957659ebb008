"""Queries behind the API: matches filtered and paged by a (matched_at, id) cursor, one match's article with
every rule it matched, per-rule statistics, and the counts the metrics endpoint reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, text

from monitor.store import queries
from monitor.store.db import Database
from monitor.store.queries import MatchView
from monitor.store.tables import ArticleRow, DeliveryRow, DigestRow, EntryRow, FeedRow, MatchRow

_MATCHES = MatchRow.__table__  # type: ignore[attr-defined]
_ARTICLES = ArticleRow.__table__  # type: ignore[attr-defined]
_ENTRIES = EntryRow.__table__  # type: ignore[attr-defined]
_FEEDS = FeedRow.__table__  # type: ignore[attr-defined]
_M, _A, _E, _F = _MATCHES.c, _ARTICLES.c, _ENTRIES.c, _FEEDS.c
_D = DeliveryRow.__table__.c  # type: ignore[attr-defined]
_G = DigestRow.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True)
class MatchFilter:
    rule: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    feed: str | None = None
    lang: str | None = None
    q: str | None = None  # text in the title, summary or text (any script; ASCII letters in any case)
    severity: str | None = None
    before: tuple[datetime, int] | None = None  # the cursor: strictly older than this (matched_at, id)


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _conditions(f: MatchFilter) -> list[Any]:
    conditions: list[Any] = []
    if f.rule:
        conditions.append(_M.rule_id == f.rule)
    if f.severity:
        conditions.append(_M.severity == f.severity)
    if f.since:
        conditions.append(_M.matched_at >= f.since)
    if f.until:
        conditions.append(_M.matched_at < f.until)
    if f.lang:
        conditions.append(or_(_A.lang == f.lang, _A.lang.like(f"{f.lang}-%")))
    if f.q:
        pattern = _like(f.q)
        conditions.append(or_(*(c.ilike(pattern, escape="\\") for c in (_A.title, _A.summary, _A.text))))
    if f.feed:
        in_feed = select(_E.article_id).join(_FEEDS, _F.id == _E.feed_id).where(_F.name == f.feed)
        conditions.append(_M.article_id.in_(in_feed))
    if f.before:
        at, ident = f.before
        conditions.append(or_(_M.matched_at < at, and_(_M.matched_at == at, _M.id < ident)))
    return conditions


def search_matches(db: Database, f: MatchFilter, limit: int) -> list[MatchView]:
    """Newest first (matched_at, then id), at most ``limit``."""
    query = (select(_M.id).join(_ARTICLES, _A.id == _M.article_id).where(*_conditions(f))
             .order_by(_M.matched_at.desc(), _M.id.desc()).limit(limit))
    with db.read() as session:
        ids = [i for (i,) in session.execute(query)]
    return queries.matches_by_id(db, ids)


def article_matches(db: Database, match_id: int) -> tuple[ArticleRow, list[MatchView]] | None:
    """The article of match ``match_id`` and every match it has (oldest first)."""
    with db.read() as session:
        match = session.get(MatchRow, match_id)
        article = session.get(ArticleRow, match.article_id) if match else None
    if article is None or article.id is None:
        return None
    views = queries.list_matches(db, article_ids=[article.id], limit=1000)
    return article, sorted(views, key=lambda v: (v.matched_at, v.id))


def rule_stats(db: Database) -> dict[str, tuple[int, datetime | None]]:
    """Per rule id: (matches stored, last match time)."""
    query = select(_M.rule_id, func.count(), func.max(_M.matched_at)).group_by(_M.rule_id)
    with db.read() as session:
        return {rule: (count, last) for rule, count, last in session.execute(query)}


def counts(db: Database) -> dict[str, list[tuple[tuple[str, ...], int]]]:
    """What /metrics reports from the database: (labels, value) per series."""
    grouped = {
        "feeds": select(func.coalesce(_F.last_outcome, "never"), func.count()).group_by(_F.last_outcome),
        "feed_errors": select(_F.name, _F.consecutive_errors),
        "matches": select(_M.rule_id, func.count()).group_by(_M.rule_id),
        "deliveries": select(_D.destination, _D.status, func.count()).group_by(_D.destination, _D.status),
        "digests": select(_G.destination, _G.status, func.count()).group_by(_G.destination, _G.status),
        "entries": select(func.count()).select_from(_ENTRIES),
        "articles": select(func.count()).select_from(_ARTICLES),
    }
    out: dict[str, list[tuple[tuple[str, ...], int]]] = {}
    with db.read() as session:
        for name, query in grouped.items():
            out[name] = [(tuple(str(v) for v in row[:-1]), int(row[-1])) for row in session.execute(query)]
    return out


def ping(db: Database) -> None:
    """Raise if the database cannot answer."""
    with db.read() as session:
        session.execute(text("SELECT 1"))
