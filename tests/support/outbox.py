"""A database holding articles, their matches and their outbox rows, written directly (no poll): for the
digest tests that need many items, chosen severities and creation times."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, EntryRow, FeedRow, MatchRow


@dataclass
class Item:
    title: str
    url: str | None
    rules: list[tuple[str, str]]  # (rule id, severity)
    created_at: datetime
    snippet: str = "Trade ministers agreed new tariffs on steel."
    destinations: list[str] = field(default_factory=lambda: ["digest"])


def seed(path: Path | str, items: list[Item], kind: str = "digest") -> Database:
    """A migrated database — an SQLite file at ``path``, or a database URL — with one feed 'wire' and the
    items queued for their destinations as ``kind`` rows."""
    db = Database(path if isinstance(path, str) else f"sqlite:///{path}")
    db.migrate()
    with db.write() as session:
        feed = FeedRow(name="wire", url="http://127.0.0.1/feed.xml")
        session.add(feed)
        session.flush()
        for number, item in enumerate(items):
            article = ArticleRow(key=f"k{number}", url=item.url, title=item.title, text_source="summary",
                                 published_at=item.created_at, created_at=item.created_at)
            session.add(article)
            session.flush()
            assert feed.id is not None and article.id is not None
            session.add(EntryRow(feed_id=feed.id, article_id=article.id, entry_key=f"k{number}", key_kind="guid",
                                 title=item.title, first_seen_at=item.created_at))
            for rule, severity in item.rules:
                term = item.snippet.split()[3] if len(item.snippet.split()) > 3 else item.snippet
                explanation = {"snippet": item.snippet, "hits": [{"term": term, "text": term, "field": "text"}]}
                session.add(MatchRow(article_id=article.id, rule_id=rule, rule_title=rule.replace("-", " ").title(),
                                     severity=severity, explanation=json.dumps(explanation),
                                     matched_at=item.created_at))
            for destination in item.destinations:
                session.add(DeliveryRow(article_id=article.id, destination=destination, kind=kind,
                                        rules=json.dumps([r for r, _ in item.rules]), status="pending",
                                        alert=any(s == "alert" for _, s in item.rules),
                                        next_attempt_at=item.created_at, created_at=item.created_at))
    return db


def at(text: str) -> datetime:
    """An aware UTC datetime from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
