"""Rule-health notices in SQL: a rule that has been matching at a learned cadence and then matches nothing for too
long is marked silent and its notice queued in one transaction; its next match brings one recovery notice. The
notices are feed_notices rows with ``rule_id`` set, claimed, sent and retried by notices.py's verbs.

    None     ──no match for factor × cadence (and at least the floor)──→ "silent"  (notice: silent)
    "silent" ──a match newer than its newest one when it fell silent───→ None      (notice: recovered)

The cadence is learned from the rule's newest matches, one LIMIT query per rule on (rule_id, matched_at), never
a scan of its history: the median gap between their distinct ``matched_at`` times (a poll's matches share one
time), once there are LEARN_AFTER of them. Until then the rule has no cadence and is never called silent.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy import insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session

from monitor.store.db import Database, insert_ignoring_conflicts
from monitor.store.notices import Notice
from monitor.store.tables import FeedNoticeRow, MatchRow, RuleHealthRow

_MATCHES = MatchRow.__table__  # type: ignore[attr-defined]
_HEALTH = RuleHealthRow.__table__  # type: ignore[attr-defined]
_NOTICES = FeedNoticeRow.__table__  # type: ignore[attr-defined]
RECENT = 20  # the newest distinct match times whose gaps make the cadence
LEARN_AFTER = 5  # distinct match times needed before the cadence counts as learned


@dataclass(frozen=True)
class RuleLimits:
    silent_factor: float  # no match for this many cadences …
    silent_min: timedelta  # … and at least this long → a silent notice


@dataclass(frozen=True)
class RuleState:
    """What the check saw of one rule (handed to ``describe``)."""

    rule_id: str
    health: str | None  # as stored: None | silent
    cadence: float | None  # learned seconds between two matches; None: not learned yet
    last_match_at: datetime | None  # its newest match
    changed_at: datetime | None = None  # when its health last changed (silent: since when)
    quiet_match_at: datetime | None = None  # its newest match when that change was made


Describe = Callable[[RuleState, str, datetime], str]  # (rule, kind, now) → the notice's text


def learn_rule_cadence(times: Sequence[datetime]) -> float | None:
    """Median gap in seconds between the newest RECENT + 1 distinct match ``times``; None with fewer than
    LEARN_AFTER of them."""
    distinct = sorted(set(times), reverse=True)[: RECENT + 1]
    if len(distinct) < LEARN_AFTER:
        return None
    return statistics.median((newer - older).total_seconds() for newer, older in pairwise(distinct))


def wanted_health(state: RuleState, now: datetime, limits: RuleLimits) -> str | None:
    """The health the rule is in at ``now``: silent or None (fine)."""
    if state.health == "silent":
        matched_again = state.last_match_at is not None and (
            state.quiet_match_at is None or state.last_match_at > state.quiet_match_at)
        return None if matched_again else "silent"
    if state.cadence is None or state.last_match_at is None:
        return None
    quiet = max(timedelta(seconds=state.cadence * limits.silent_factor), limits.silent_min)
    return "silent" if state.last_match_at <= now - quiet else None


def update_rule_health(db: Database, rules: Collection[str], now: datetime, limits: RuleLimits, destination: str,
                       describe: Describe) -> list[Notice]:
    """Move each of ``rules`` to the health it is in now and queue one notice per change (``describe`` writes
    its text). Returns the notices queued.

    A plain read finds the rules whose health changes; each change is then made in a transaction of its own
    that locks that rule's rule_health row (FOR UPDATE on PostgreSQL) and looks again, so two workers never
    both report one change."""
    with db.read() as session:
        stored = {row.rule_id: row for row in session.execute(
            sa_select(RuleHealthRow).where(_HEALTH.c.rule_id.in_(list(rules)))).scalars()}
        states = [_state(session, rule_id, stored.get(rule_id)) for rule_id in sorted(set(rules))]
    changing = [state.rule_id for state in states if wanted_health(state, now, limits) != state.health]
    return [notice for rule_id in changing
            if (notice := _apply_change(db, rule_id, now, limits, destination, describe)) is not None]


def _state(session: Session, rule_id: str, row: RuleHealthRow | None) -> RuleState:
    times = list(session.execute(
        sa_select(_MATCHES.c.matched_at).where(_MATCHES.c.rule_id == rule_id).distinct()
        .order_by(_MATCHES.c.matched_at.desc()).limit(RECENT + 1)).scalars())
    state = RuleState(rule_id, None, learn_rule_cadence(times), times[0] if times else None)
    if row is None:
        return state
    return replace(state, health=row.health, changed_at=row.changed_at, quiet_match_at=row.last_match_at)


def _apply_change(db: Database, rule_id: str, now: datetime, limits: RuleLimits, destination: str,
                  describe: Describe) -> Notice | None:
    with db.write() as session:
        session.execute(insert_ignoring_conflicts(session, _HEALTH).values(rule_id=rule_id))
        row = session.execute(sa_select(RuleHealthRow).where(_HEALTH.c.rule_id == rule_id)
                              .with_for_update()).scalar_one()
        state = _state(session, rule_id, row)  # again, under the lock: another worker may have made it
        wanted = wanted_health(state, now, limits)
        if wanted == state.health:
            return None
        kind = wanted or "recovered"
        message = describe(state, kind, now)
        notice_id = session.execute(insert(_NOTICES).returning(_NOTICES.c.id).values(
            rule_id=rule_id, kind=kind, message=message, destination=destination, status="pending", attempts=0,
            next_attempt_at=now, created_at=now)).scalar_one()
        session.execute(update(_HEALTH).where(_HEALTH.c.rule_id == rule_id).values(
            health=wanted, last_match_at=state.last_match_at, changed_at=now))
        return Notice(notice_id, None, kind, message, destination, 0, rule_id)


def rule_health(db: Database, rules: Collection[str]) -> dict[str, str | None]:
    """The stored health of ``rules`` (None: fine, or never checked)."""
    with db.read() as session:
        rows = session.execute(sa_select(_HEALTH.c.rule_id, _HEALTH.c.health).where(_HEALTH.c.rule_id.in_(list(rules))))
        found = {rule_id: health for rule_id, health in rows}
    return {rule_id: found.get(rule_id) for rule_id in rules}
