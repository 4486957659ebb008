"""The delivery outbox in SQL: rows queued with their matches, claimed by a sender, marked after the send.

A row moves pending → sending (claimed, with a lease) → sent, or back to pending with a later attempt
time (transient error), or to failed (permanent error) / dead (attempts used up). A row still ``sending``
after its lease ran out was claimed by a sender that died: whether the provider got it is unknown, so it
is sent again, flagged ``possible_duplicate`` (the one ambiguous window; at most one duplicate).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import update
from sqlmodel import Session, col, select

from monitor.models import Match
from monitor.store.db import Database, insert_ignoring_conflicts, lease_end
from monitor.store.tables import DeliveryRow

_DELIVERIES = DeliveryRow.__table__  # type: ignore[attr-defined]
#: How long a claimed row is left to its sender before another sender may take it as interrupted
#: (MONITOR_DELIVERY_LEASE): longer than any send may take.
LEASE = timedelta(seconds=120)


class Planned(Protocol):
    """One planned outbox row (notify.routing.PlannedDelivery)."""

    @property
    def destination(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def rules(self) -> tuple[str, ...]: ...

    @property
    def alert(self) -> bool: ...


Plan = Callable[[Sequence[Match]], Iterable[Planned]]


@dataclass(frozen=True)
class Claim:
    id: int
    article_id: int
    destination: str
    kind: str
    rules: tuple[str, ...]
    attempts: int
    possible_duplicate: bool


def queue_deliveries(session: Session, articles: list[tuple[int, tuple[Match, ...]]], plan: Plan,
                     now: datetime) -> int:
    """Outbox rows for new articles' matches, inside the caller's transaction. A row that exists already
    (same article and destination) is left as it is: queuing twice never sends twice."""
    rows = [{"article_id": article_id, "destination": p.destination, "kind": p.kind,
             "rules": json.dumps(list(p.rules)), "status": "pending", "alert": p.alert, "attempts": 0,
             "next_attempt_at": now, "created_at": now, "possible_duplicate": False}
            for article_id, matches in articles for p in plan(matches)]
    if not rows:
        return 0
    session.execute(insert_ignoring_conflicts(session, _DELIVERIES), rows)
    return len(rows)


def claim_due(db: Database, destinations: Sequence[str], now: datetime, limit: int = 100,
              lease: timedelta = LEASE) -> list[Claim]:
    """Take due rows of these (immediate) destinations: interrupted ones (lease over) first, as possible
    duplicates, then pending ones in the order they were queued. Claimed rows are ``sending`` until
    marked; the claim is committed before anything is sent. A row queued for a digest while the
    destination was a digest destination is sent on its own now that it is immediate; a row a digest
    took is never claimed here."""
    if not destinations:
        return []
    with db.write() as session:
        rows = session.exec(
            select(DeliveryRow)
            .where(col(DeliveryRow.destination).in_(list(destinations)), col(DeliveryRow.digest_id).is_(None),
                   col(DeliveryRow.status).in_(["pending", "sending"]), DeliveryRow.next_attempt_at <= now)
            .order_by(col(DeliveryRow.status).desc(), col(DeliveryRow.id))
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL: rows another sender is claiming are skipped
        ).all()
        claims = []
        for row in rows:
            interrupted = row.status == "sending"
            row.possible_duplicate = row.possible_duplicate or interrupted
            row.status, row.attempts, row.next_attempt_at = "sending", row.attempts + 1, lease_end(now, lease)
            session.add(row)
            claims.append(Claim(row.id or 0, row.article_id, row.destination, row.kind,
                                tuple(json.loads(row.rules)), row.attempts, row.possible_duplicate))
    return claims


def mark_sent(db: Database, delivery_id: int, now: datetime, note: str | None = None) -> None:
    """Sent; ``note`` records what went partly wrong (recipients refused while others accepted)."""
    _set(db, delivery_id, status="sent", sent_at=now, last_error=note[:2000] if note else None)


def mark_retry(db: Database, delivery_id: int, error: str, at: datetime) -> None:
    _set(db, delivery_id, status="pending", next_attempt_at=at, last_error=error[:2000])


def hold_destination(db: Database, destination: str, until: datetime) -> None:
    """No pending alert row of ``destination`` is due before ``until`` (the provider asked to wait)."""
    with db.write() as session:
        session.execute(update(_DELIVERIES)
                        .where(_DELIVERIES.c.destination == destination, _DELIVERIES.c.status == "pending",
                               _DELIVERIES.c.digest_id.is_(None), _DELIVERIES.c.next_attempt_at < until)
                        .values(next_attempt_at=until))


def mark_given_up(db: Database, delivery_id: int, status: str, error: str) -> None:
    """``failed`` (a permanent error) or ``dead`` (transient errors until the attempts ran out)."""
    _set(db, delivery_id, status=status, last_error=error[:2000])


def _set(db: Database, delivery_id: int, **values: object) -> None:
    with db.write() as session:
        session.execute(update(_DELIVERIES).where(_DELIVERIES.c.id == delivery_id).values(**values))


def list_deliveries(db: Database, status: str | None = None, limit: int = 50) -> list[DeliveryRow]:
    """Newest first."""
    query = select(DeliveryRow)
    if status:
        query = query.where(DeliveryRow.status == status)
    with db.read() as session:
        return list(session.exec(query.order_by(col(DeliveryRow.id).desc()).limit(limit)).all())
