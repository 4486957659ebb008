"""Polling policy: when a feed is polled next.

    interval = the feed's `interval` from feeds.yaml,
               else half its learned cadence (median gap between its recent entries) within
               [MONITOR_POLL_MIN_INTERVAL, MONITOR_POLL_MAX_INTERVAL],
               else MONITOR_DEFAULT_INTERVAL (cadence not known yet);
               never shorter than the feed's RSS <ttl> or the response's Cache-Control max-age
               (those two capped at MONITOR_POLL_MAX_INTERVAL, or the feed's own longer interval)
    after N failures in a row: interval x 2^N; a Retry-After is a floor; both capped at MONITOR_MAX_BACKOFF
    + up to 10% random delay, so feeds added together drift apart instead of polling in lockstep
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from monitor.models import FeedSource
from monitor.settings import Settings

JITTER = 0.1
RECENT = 20  # entries whose gaps make the cadence


@dataclass(frozen=True)
class Hints:
    """What the feed itself says about its pace: learned cadence, <ttl>, Cache-Control max-age (seconds)."""

    cadence: float | None = None
    ttl: float | None = None
    max_age: float | None = None


def learn_cadence(published: Iterable[datetime | None]) -> float | None:
    """Median gap, in seconds, between the distinct publication times of the most recent entries; None with
    fewer than three dated entries."""
    times = sorted({when for when in published if when is not None}, reverse=True)[: RECENT + 1]
    gaps = [(newer - older).total_seconds() for newer, older in pairwise(times)]
    return statistics.median(gaps) if len(gaps) >= 2 else None


def poll_interval(settings: Settings, feed: FeedSource, hints: Hints) -> float:
    """Seconds between two successful polls of ``feed``."""
    if feed.interval:
        interval = feed.interval
    elif hints.cadence:
        interval = min(max(hints.cadence / 2, settings.poll_min_interval), settings.poll_max_interval)
    else:
        interval = settings.default_interval
    floor = max(hints.ttl or 0.0, hints.max_age or 0.0)
    return max(interval, min(floor, max(settings.poll_max_interval, interval)))


def next_check(settings: Settings, feed: FeedSource, now: datetime, hints: Hints = Hints(), errors: int = 0,
               retry_after: float | None = None, rng: Callable[[], float] = random.random) -> datetime:
    """When to poll ``feed`` next, after a poll at ``now`` that left ``errors`` failures in a row."""
    delay = poll_interval(settings, feed, hints)
    if errors:
        delay = min(delay * 2 ** min(errors, 16), max(settings.max_backoff, delay))
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.max_backoff))
    return now + timedelta(seconds=delay * (1 + JITTER * rng()))
