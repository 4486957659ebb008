"""Queries: every read and write the service makes. Write paths run in one IMMEDIATE transaction."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from monitor.models import Entry, FeedSource, ProcessedEntry, Validators
from monitor.pipeline.dedupe import article_key
from monitor.store.db import Database
from monitor.store.tables import ArticleRow, EntryRow, FeedRow, MatchRow


@dataclass(frozen=True)
class FeedState:
    id: int
    name: str
    validators: Validators
    consecutive_errors: int
    next_check_at: datetime | None


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


def _state(row: FeedRow) -> FeedState:
    assert row.id is not None
    return FeedState(row.id, row.name, Validators(row.etag, row.last_modified), row.consecutive_errors,
                     row.next_check_at)


def sync_feeds(db: Database, feeds: Sequence[FeedSource]) -> dict[str, FeedState]:
    """Insert feeds new to feeds.yaml and follow URL changes (validators reset on a new URL)."""
    with db.write() as session:
        rows = {row.name: row for row in session.exec(select(FeedRow))}
        for feed in feeds:
            row = rows.get(feed.name)
            if row is None:
                row = rows[feed.name] = FeedRow(name=feed.name, url=feed.url)
                session.add(row)
            elif row.url != feed.url:
                row.url, row.etag, row.last_modified = feed.url, None, None
        session.flush()
        return {feed.name: _state(rows[feed.name]) for feed in feeds}


def known_entries(db: Database, feed_id: int, entries: Sequence[Entry]) -> Known:
    keys = [e.key for e in entries]
    urls = [e.canonical_url for e in entries if e.canonical_url]
    articles = [e.canonical_url for e in entries if e.canonical_url]
    with db.read() as session:
        found_keys = session.exec(
            select(EntryRow.entry_key).where(EntryRow.feed_id == feed_id, col(EntryRow.entry_key).in_(keys))
        ).all()
        found_urls = session.exec(
            select(EntryRow.url_key).where(EntryRow.feed_id == feed_id, col(EntryRow.url_key).in_(urls))
        ).all() if urls else []
        found_articles = session.exec(
            select(ArticleRow.key).where(col(ArticleRow.key).in_(articles))
        ).all() if articles else []
    return Known(frozenset(found_keys), frozenset(u for u in found_urls if u), frozenset(found_articles))


def _apply_outcome(row: FeedRow, outcome: FeedOutcome) -> None:
    row.last_checked_at = outcome.checked_at
    row.next_check_at = outcome.next_check_at
    row.last_status = outcome.status
    row.last_outcome = outcome.outcome
    if outcome.outcome == "failed":
        row.consecutive_errors += 1
        row.last_error_class, row.last_error = outcome.error_class, (outcome.error or "")[:2000]
        return
    row.consecutive_errors = 0
    row.last_error_class = row.last_error = None
    row.last_success_at = outcome.checked_at
    if outcome.validators is not None:
        row.etag, row.last_modified = outcome.validators.etag, outcome.validators.last_modified
    if outcome.outcome == "ok":
        row.last_warning = (outcome.warning or "")[:1000] or None


def record_outcome(db: Database, feed_id: int, outcome: FeedOutcome) -> None:
    """A poll that stored no entries: not modified, or failed."""
    with db.write() as session:
        row = session.get(FeedRow, feed_id)
        if row is not None:
            _apply_outcome(row, outcome)


def store_entries(
    db: Database, feed_id: int, feed_name: str, processed: Iterable[ProcessedEntry], outcome: FeedOutcome,
    guid_churn: int = 0,
) -> tuple[int, int]:
    """Store a feed's new entries, their articles and matches, and its fetch state — atomically.

    Returns (new entries, new matches). Entries already stored (same key, or same URL under a
    changed GUID) are skipped; an article already stored is linked, never stored twice.
    """
    new_entries = new_matches = 0
    with db.write() as session:
        for item in processed:
            entry = item.entry
            if _entry_exists(session, feed_id, entry):
                continue
            article_id, created = _article_id(session, feed_name, item)
            session.add(EntryRow(
                feed_id=feed_id, article_id=article_id, entry_key=entry.key, key_kind=entry.key_kind,
                url_key=entry.canonical_url, guid=entry.guid, title=entry.title,
                published_at=entry.published, first_seen_at=outcome.checked_at,
            ))
            new_entries += 1
            if created and item.article is not None:
                for match in item.matches:
                    session.add(MatchRow(
                        article_id=article_id, rule_id=match.rule_id, rule_title=match.rule_title,
                        severity=match.severity,
                        explanation=json.dumps(match.explanation.as_dict(), ensure_ascii=False),
                        matched_at=outcome.checked_at,
                    ))
                    new_matches += 1
            session.flush()
        row = session.get(FeedRow, feed_id)
        if row is not None:
            _apply_outcome(row, outcome)
            row.entries_seen += new_entries
            row.guid_churn += guid_churn
    return new_entries, new_matches


def _entry_exists(session: Session, feed_id: int, entry: Entry) -> bool:
    query = select(EntryRow.id).where(EntryRow.feed_id == feed_id, EntryRow.entry_key == entry.key)
    if session.exec(query).first() is not None:
        return True
    if entry.canonical_url:
        by_url = select(EntryRow.id).where(EntryRow.feed_id == feed_id, EntryRow.url_key == entry.canonical_url)
        return session.exec(by_url).first() is not None
    return False


def _article_id(session: Session, feed_name: str, item: ProcessedEntry) -> tuple[int, bool]:
    entry, article = item.entry, item.article
    key = article_key(entry.canonical_url, feed_name, entry.key)
    created_at = datetime.now(UTC)
    existing = session.exec(select(ArticleRow.id).where(ArticleRow.key == key)).first()
    if existing is not None:
        return existing, False
    if article is None:  # the caller expected a stored article that is gone: store the entry's own data
        row = ArticleRow(key=key, url=entry.url, title=entry.title, summary=entry.summary, text="",
                         text_source="summary", lang=entry.lang, published_at=entry.published,
                         created_at=created_at)
    else:
        row = ArticleRow(key=key, url=article.url, title=article.title, summary=article.summary,
                         text=article.text, text_source=article.text_source, extract_error=article.extract_error,
                         lang=article.lang, published_at=entry.published, created_at=created_at)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id, True


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

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id, "rule": self.rule, "rule_title": self.rule_title, "severity": self.severity,
            "title": self.title, "url": self.url, "feed": self.feed, "feeds": list(self.feeds),
            "lang": self.lang, "published": self.published.isoformat() if self.published else None,
            "matched_at": self.matched_at.isoformat(), "text_source": self.text_source,
            "explanation": self.explanation,
        }


def list_matches(db: Database, rule: str | None = None, since: datetime | None = None,
                 limit: int = 50) -> list[MatchView]:
    """Newest first."""
    query = select(MatchRow, ArticleRow).join(ArticleRow, col(ArticleRow.id) == MatchRow.article_id)
    if rule:
        query = query.where(MatchRow.rule_id == rule)
    if since:
        query = query.where(MatchRow.matched_at >= since)
    query = query.order_by(col(MatchRow.matched_at).desc(), col(MatchRow.id).desc()).limit(limit)
    with db.read() as session:
        rows = session.exec(query).all()
        article_ids = {a.id for _, a in rows}
        sources = session.exec(
            select(EntryRow.article_id, FeedRow.name)
            .join(FeedRow, col(FeedRow.id) == EntryRow.feed_id)
            .where(col(EntryRow.article_id).in_(article_ids))
            .order_by(col(EntryRow.id))
        ).all() if article_ids else []
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
            explanation=json.loads(m.explanation),
        )
        for m, a in rows
    ]


def feed_health(row: FeedRow) -> dict[str, object]:
    """A feed's state as shown by `monitor feeds`: health is ok, warning, failing or never polled."""
    if row.last_outcome is None:
        health = "never polled"
    elif row.consecutive_errors:
        health = "failing"
    else:
        health = "warning" if row.last_warning else "ok"
    reason = f"{row.last_error_class}: {row.last_error}" if row.last_error else row.last_warning
    return {
        "name": row.name, "url": row.url, "health": health, "last_outcome": row.last_outcome,
        "last_status": row.last_status, "consecutive_errors": row.consecutive_errors,
        "entries_seen": row.entries_seen, "guid_churn": row.guid_churn, "last_checked_at": row.last_checked_at,
        "last_success_at": row.last_success_at, "next_check_at": row.next_check_at, "reason": reason,
        "etag": row.etag, "last_modified": row.last_modified,
    }


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
