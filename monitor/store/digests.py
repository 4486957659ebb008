"""Digests in SQL: opened for a (destination, period), claimed by a sender, marked after the send.

Opening a digest freezes its content: the destination's pending ``digest`` outbox rows queued up to the end
of the period are pointed at it (deliveries.digest_id) in the transaction that creates it, so a retry or a
re-send after a crash sends the same articles, and a row is in at most one digest. A digest moves like an
alert row: pending → sending (leased) → sent, or back to pending (transient error), failed or dead; its
outbox rows follow it. A split digest records each part the provider accepted (parts_sent): after a crash
only the part that was being sent is sent again, flagged as a possible duplicate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from monitor.store.db import Database, lease_end
from monitor.store.outbox import LEASE
from monitor.store.tables import DeliveryRow, DigestRow

_DELIVERIES = DeliveryRow.__table__  # type: ignore[attr-defined]
_DIGESTS = DigestRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DigestClaim:
    id: int
    destination: str
    period_end: datetime
    kind: str
    alerts_only: bool
    attempts: int
    parts_sent: int
    possible_duplicate: bool


def _waiting(destination: str, until: datetime, alerts_only: bool = False) -> list[Any]:
    """The condition for a destination's pending rows that no digest has taken yet, queued up to ``until``
    (rows queued as alerts while the destination was immediate are collected too)."""
    conditions = [_DELIVERIES.c.destination == destination,
                  _DELIVERIES.c.status == "pending", _DELIVERIES.c.digest_id.is_(None),
                  _DELIVERIES.c.created_at <= until]
    if alerts_only:
        conditions.append(_DELIVERIES.c.alert.is_(True))
    return conditions


def open_digest(db: Database, destination: str, period_end: datetime, kind: str, alerts_only: bool,
                now: datetime) -> int | None:
    """Create the digest of ``destination`` for the period ending at ``period_end`` and give it the rows
    waiting for it. None when a digest for this period (or a later one) exists already, or nothing waits:
    running this twice opens one digest."""
    try:
        with db.write() as session:
            latest = session.exec(select(func.max(DigestRow.period_end))
                                  .where(DigestRow.destination == destination)).one()
            if latest is not None and latest >= period_end:
                return None
            waiting = session.exec(select(func.count()).select_from(_DELIVERIES)
                                   .where(*_waiting(destination, period_end, alerts_only))).one()
            if not waiting:
                return None
            row = DigestRow(destination=destination, period_end=period_end, kind=kind, alerts_only=alerts_only,
                            status="pending", next_attempt_at=now, created_at=now)
            session.add(row)
            session.flush()
            taken = session.execute(update(_DELIVERIES).where(*_waiting(destination, period_end, alerts_only))
                                    .values(digest_id=row.id))
            row.items = int(taken.rowcount)  # type: ignore[attr-defined]
            session.add(row)
            return row.id
    except IntegrityError:  # another process opened this period's digest between our read and our insert
        return None


def claim_digest(db: Database, destination: str, now: datetime, lease: timedelta = LEASE) -> DigestClaim | None:
    """Take the destination's next due digest: an interrupted one (lease over) first, as a possible
    duplicate, else the oldest pending one. The claim is committed before anything is sent."""
    with db.write() as session:
        row = session.exec(
            select(DigestRow)
            .where(DigestRow.destination == destination, col(DigestRow.status).in_(["pending", "sending"]),
                   DigestRow.next_attempt_at <= now)
            .order_by(col(DigestRow.status).desc(), col(DigestRow.id))
            .limit(1)
            .with_for_update(skip_locked=True)  # PostgreSQL: a digest another worker is claiming is skipped
        ).first()
        if row is None:
            return None
        row.possible_duplicate = row.possible_duplicate or row.status == "sending"
        row.status, row.attempts, row.next_attempt_at = "sending", row.attempts + 1, lease_end(now, lease)
        session.add(row)
        return DigestClaim(row.id or 0, row.destination, row.period_end, row.kind, row.alerts_only, row.attempts,
                           row.parts_sent, row.possible_duplicate)


def digest_items(db: Database, digest_id: int) -> list[tuple[int, tuple[str, ...]]]:
    """(article id, rules routed) of every outbox row in the digest, in queue order."""
    with db.read() as session:
        rows = session.execute(select(_DELIVERIES.c.article_id, _DELIVERIES.c.rules)
                               .where(_DELIVERIES.c.digest_id == digest_id).order_by(_DELIVERIES.c.id)).all()
    return [(article_id, tuple(json.loads(rules))) for article_id, rules in rows]


def waiting_items(db: Database, destination: str, until: datetime) -> list[tuple[int, tuple[str, ...]]]:
    """What a digest opened now would take (for a dry run), in queue order."""
    with db.read() as session:
        rows = session.execute(select(_DELIVERIES.c.article_id, _DELIVERIES.c.rules)
                               .where(*_waiting(destination, until)).order_by(_DELIVERIES.c.id)).all()
    return [(article_id, tuple(json.loads(rules))) for article_id, rules in rows]


def count_waiting(db: Database, destinations: list[str], until: datetime) -> int:
    """Digest rows of these destinations that no digest has taken yet."""
    total = 0
    with db.read() as session:
        for destination in destinations:
            total += session.exec(select(func.count()).select_from(_DELIVERIES)
                                  .where(*_waiting(destination, until))).one()
    return total


def mark_part_sent(db: Database, digest_id: int, parts_sent: int) -> None:
    with db.write() as session:
        session.execute(update(_DIGESTS).where(_DIGESTS.c.id == digest_id).values(parts_sent=parts_sent))


def finish_digest(db: Database, digest_id: int, status: str, now: datetime, error: str | None = None) -> None:
    """``sent`` (``error``: what went partly wrong), ``failed`` or ``dead``; its outbox rows follow."""
    note = error[:2000] if error else None
    sent_at = now if status == "sent" else None
    with db.write() as session:
        session.execute(update(_DIGESTS).where(_DIGESTS.c.id == digest_id)
                        .values(status=status, sent_at=sent_at, last_error=note))
        session.execute(update(_DELIVERIES).where(_DELIVERIES.c.digest_id == digest_id)
                        .values(status=status, sent_at=sent_at, last_error=note))


def retry_digest(db: Database, digest_id: int, error: str, at: datetime) -> None:
    with db.write() as session:
        session.execute(update(_DIGESTS).where(_DIGESTS.c.id == digest_id)
                        .values(status="pending", next_attempt_at=at, last_error=error[:2000]))


def list_digests(db: Database, status: str | None = None, limit: int = 50) -> list[DigestRow]:
    """Newest first."""
    query = select(DigestRow)
    if status:
        query = query.where(DigestRow.status == status)
    with db.read() as session:
        return list(session.exec(query.order_by(col(DigestRow.id).desc()).limit(limit)).all())
