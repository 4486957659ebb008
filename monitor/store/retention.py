"""Housekeeping: entries and articles older than the retention period are deleted, unless they matched a rule
(matches, their articles and entries, and their deliveries are kept for good); sent notices go too.

Deleting an unmatched entry is safe for dedupe: if its feed still lists it, it is stored again and matched
again — it did not match before, so it alerts only if the rules changed meanwhile. Work is done in small
batches, each its own short write transaction, so the poller and the API never wait long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, Table, delete, exists, select

from monitor.store.db import Database
from monitor.store.tables import ArticleRow, DeliveryRow, EntryRow, FeedNoticeRow, MatchRow

BATCH = 2000
_ENTRIES = EntryRow.__table__  # type: ignore[attr-defined]
_ARTICLES = ArticleRow.__table__  # type: ignore[attr-defined]
_MATCHES = MatchRow.__table__  # type: ignore[attr-defined]
_DELIVERIES = DeliveryRow.__table__  # type: ignore[attr-defined]
_NOTICES = FeedNoticeRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Pruned:
    entries: int = 0
    articles: int = 0
    notices: int = 0


def prune(db: Database, cutoff: datetime, batch: int = BATCH) -> Pruned:
    """Delete what is older than ``cutoff`` and never matched; returns how many rows of each went."""
    unmatched = ~exists().where(_MATCHES.c.article_id == _ENTRIES.c.article_id)
    entries = _in_batches(db, _ENTRIES, select(_ENTRIES.c.id).where(_ENTRIES.c.first_seen_at < cutoff, unmatched),
                          batch)
    orphan = select(_ARTICLES.c.id).where(
        _ARTICLES.c.created_at < cutoff,
        ~exists().where(_MATCHES.c.article_id == _ARTICLES.c.id),
        ~exists().where(_ENTRIES.c.article_id == _ARTICLES.c.id),
        ~exists().where(_DELIVERIES.c.article_id == _ARTICLES.c.id),
    )
    articles = _in_batches(db, _ARTICLES, orphan, batch)
    notices = _in_batches(db, _NOTICES, select(_NOTICES.c.id).where(
        _NOTICES.c.created_at < cutoff, _NOTICES.c.status.in_(("sent", "dead"))), batch)
    return Pruned(entries, articles, notices)


def _in_batches(db: Database, table: Table, ids: Select[Any], batch: int) -> int:
    """DELETE the rows ``ids`` selects, ``batch`` at a time (each batch one transaction)."""
    total = 0
    while True:
        with db.write() as session:
            chosen = list(session.execute(ids.limit(batch)).scalars())
            if chosen:
                session.execute(delete(table).where(table.c.id.in_(chosen)))
        total += len(chosen)
        if len(chosen) < batch:
            return total
