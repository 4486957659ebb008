"""What this process counts for /metrics: poll rounds, fetch outcomes, and how long each stage took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry()
POLLS = Counter("monitor_polls", "Poll rounds run by this process.", registry=REGISTRY)
FETCHES = Counter("monitor_fetches", "Feed polls by outcome (ok, not_modified, failed) and, for failures, the "
                  "error class (timeout, transport, http_5xx, http_4xx, parse, blocked, too_large...).",
                  ["outcome", "error_class"], registry=REGISTRY)
STAGE_SECONDS = Histogram("monitor_stage_seconds", "How long a stage took in this process: fetch_feed, parse, "
                          "fetch_page, extract_match (in a worker, waited for here), store (one feed's "
                          "transaction); poll (a whole round); deliver / digest (one destination's round).",
                          ["stage"], registry=REGISTRY,
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))


@contextmanager
def timed(stage: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage).observe(time.monotonic() - start)
