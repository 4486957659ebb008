"""The sender: claims due outbox rows, hands each to its destination's notifier, marks the outcome.

Transient errors (RetryLater, OSError) are retried with exponential backoff and jitter, up to
MAX_ATTEMPTS, then the row is ``dead``; any other MonitorError is permanent and the row ``failed`` after
one attempt. A row is marked ``sent`` only after its notifier returned.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from monitor.errors import MonitorError, RetryLater
from monitor.notify.destinations import Destinations
from monitor.notify.email import PartlyRefused
from monitor.store.db import Database
from monitor.store.outbox import LEASE, Claim, claim_due, mark_given_up, mark_retry, mark_sent

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=2)


class Notifier(Protocol):
    def send(self, claim: Claim) -> None: ...


@dataclass
class DeliverySummary:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential in the attempts made, with full jitter over the upper half, capped at MAX_BACKOFF."""
    ceiling = min(BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)
    return ceiling * (0.5 + 0.5 * (rng or random).random())


def deliver_due(db: Database, destinations: Destinations, notifiers: Mapping[str, Notifier],
                now: datetime | None = None, limit: int = 100, lease: timedelta = LEASE,
                only: str | None = None) -> DeliverySummary:
    """Send the due ``alert`` rows of immediate destinations whose kind has a notifier (by kind name);
    ``only``: of that one destination."""
    now = now or datetime.now(UTC)
    kinds = {d.name: d.kind for d in destinations.items
             if d.mode == "immediate" and d.kind in notifiers and only in (None, d.name)}
    summary = DeliverySummary()
    for _ in range(limit):
        # One row claimed at a time, right before its send: a sender that dies leaves at most that one row
        # in the ambiguous window; the rows it had not reached are still plainly pending.
        claimed = claim_due(db, list(kinds), now, 1, lease)
        if not claimed:
            break
        claim = claimed[0]
        try:
            notifiers[kinds[claim.destination]].send(claim)
        except PartlyRefused as exc:  # sent to the others: never again; the refusals stay on the row
            mark_sent(db, claim.id, datetime.now(UTC), str(exc))
            summary.sent += 1
            summary.errors.append(f"{claim.destination}: {exc}")
            log.warning("event=delivery_partly_refused destination=%s delivery=%d %s", claim.destination,
                        claim.id, exc)
        except (RetryLater, OSError) as exc:
            _transient(db, claim, exc, summary, max(now, datetime.now(UTC)))
        except MonitorError as exc:
            mark_given_up(db, claim.id, "failed", str(exc))
            summary.failed += 1
            summary.errors.append(f"{claim.destination}: {exc}")
            log.warning("event=delivery_failed destination=%s delivery=%d error=%s", claim.destination, claim.id,
                        exc)
        else:
            mark_sent(db, claim.id, datetime.now(UTC))
            summary.sent += 1
    return summary


def _transient(db: Database, claim: Claim, exc: Exception, summary: DeliverySummary, now: datetime) -> None:
    message = f"{type(exc).__name__}: {exc}"
    summary.errors.append(f"{claim.destination}: {message}")
    if claim.attempts >= MAX_ATTEMPTS:
        mark_given_up(db, claim.id, "dead", message)
        summary.dead += 1
        log.error("event=delivery_dead destination=%s delivery=%d attempts=%d error=%s", claim.destination,
                  claim.id, claim.attempts, message)
        return
    wait = backoff(claim.attempts)
    retry_after = getattr(exc, "retry_after", None)  # the provider's Retry-After (Slack 429): never earlier
    if retry_after is not None:
        wait = max(wait, timedelta(seconds=min(float(retry_after), MAX_BACKOFF.total_seconds())))
    mark_retry(db, claim.id, message, now + wait)  # after this round: never claimed twice in one round
    summary.retrying += 1
    log.warning("event=delivery_retry destination=%s delivery=%d attempts=%d error=%s", claim.destination,
                claim.id, claim.attempts, message)
