"""Feed-health notices in SQL: a feed's health changes and its notice is queued in one transaction, then
sent like an outbox row (pending → sending, with a lease → sent; retried with backoff; dead at the end).

    health None ──failing for longer than the threshold, or paused──→ "failing"   (notice: failing)
    health None ──no new entry for factor × cadence (and the floor)──→ "silent"    (notice: silent)
    "silent"    ──starts failing as above──────────────────────────→ "failing"   (notice: failing)
    "failing"/"silent" ──a successful poll (failing) / a new entry (silent)──→ None (notice: recovered)

One notice per change, whatever the number of polls: the change is what is stored. Rules that fall silent
queue their notices in the same table (rule_health.py); ``claim_notice``/``mark_notice`` send both kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, update
from sqlalchemy import select as sa_select

from monitor.store.db import Database, lease_end
from monitor.store.tables import FeedNoticeRow, FeedRow

_FEEDS = FeedRow.__table__  # type: ignore[attr-defined]
_NOTICES = FeedNoticeRow.__table__  # type: ignore[attr-defined]
Describe = Callable[[FeedRow, str, datetime], str]  # (feed, kind, now) → the notice's text


@dataclass(frozen=True)
class Thresholds:
    failing_after: timedelta  # failing for this long → a failing notice (a paused feed: at once)
    silent_factor: float  # no new entry for this many cadences …
    silent_min: timedelta  # … and at least this long → a silent notice


@dataclass(frozen=True)
class Notice:
    id: int
    feed_name: str | None  # None: a rule's notice (rule_health.py)
    kind: str
    message: str
    destination: str
    attempts: int
    rule_id: str | None = None


def _wanted(row: FeedRow, now: datetime, limits: Thresholds) -> str | None:
    """The health the feed is in at ``now``: failing, silent or None (fine)."""
    if row.paused_at is not None or (row.failing_since is not None
                                     and row.failing_since <= now - limits.failing_after):
        return "failing"
    if row.failing_since is not None:
        return row.health if row.health == "failing" else None  # failing, not for long enough yet
    if row.cadence and row.last_new_entry_at is not None:
        quiet = max(timedelta(seconds=row.cadence * limits.silent_factor), limits.silent_min)
        if row.last_new_entry_at <= now - quiet:
            return "silent"
    return None


def update_health(db: Database, feeds: Collection[str], now: datetime, limits: Thresholds, destination: str,
                  describe: Describe) -> list[Notice]:
    """Move each of ``feeds`` to the health it is in now and queue one notice per change (``describe``
    writes its text). Returns the notices queued.

    A plain read finds the feeds whose health changes; each change is then made in a transaction of its
    own that locks only that feed's row (FOR UPDATE on PostgreSQL) and looks again, so two workers never
    both report one change, and the job never holds every feed's row while pollers write to them."""
    with db.read() as session:
        rows = session.execute(sa_select(FeedRow).where(FeedRow.name.in_(list(feeds)))  # type: ignore[attr-defined]
                               .order_by(_FEEDS.c.id)).scalars().all()
    changing = [row.id for row in rows if _change(row, now, limits) is not None]
    return [notice for feed_id in changing
            if (notice := _apply_change(db, feed_id, now, limits, destination, describe)) is not None]


def _change(row: FeedRow, now: datetime, limits: Thresholds) -> tuple[str | None, str] | None:
    """(new health, notice kind) when the feed's health changes, else None."""
    wanted = _wanted(row, now, limits)
    if row.health == "failing" and wanted == "silent":
        wanted = None  # it works again: recovered now; quiet, it is told apart at the next look
    if wanted == row.health:
        return None
    return wanted, wanted or "recovered"


def _apply_change(db: Database, feed_id: int | None, now: datetime, limits: Thresholds, destination: str,
                  describe: Describe) -> Notice | None:
    with db.write() as session:
        row = session.execute(sa_select(FeedRow).where(_FEEDS.c.id == feed_id).with_for_update()).scalar_one()
        change = _change(row, now, limits)  # again, under the lock: another worker may have made it
        if change is None:
            return None
        wanted, kind = change
        message = describe(row, kind, now)
        notice_id = session.execute(insert(_NOTICES).returning(_NOTICES.c.id).values(
            feed_id=row.id, feed_name=row.name, kind=kind, message=message, destination=destination,
            status="pending", attempts=0, next_attempt_at=now, created_at=now)).scalar_one()
        session.execute(update(_FEEDS).where(_FEEDS.c.id == row.id).values(health=wanted))
        return Notice(notice_id, row.name, kind, message, destination, 0)


def claim_notice(db: Database, now: datetime, lease: timedelta) -> Notice | None:
    """The oldest due notice (pending, or sending with its lease run out: its sender died), leased."""
    table = _NOTICES
    with db.write() as session:
        row = session.execute(sa_select(table).where(
            or_(table.c.status == "pending", table.c.status == "sending"), table.c.next_attempt_at <= now,
        ).order_by(table.c.id).limit(1).with_for_update(skip_locked=True)).first()
        if row is None:
            return None
        session.execute(update(table).where(table.c.id == row.id).values(
            status="sending", attempts=table.c.attempts + 1, next_attempt_at=lease_end(now, lease)))
    return Notice(row.id, row.feed_name, row.kind, row.message, row.destination, row.attempts + 1, row.rule_id)


def mark_notice(db: Database, notice_id: int, status: str, when: datetime, error: str | None = None) -> None:
    """sent (``when``: sent at), pending again (``when``: next attempt), or dead."""
    values: dict[str, object] = {"status": status, "last_error": error}
    if status == "sent":
        values["sent_at"] = when
    elif status == "pending":
        values["next_attempt_at"] = when
    with db.write() as session:
        session.execute(update(_NOTICES).where(_NOTICES.c.id == notice_id).values(**values))


def list_notices(db: Database, limit: int = 50) -> list[FeedNoticeRow]:
    """The newest notices first."""
    with db.read() as session:
        return list(session.execute(sa_select(FeedNoticeRow).order_by(FeedNoticeRow.id.desc())  # type: ignore[union-attr]
                                    .limit(limit)).scalars())
