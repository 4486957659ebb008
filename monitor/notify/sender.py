"""The sender: claims due outbox rows, hands each to its destination's notifier, marks the outcome.

Transient errors (RetryLater, OSError) are retried with exponential backoff and jitter, up to
MAX_ATTEMPTS, then the row is ``dead``; a provider's Retry-After (Slack 429) is followed exactly and holds
back the destination's other rows as long; any other MonitorError is permanent and the row ``failed`` after
one attempt. A row is marked ``sent`` only after its notifier returned.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

from monitor.errors import MonitorError, RetryLater
from monitor.faults import checkpoint
from monitor.logs import redact
from monitor.notify.destinations import Destinations
from monitor.notify.email import PartlyRefused
from monitor.store.db import Database
from monitor.store.outbox import LEASE, Claim, claim_due, hold_destination, mark_given_up, mark_retry, mark_sent

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


@dataclass(frozen=True)
class Outcome:
    """What one send came to: sent (``error``: recipients refused while others accepted), retry at
    ``retry_at``, failed (permanent error) or dead (transient errors until the attempts ran out)."""

    status: str
    error: str | None = None
    retry_at: datetime | None = None
    rate_limited: bool = False  # the provider said when to come back (429 Retry-After): for every message


def attempt(send: Callable[[], None], attempts: int, now: datetime) -> Outcome:
    """Run one send and classify how it ended (``attempts``: made so far, this one included)."""
    try:
        send()
        checkpoint("after_provider_200")
    except PartlyRefused as exc:  # sent to the others: never again; the refusals stay on the row
        return Outcome("sent", redact(str(exc)))
    except (RetryLater, OSError) as exc:
        message = redact(f"{type(exc).__name__}: {exc}")  # a provider may echo a webhook URL or a token
        if attempts >= MAX_ATTEMPTS:
            return Outcome("dead", message)
        retry_after = getattr(exc, "retry_after", None)  # the provider's Retry-After (Slack 429)
        if retry_after is not None:  # exactly when it said, and not a message to it before then
            # (at least a second: "Retry-After: 0" answered again and again must not use up the attempts at once)
            wait = timedelta(seconds=min(max(float(retry_after), 1.0), MAX_BACKOFF.total_seconds()))
            return Outcome("retry", message, max(now, datetime.now(UTC)) + wait, rate_limited=True)
        return Outcome("retry", message, max(now, datetime.now(UTC)) + backoff(attempts))
    except MonitorError as exc:
        return Outcome("failed", redact(str(exc)))
    return Outcome("sent")


def tally(summary: DeliverySummary, outcome: Outcome, what: str, attempts: int) -> None:
    """Count and log an outcome (``what``: "destination=x delivery=n")."""
    if outcome.status == "sent":
        summary.sent += 1
        if outcome.error:
            summary.errors.append(f"{what}: {outcome.error}")
            log.warning("event=delivery_partly_refused %s %s", what, outcome.error)
        return
    summary.errors.append(f"{what}: {outcome.error}")
    if outcome.status == "retry":
        summary.retrying += 1
        log.warning("event=delivery_retry %s attempts=%d error=%s", what, attempts, outcome.error)
    elif outcome.status == "dead":
        summary.dead += 1
        log.error("event=delivery_dead %s attempts=%d error=%s", what, attempts, outcome.error)
    else:
        summary.failed += 1
        log.warning("event=delivery_failed %s error=%s", what, outcome.error)


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
        outcome = attempt(partial(notifiers[kinds[claim.destination]].send, claim), claim.attempts, now)
        if outcome.status == "sent":
            mark_sent(db, claim.id, datetime.now(UTC), outcome.error)
        elif outcome.status == "retry":
            assert outcome.retry_at is not None  # after this round: never claimed twice in one round
            mark_retry(db, claim.id, outcome.error or "", outcome.retry_at)
            if outcome.rate_limited:  # the destination's other rows wait as long (Slack limits per channel)
                hold_destination(db, claim.destination, outcome.retry_at)
        else:
            mark_given_up(db, claim.id, outcome.status, outcome.error or "")
        tally(summary, outcome, f"destination={claim.destination} delivery={claim.id}", claim.attempts)
    return summary
