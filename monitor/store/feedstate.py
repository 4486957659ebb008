"""Feed scheduling state: which feeds wait or are paused, resuming a paused one, health as operators see it."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import or_, true, update
from sqlalchemy import select as sa_select

from monitor.errors import ConfigError
from monitor.store.db import Database, lease_end
from monitor.store.tables import FeedRow

_FEEDS = FeedRow.__table__  # type: ignore[attr-defined]


def paused_feeds(db: Database) -> set[str]:
    """Names of the paused feeds (not polled until `monitor feeds resume NAME`)."""
    table = _FEEDS
    with db.read() as session:
        return set(session.execute(sa_select(table.c.name).where(table.c.paused_at.is_not(None))).scalars())


def claim_feeds(db: Database, names: Collection[str], owner: str, now: datetime, lease: timedelta,
                limit: int, due_only: bool = True) -> list[str]:
    """Lease up to ``limit`` of the feeds ``names`` that are due (not paused, next check come, no live lease)
    to ``owner`` until ``now + lease``, the most overdue first. On PostgreSQL the rows are locked with
    SKIP LOCKED, so workers claiming at the same moment get different feeds; storing a poll's outcome
    ends the lease, and a worker that dies leaves its feeds to be claimed again when the lease runs out.
    ``due_only=False`` (`monitor poll --once`): every feed not paused and not leased, due or not."""
    table = _FEEDS
    due = or_(table.c.next_check_at.is_(None), table.c.next_check_at <= now) if due_only else true()
    query = (sa_select(table.c.id, table.c.name)
             .where(table.c.name.in_(list(names)), table.c.paused_at.is_(None), due,
                    or_(table.c.lease_until.is_(None), table.c.lease_until <= now))
             .order_by(table.c.next_check_at.asc().nulls_first(), table.c.id)
             .limit(limit)
             .with_for_update(skip_locked=True))
    with db.write() as session:
        rows = session.execute(query).all()
        if rows:
            session.execute(update(table).where(table.c.id.in_([row.id for row in rows]))
                            .values(lease_owner=owner, lease_until=lease_end(now, lease)))
    return [row.name for row in rows]


def release_feeds(db: Database, names: Collection[str], owner: str) -> None:
    """End ``owner``'s leases on ``names`` (claimed, then left unpolled): any worker may take them now."""
    if not names:
        return
    table = _FEEDS
    with db.write() as session:
        session.execute(update(table).where(table.c.name.in_(list(names)), table.c.lease_owner == owner)
                        .values(lease_owner=None, lease_until=None))


def release_all_leases(db: Database) -> int:
    """End every feed lease (SQLite at `monitor run` start: one process uses the file, so any lease is left
    by a process that is gone — its feeds are polled at once instead of after MONITOR_FEED_LEASE)."""
    table = _FEEDS
    with db.write() as session:
        result = session.execute(update(table).where(table.c.lease_until.is_not(None))
                                 .values(lease_owner=None, lease_until=None))
    return int(result.rowcount)  # type: ignore[attr-defined]


def resume_feed(db: Database, name: str, now: datetime) -> bool:
    """Un-pause ``name`` and make it due now; its failure count restarts (a recovery notice waits for a
    successful poll). False when it was not paused; ConfigError when no feed has that name."""
    table = _FEEDS
    with db.write() as session:
        paused = session.execute(sa_select(table.c.paused_at).where(table.c.name == name)).first()
        if paused is None:
            raise ConfigError(f"no feed named {name!r} has been polled (see `monitor feeds`)")
        session.execute(update(table).where(table.c.name == name).values(
            paused_at=None, consecutive_errors=0, next_check_at=now))
        return paused[0] is not None


def feed_health(row: FeedRow) -> dict[str, object]:
    """A feed's state as shown by `monitor feeds` and /api/feeds: health is ok, warning, failing, paused,
    silent or never polled."""
    if row.last_outcome is None:
        health = "never polled"
    elif row.paused_at is not None:
        health = "paused"
    elif row.consecutive_errors:
        health = "failing"
    elif row.health == "silent":
        health = "silent"
    else:
        health = "warning" if row.last_warning else "ok"
    reason = f"{row.last_error_class}: {row.last_error}" if row.last_error else row.last_warning
    return {
        "name": row.name, "url": row.url, "health": health, "last_outcome": row.last_outcome,
        "last_status": row.last_status, "consecutive_errors": row.consecutive_errors,
        "entries_seen": row.entries_seen, "guid_churn": row.guid_churn, "last_checked_at": row.last_checked_at,
        "last_success_at": row.last_success_at, "next_check_at": row.next_check_at, "reason": reason,
        "etag": row.etag, "last_modified": row.last_modified, "paused_at": row.paused_at,
        "failing_since": row.failing_since, "cadence": row.cadence, "last_new_entry_at": row.last_new_entry_at,
    }
