"""The digest job: opens each digest destination's digest when its period has ended (notify.periods), sends
open digests through the destination's notifier and marks them; `monitor digest --now` opens one at once.

A digest is opened at most once per (destination, period), so the job may run as often as it likes (every
few seconds in `monitor run`, on every `monitor deliver --once`): it sends one digest per period. Sending
and retrying follow the alert rows' rules (notify.sender): transient errors back off, permanent ones fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

from monitor.errors import ConfigError
from monitor.notify.destinations import DestinationModel, Destinations
from monitor.notify.digest_content import Digest, build_digest
from monitor.notify.periods import due_period
from monitor.notify.sender import DeliverySummary, attempt, tally
from monitor.store.db import Database
from monitor.store.digests import (
    DigestClaim,
    claim_digest,
    digest_items,
    finish_digest,
    mark_part_sent,
    open_digest,
    retry_digest,
    waiting_items,
)
from monitor.store.outbox import LEASE

log = logging.getLogger(__name__)


class DigestNotifier(Protocol):
    def send_digest(self, digest: Digest, parts_sent: int, part_done: Callable[[int], None]) -> None: ...

    def preview(self, digest: Digest) -> str: ...


def digest_destinations(destinations: Destinations, only: str | None = None) -> list[DestinationModel]:
    """The digest destinations (``only``: that one, which must exist and be a digest destination)."""
    if only is not None:
        destination = destinations.get(only)
        if destination is None:
            raise ConfigError(f"no destination named {only!r} in {destinations.source} "
                              f"(known: {[d.name for d in destinations.items]})")
        if destination.mode != "digest":
            raise ConfigError(f"destination {only!r} is immediate: it has no digest (mode: digest makes one)")
        return [destination]
    return [d for d in destinations.items if d.mode == "digest"]


def send_due_digests(db: Database, destinations: Destinations, notifiers: Mapping[str, DigestNotifier],
                     now: datetime | None = None, lease: timedelta = LEASE, only: str | None = None
                     ) -> DeliverySummary:
    """Open the digest of every digest destination whose period has ended, and send every open digest that
    is due (new ones, retries whose time has come, interrupted ones whose lease ran out)."""
    now = now or datetime.now(UTC)
    summary = DeliverySummary()
    for destination in digest_destinations(destinations, only):
        period = due_period(destination, now)
        if period is not None:
            opened = open_digest(db, destination.name, period.end, period.kind, period.alerts_only, now)
            if opened is not None:
                log.info("event=digest_opened destination=%s digest=%d period_end=%s kind=%s", destination.name,
                         opened, period.end.isoformat(), period.kind)
        _send_open(db, destination, notifiers, now, lease, summary)
    return summary


def digest_now(db: Database, destinations: Destinations, notifiers: Mapping[str, DigestNotifier],
               only: str | None = None, lease: timedelta = LEASE) -> DeliverySummary:
    """Open a digest of everything waiting for each digest destination (or ``only``) now, and send it."""
    now = datetime.now(UTC).replace(microsecond=0)
    summary = DeliverySummary()
    for destination in digest_destinations(destinations, only):
        open_digest(db, destination.name, now, "manual", False, now)
        _send_open(db, destination, notifiers, now, lease, summary)
    return summary


def preview(db: Database, destination: DestinationModel, notifier: DigestNotifier) -> str | None:
    """The digest a `digest --now` would send this destination, rendered, changing nothing (None: empty)."""
    now = datetime.now(UTC)
    items = waiting_items(db, destination.name, now)
    if not items:
        return None
    return notifier.preview(build_digest(db, items, destination.name, destination.timezone, now, "manual"))


def _send_open(db: Database, destination: DestinationModel, notifiers: Mapping[str, DigestNotifier],
               now: datetime, lease: timedelta, summary: DeliverySummary, limit: int = 20) -> None:
    notifier = notifiers.get(destination.kind)
    if notifier is None:
        return
    for _ in range(limit):
        claim = claim_digest(db, destination.name, now, lease)
        if claim is None:
            return
        digest = _content(db, destination, claim)
        if not digest.groups:  # its matches are gone: nothing left to say
            finish_digest(db, claim.id, "sent", datetime.now(UTC), "nothing left to send")
            continue
        part_done = partial(mark_part_sent, db, claim.id)
        outcome = attempt(partial(notifier.send_digest, digest, claim.parts_sent, part_done), claim.attempts, now)
        if outcome.status == "retry":
            assert outcome.retry_at is not None
            retry_digest(db, claim.id, outcome.error or "", outcome.retry_at)
        else:
            finish_digest(db, claim.id, outcome.status, datetime.now(UTC), outcome.error)
        tally(summary, outcome, f"destination={destination.name} digest={claim.id}", claim.attempts)


def _content(db: Database, destination: DestinationModel, claim: DigestClaim) -> Digest:
    return build_digest(db, digest_items(db, claim.id), destination.name, destination.timezone, claim.period_end,
                        claim.kind, claim.alerts_only, claim.possible_duplicate)
