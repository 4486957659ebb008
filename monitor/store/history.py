"""Stored articles read back for `monitor rules replay`, and the matches a replay adds."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert
from sqlalchemy import select as sa_select
from sqlmodel import Session

from monitor.models import Match
from monitor.store.db import Database
from monitor.store.outbox import Plan, queue_deliveries
from monitor.store.tables import ArticleRow, EntryRow, FeedRow, MatchRow

_ARTICLES = ArticleRow.__table__  # type: ignore[attr-defined]
_ENTRIES = EntryRow.__table__  # type: ignore[attr-defined]
_FEEDS = FeedRow.__table__  # type: ignore[attr-defined]
_MATCHES = MatchRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StoredArticle:
    id: int
    title: str
    summary: str
    text: str
    text_source: str
    lang: str | None
    url: str | None
    feed: str  # the first feed it was seen in
    rules: frozenset[str]  # rule ids of its stored matches


def stored_articles(db: Database, since: datetime | None, batch: int = 500) -> Iterator[StoredArticle]:
    """Articles stored since ``since`` (all when None), oldest first, read ``batch`` at a time so memory stays
    bounded however long the history."""
    after = 0
    while True:
        query = sa_select(_ARTICLES.c.id, _ARTICLES.c.title, _ARTICLES.c.summary, _ARTICLES.c.text,
                          _ARTICLES.c.text_source, _ARTICLES.c.lang, _ARTICLES.c.url).where(_ARTICLES.c.id > after)
        if since is not None:
            query = query.where(_ARTICLES.c.created_at >= since)
        with db.read() as session:
            rows = session.execute(query.order_by(_ARTICLES.c.id).limit(batch)).all()
            ids = [row.id for row in rows]
            feeds = _first_feeds(session, ids)
            rules = _stored_rules(session, ids)
        for row in rows:
            yield StoredArticle(row.id, row.title, row.summary, row.text, row.text_source, row.lang, row.url,
                                feeds.get(row.id, ""), frozenset(rules.get(row.id, ())))
        if len(rows) < batch:
            return
        after = ids[-1]


def _first_feeds(session: Session, ids: Sequence[int]) -> dict[int, str]:
    if not ids:
        return {}
    first = (sa_select(_ENTRIES.c.article_id, func.min(_ENTRIES.c.id).label("entry"))
             .where(_ENTRIES.c.article_id.in_(ids)).group_by(_ENTRIES.c.article_id).subquery())
    query = (sa_select(first.c.article_id, _FEEDS.c.name)
             .join(_ENTRIES, _ENTRIES.c.id == first.c.entry).join(_FEEDS, _FEEDS.c.id == _ENTRIES.c.feed_id))
    return {article_id: name for article_id, name in session.execute(query)}


def _stored_rules(session: Session, ids: Sequence[int]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    if ids:
        query = sa_select(_MATCHES.c.article_id, _MATCHES.c.rule_id).where(_MATCHES.c.article_id.in_(ids))
        for article_id, rule_id in session.execute(query):
            found.setdefault(article_id, set()).add(rule_id)
    return found


def add_matches(db: Database, found: Sequence[tuple[int, Match]], now: datetime, plan: Plan | None = None) -> int:
    """Store replayed matches that are still missing (checked again inside the write transaction, so a
    poll storing the same match meanwhile is not doubled), and with ``plan`` queue their deliveries in the
    same transaction (an article already queued for a destination is not queued there again). Returns
    how many matches were stored."""
    if not found:
        return 0
    with db.write() as session:
        ids = sorted({article_id for article_id, _ in found})
        present = {(a, r) for a, r in session.execute(
            sa_select(_MATCHES.c.article_id, _MATCHES.c.rule_id).where(_MATCHES.c.article_id.in_(ids)))}
        new = [(article_id, m) for article_id, m in found if (article_id, m.rule_id) not in present]
        rows = [
            {"article_id": article_id, "rule_id": m.rule_id, "rule_title": m.rule_title, "severity": m.severity,
             "explanation": json.dumps(m.explanation.as_dict(), ensure_ascii=False), "matched_at": now}
            for article_id, m in new
        ]
        if rows:
            session.execute(insert(_MATCHES), rows)
        if plan is not None and new:
            by_article: dict[int, list[Match]] = {}
            for article_id, m in new:
                by_article.setdefault(article_id, []).append(m)
            queue_deliveries(session, [(a, tuple(ms)) for a, ms in by_article.items()], plan, now)
    return len(rows)


def articles_by_id(db: Database, ids: Sequence[int]) -> list[StoredArticle]:
    """The stored articles with these ids (any that exist), in id order, read 500 at a time."""
    found: list[StoredArticle] = []
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        query = sa_select(_ARTICLES.c.id, _ARTICLES.c.title, _ARTICLES.c.summary, _ARTICLES.c.text,
                          _ARTICLES.c.text_source, _ARTICLES.c.lang, _ARTICLES.c.url).where(_ARTICLES.c.id.in_(chunk))
        with db.read() as session:
            rows = session.execute(query.order_by(_ARTICLES.c.id)).all()
            feeds = _first_feeds(session, chunk)
            rules = _stored_rules(session, chunk)
        found += [StoredArticle(row.id, row.title, row.summary, row.text, row.text_source, row.lang, row.url,
                                feeds.get(row.id, ""), frozenset(rules.get(row.id, ()))) for row in rows]
    return found
