"""Queries: every read and write the service makes. Write paths run in one IMMEDIATE transaction."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from monitor.models import Entry, FeedSource, ProcessedEntry, Validators
from monitor.pipeline.dedupe import article_key
from monitor.store.db import Database, insert_ignoring_conflicts
from monitor.store.outbox import Claim, Plan, queue_deliveries
from monitor.store.tables import ArticleRow, EntryRow, FeedRow, MatchRow

_ENTRIES = EntryRow.__table__  # type: ignore[attr-defined]
_ARTICLES = ArticleRow.__table__  # type: ignore[attr-defined]
_FEEDS = FeedRow.__table__  # type: ignore[attr-defined]
# Core statements on the hot paths (every feed, every poll): cached once compiled, no ORM loading.
_KEYS_IN_FEED = sa_select(_ENTRIES.c.entry_key).where(
    _ENTRIES.c.feed_id == bindparam("feed_id"), _ENTRIES.c.entry_key.in_(bindparam("keys", expanding=True)))
_URLS_IN_FEED = sa_select(_ENTRIES.c.url_key).where(
    _ENTRIES.c.feed_id == bindparam("feed_id"), _ENTRIES.c.url_key.in_(bindparam("urls", expanding=True)))
_ARTICLES_BY_KEY = sa_select(_ARTICLES.c.key, _ARTICLES.c.id).where(
    _ARTICLES.c.key.in_(bindparam("keys", expanding=True)))


@dataclass(frozen=True)
class FeedState:
    id: int
    name: str
    validators: Validators
    consecutive_errors: int
    cadence: float | None = None  # learned seconds between entries
    ttl: float | None = None  # the feed's last <ttl>, seconds


@dataclass(frozen=True)
class Known:
    """What the store already holds for a batch of parsed entries of one feed."""

    keys: frozenset[str]
    url_keys: frozenset[str]
    article_keys: frozenset[str]


@dataclass(frozen=True)
class FeedOutcome:
    """A poll's effect on a feed's fetch state."""

    checked_at: datetime
    next_check_at: datetime
    status: int | None
    outcome: str  # ok | not_modified | failed
    validators: Validators | None = None
    error_class: str | None = None
    error: str | None = None
    warning: str | None = None
    cadence: float | None = None  # newly learned (None: keep the stored one)
    ttl: float | None = None  # from this fetch's body (ok outcomes only)


def sync_feeds(db: Database, feeds: Sequence[FeedSource]) -> dict[str, FeedState]:
    """Insert feeds new to feeds.yaml and follow URL changes (validators reset on a new URL)."""
    table = _FEEDS
    columns = (table.c.id, table.c.name, table.c.url, table.c.etag, table.c.last_modified,
               table.c.consecutive_errors, table.c.cadence, table.c.ttl)
    with db.read() as session:
        named = sa_select(*columns).where(table.c.name.in_([feed.name for feed in feeds]))
        rows = {row.name: row for row in session.execute(named)}
    if any(feed.name not in rows or rows[feed.name].url != feed.url for feed in feeds):
        rows = _add_feeds(db, feeds, columns)
    states = {}
    for feed in feeds:
        row = rows[feed.name]
        states[feed.name] = FeedState(row.id, row.name, Validators(row.etag, row.last_modified),
                                      row.consecutive_errors, row.cadence, row.ttl)
    return states


def _add_feeds(db: Database, feeds: Sequence[FeedSource], columns: tuple[Any, ...]) -> dict[str, Any]:
    """The write half of sync_feeds, only when feeds.yaml gained a feed or changed a URL."""
    table = _FEEDS
    with db.write() as session:
        rows = {row.name: row for row in session.execute(sa_select(*columns))}
        for feed in feeds:
            row = rows.get(feed.name)
            if row is None:  # another worker may add it at the same moment: then theirs stands
                session.execute(insert_ignoring_conflicts(session, table).values(name=feed.name, url=feed.url))
            elif row.url != feed.url:
                session.execute(update(table).where(table.c.id == row.id)
                                .values(url=feed.url, etag=None, last_modified=None))
        return {row.name: row for row in session.execute(sa_select(*columns))}


def known_entries(db: Database, feed_id: int, entries: Sequence[Entry]) -> Known:
    """What the store holds already for these entries: their keys and URLs in this feed, their articles."""
    with db.read() as session:
        keys, urls = _stored_keys(session, feed_id, entries)
        articles = _stored_articles(session, {e.canonical_url for e in entries if e.canonical_url})
    return Known(frozenset(keys), frozenset(u for u in urls if u), frozenset(articles))


def _stored_keys(session: Session, feed_id: int, entries: Iterable[Entry]) -> tuple[set[str], set[str | None]]:
    """The entry keys, and the canonical URLs, of ``entries`` that this feed has stored already."""
    entries = list(entries)
    keys = [e.key for e in entries]
    urls = [e.canonical_url for e in entries if e.canonical_url]
    found_keys = set(session.execute(_KEYS_IN_FEED, {"feed_id": feed_id, "keys": keys}).scalars())
    found_urls: set[str | None] = set()
    if urls:
        found_urls.update(session.execute(_URLS_IN_FEED, {"feed_id": feed_id, "urls": urls}).scalars())
    return found_keys, found_urls


def _success_values(outcome: FeedOutcome) -> dict[str, object]:
    """A fetch that stored entries: new validators, errors reset (304s and failures: record_outcomes)."""
    values: dict[str, object] = {
        "last_checked_at": outcome.checked_at, "last_success_at": outcome.checked_at,
        "next_check_at": outcome.next_check_at, "last_status": outcome.status, "last_outcome": outcome.outcome,
        "consecutive_errors": 0, "last_error_class": None, "last_error": None,
        "last_warning": (outcome.warning or "")[:1000] or None, "failing_since": None, "paused_at": None,
        "ttl": outcome.ttl, "lease_owner": None, "lease_until": None,
    }
    if outcome.cadence is not None:
        values["cadence"] = outcome.cadence
    if outcome.validators is not None:
        values.update(etag=outcome.validators.etag, last_modified=outcome.validators.last_modified)
    return values


def record_outcomes(db: Database, outcomes: Sequence[tuple[int, FeedOutcome]], pause_after: int = 0) -> None:
    """Polls that stored no entries (not modified, or failed): two bulk UPDATEs in one transaction. A feed
    whose failures in a row reach ``pause_after`` (0: never) is paused."""
    table = _FEEDS
    outcomes = sorted(outcomes, key=lambda item: item[0])  # rows locked in one order by every writer: no deadlock
    fine = [
        {"fid": feed_id, "checked": o.checked_at, "next": o.next_check_at, "status": o.status, "outcome": o.outcome}
        for feed_id, o in outcomes if o.outcome != "failed"
    ]
    failed = [
        {"fid": feed_id, "checked": o.checked_at, "next": o.next_check_at, "status": o.status,
         "eclass": o.error_class, "error": (o.error or "")[:2000]}
        for feed_id, o in outcomes if o.outcome == "failed"
    ]
    with db.write() as session:
        if fine:
            session.execute(
                update(table).where(table.c.id == bindparam("fid")).values(
                    last_checked_at=bindparam("checked"), last_success_at=bindparam("checked"),
                    next_check_at=bindparam("next"), last_status=bindparam("status"),
                    last_outcome=bindparam("outcome"), consecutive_errors=0, last_error=None, last_error_class=None,
                    failing_since=None, paused_at=None, lease_owner=None, lease_until=None,
                ),
                fine,
            )
        if failed:
            session.execute(
                update(table).where(table.c.id == bindparam("fid")).values(
                    last_checked_at=bindparam("checked"), next_check_at=bindparam("next"),
                    last_status=bindparam("status"), last_outcome="failed",
                    consecutive_errors=table.c.consecutive_errors + 1,
                    last_error_class=bindparam("eclass"), last_error=bindparam("error"),
                    failing_since=func.coalesce(table.c.failing_since, bindparam("checked")),
                    paused_at=_paused(pause_after), lease_owner=None, lease_until=None,
                ),
                failed,
            )


def _paused(pause_after: int) -> Any:
    """paused_at after one more failure: set (once) when the failures in a row reach ``pause_after``."""
    table = _FEEDS
    if pause_after <= 0:
        return table.c.paused_at
    return case((table.c.consecutive_errors + 1 >= pause_after,
                 func.coalesce(table.c.paused_at, bindparam("checked"))), else_=table.c.paused_at)


def store_entries(
    db: Database, feed_id: int, feed_name: str, processed: Iterable[ProcessedEntry], outcome: FeedOutcome,
    guid_churn: int = 0, plan: Plan | None = None,
) -> tuple[int, int]:
    """Store a feed's new entries, their articles, matches and outbox rows (``plan``: the deliveries of an
    article's matches), and its fetch state — atomically: an alert is queued if and only if its match is
    stored.

    Returns (new entries, new matches). Entries already stored (same key, or same URL under a
    changed GUID) are skipped; an article already stored is linked, never stored twice. A handful
    of set-based statements per feed, whatever the number of entries.
    """
    items = list(processed)
    with db.write() as session:
        fresh = _unseen(session, feed_id, items)
        keys = {id(item): article_key(item.entry.canonical_url, feed_name, item.entry.key) for item in fresh}
        article_ids = _stored_articles(session, set(keys.values()))
        created = _insert_articles(session, [(keys[id(i)], i) for i in fresh if keys[id(i)] not in article_ids],
                                   outcome.checked_at)
        article_ids.update(created)
        # an article another worker stored meanwhile (PostgreSQL): linked, its matches are that worker's
        article_ids.update(_stored_articles(session, {k for k in keys.values() if k not in article_ids}))
        if fresh:
            session.execute(insert(_ENTRIES), [
                {"feed_id": feed_id, "article_id": article_ids[keys[id(i)]], "entry_key": i.entry.key,
                 "key_kind": i.entry.key_kind, "url_key": i.entry.canonical_url, "guid": i.entry.guid,
                 "title": i.entry.title, "published_at": i.entry.published, "first_seen_at": outcome.checked_at}
                for i in fresh
            ])
        matches = [
            {"article_id": created[keys[id(i)]], "rule_id": m.rule_id, "rule_title": m.rule_title,
             "severity": m.severity, "explanation": json.dumps(m.explanation.as_dict(), ensure_ascii=False),
             "matched_at": outcome.checked_at}
            for i in _first_per_key(fresh, keys) if keys[id(i)] in created and i.article is not None
            for m in i.matches
        ]
        if matches:
            session.execute(insert(MatchRow.__table__), matches)  # type: ignore[attr-defined]
        if plan is not None:
            queue_deliveries(session, [
                (created[keys[id(i)]], i.matches) for i in _first_per_key(fresh, keys)
                if keys[id(i)] in created and i.article is not None and i.matches], plan, outcome.checked_at)
        news = {"last_new_entry_at": outcome.checked_at} if fresh else {}
        session.execute(update(_FEEDS).where(_FEEDS.c.id == feed_id).values(
            **_success_values(outcome), **news, entries_seen=_FEEDS.c.entries_seen + len(fresh),
            guid_churn=_FEEDS.c.guid_churn + guid_churn))
    return len(fresh), len(matches)


def _unseen(session: Session, feed_id: int, items: list[ProcessedEntry]) -> list[ProcessedEntry]:
    """Items whose key (or, under a changed GUID, URL) this feed has not stored yet; first of duplicates."""
    seen_keys, seen_urls = _stored_keys(session, feed_id, (i.entry for i in items))
    fresh = []
    for item in items:
        key, url = item.entry.key, item.entry.canonical_url
        if key in seen_keys or (url and url in seen_urls):
            continue
        seen_keys.add(key)
        if url:
            seen_urls.add(url)
        fresh.append(item)
    return fresh


def _stored_articles(session: Session, keys: set[str]) -> dict[str, int]:
    if not keys:
        return {}
    found = session.execute(_ARTICLES_BY_KEY, {"keys": list(keys)})
    return {key: article_id for key, article_id in found if article_id is not None}


def _first_per_key(items: list[ProcessedEntry], keys: dict[int, str]) -> list[ProcessedEntry]:
    firsts: dict[str, ProcessedEntry] = {}
    for item in items:
        firsts.setdefault(keys[id(item)], item)
    return list(firsts.values())


def _article_row(key: str, item: ProcessedEntry, now: datetime) -> dict[str, object]:
    entry, article = item.entry, item.article
    row: dict[str, object] = {"key": key, "published_at": entry.published, "created_at": now}
    if article is None:  # expected stored through another feed but gone: keep the entry's own text
        row.update(url=entry.url, title=entry.title, summary=entry.summary, text="", text_source="summary",
                   extract_error=None, lang=entry.lang)
    else:
        row.update(url=article.url, title=article.title, summary=article.summary, text=article.text,
                   text_source=article.text_source, extract_error=article.extract_error, lang=article.lang)
    return row


def _insert_articles(session: Session, pending: list[tuple[str, ProcessedEntry]], now: datetime) -> dict[str, int]:
    """Insert one article per key (the first entry's), returning key → id."""
    rows: dict[str, dict[str, object]] = {}
    for key, item in pending:
        rows.setdefault(key, _article_row(key, item, now))
    if not rows:
        return {}
    table = _ARTICLES
    statement = insert_ignoring_conflicts(session, table).returning(table.c.key, table.c.id)
    return {key: article_id for key, article_id in session.execute(statement, list(rows.values()))}


def _whole(text: str) -> str:
    """A pattern for a hit's text that marks it where it is a whole word (so that the hit "on" is not marked
    inside "actions"); CJK text has no word boundaries and is marked wherever it occurs."""
    pattern = re.escape(text)
    if text[:1].isascii() and text[:1].isalnum():
        pattern = r"(?<![A-Za-z0-9])" + pattern
    if text[-1:].isascii() and text[-1:].isalnum():
        pattern += r"(?![A-Za-z0-9])"
    return pattern


@dataclass(frozen=True)
class MatchView:
    id: int
    rule: str
    rule_title: str
    severity: str
    title: str
    url: str | None
    feed: str
    feeds: tuple[str, ...]
    lang: str | None
    published: datetime | None
    matched_at: datetime
    text_source: str
    explanation: dict[str, object]
    article_id: int = 0

    def snippet_pieces(self) -> list[tuple[str, bool]]:
        """The explanation's snippet as (text, is a matched term) pieces, for renderers that mark the terms
        (the longest term wins where two start at the same place)."""
        snippet = str(self.explanation.get("snippet", ""))
        hits = self.explanation.get("hits")
        texts = sorted({str(h["text"]) for h in hits if isinstance(h, dict) and h.get("text")}
                       if isinstance(hits, list) else set(), key=len, reverse=True)
        if not texts:
            return [(snippet, False)] if snippet else []
        parts = re.split("(" + "|".join(map(_whole, texts)) + ")", snippet)
        return [(part, index % 2 == 1) for index, part in enumerate(parts) if part]

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "rule": self.rule, "rule_title": self.rule_title, "severity": self.severity,
            "title": self.title, "url": self.url, "feed": self.feed, "feeds": list(self.feeds),
            "lang": self.lang, "published": self.published.isoformat() if self.published else None,
            "matched_at": self.matched_at.isoformat(), "text_source": self.text_source,
            "explanation": self.explanation,
        }


def list_matches(db: Database, rule: str | None = None, since: datetime | None = None,
                 limit: int = 50, article_ids: Sequence[int] | None = None,
                 match_ids: Sequence[int] | None = None) -> list[MatchView]:
    """Newest first."""
    query = select(MatchRow, ArticleRow).join(ArticleRow, col(ArticleRow.id) == MatchRow.article_id)
    if match_ids is not None:
        query = query.where(col(MatchRow.id).in_(list(match_ids)))
    if rule:
        query = query.where(MatchRow.rule_id == rule)
    if article_ids is not None:
        query = query.where(col(MatchRow.article_id).in_(list(article_ids)))
    if since:
        query = query.where(MatchRow.matched_at >= since)
    query = query.order_by(col(MatchRow.matched_at).desc(), col(MatchRow.id).desc()).limit(limit)
    with db.read() as session:
        rows = session.exec(query).all()
        found = {a.id for _, a in rows}
        sources = session.exec(
            select(EntryRow.article_id, FeedRow.name)
            .join(FeedRow, col(FeedRow.id) == EntryRow.feed_id)
            .where(col(EntryRow.article_id).in_(found))
            .order_by(col(EntryRow.id))
        ).all() if found else []
    feeds: dict[int, list[str]] = {}
    for article_id, name in sources:
        names = feeds.setdefault(article_id, [])
        if name not in names:
            names.append(name)
    return [
        MatchView(
            id=m.id or 0, rule=m.rule_id, rule_title=m.rule_title, severity=m.severity, title=a.title,
            url=a.url, feed=(feeds.get(a.id or 0) or ["?"])[0], feeds=tuple(feeds.get(a.id or 0, [])),
            lang=a.lang, published=a.published_at, matched_at=m.matched_at, text_source=a.text_source,
            explanation=json.loads(m.explanation), article_id=a.id or 0,
        )
        for m, a in rows
    ]


def matches_by_id(db: Database, ids: Sequence[int]) -> list[MatchView]:
    """These matches, in the order given."""
    if not ids:
        return []
    found = {m.id: m for m in list_matches(db, limit=len(ids), match_ids=ids)}
    return [found[i] for i in ids if i in found]


def claimed_matches(db: Database, claim: Claim) -> list[MatchView]:
    """The matches a claimed outbox row announces (its article's matches of the rules routed there),
    oldest first."""
    return [m for m in reversed(list_matches(db, article_ids=[claim.article_id], limit=200)) if m.rule in claim.rules]


def list_feed_rows(db: Database) -> list[FeedRow]:
    with db.read() as session:
        return list(session.exec(select(FeedRow).order_by(col(FeedRow.name))))


def count_rows(db: Database) -> dict[str, int]:
    """Row counts per table (used by tests and `monitor feeds` totals)."""
    with db.read() as session:
        return {
            name: session.exec(select(func.count()).select_from(table)).one()
            for name, table in (("feeds", FeedRow), ("entries", EntryRow), ("articles", ArticleRow),
                                ("matches", MatchRow))
        }
