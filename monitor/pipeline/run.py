"""The orchestrator: the only module that knows the order of the stages.

    fetch feed → (304: done) → parse (worker) → dedupe against the store → for each new entry:
    fetch page → extract (worker) → match → store entries, articles and matches in one transaction

One feed's failure is recorded on that feed and never stops the others.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from urllib.parse import urlsplit

from monitor.errors import MonitorError, ServerError
from monitor.faults import checkpoint
from monitor.metrics import timed
from monitor.models import Entry, FeedSource, PollSummary, ProcessedEntry, Validators
from monitor.notify.destinations import EMBEDDED, Destinations
from monitor.notify.routing import plan_deliveries
from monitor.pipeline.article import build_article, extract_and_match
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.match import match_rules
from monitor.pipeline.parse import FieldCaps, parse_entries
from monitor.pipeline.schedule import Hints, learn_cadence, next_check
from monitor.pipeline.workers import Context, InlinePool, WorkerPool
from monitor.rules.engine import RuleSet
from monitor.settings import Settings
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.queries import FeedOutcome, FeedState

log = logging.getLogger(__name__)

_RULE_VERSIONS = itertools.count(1)


@dataclass(frozen=True)
class PollContext:
    settings: Settings
    db: Database
    fetcher: Fetcher
    pool: WorkerPool | InlinePool
    rules: RuleSet  # the first rules (Poller.set_rules swaps later ones in)
    destinations: Destinations = EMBEDDED  # where new matches are queued (the outbox)


@lru_cache(maxsize=8192)
def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def interleave_by_host(feeds: Sequence[FeedSource], per_host: int) -> tuple[list[FeedSource], int]:
    """Feeds in round-robin order of their hosts, and how many fetches the per-host caps allow at once."""
    by_host: dict[str, list[FeedSource]] = {}
    for feed in feeds:
        by_host.setdefault(_host(feed.url), []).append(feed)
    queues = list(by_host.values())
    ordered = [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]
    return ordered, max(1, sum(min(per_host, len(queue)) for queue in queues))


class OutcomeBatch:
    """Fetch outcomes that store nothing else (304s, failures), written a batch per transaction by a
    writer thread, so fetching lanes never wait on the database. ``flush`` returns once all is written.

    A crash loses at most the batches not yet written: those feeds are simply polled again."""

    def __init__(self, db: Database, size: int = 256, pause_after: int = 0) -> None:
        self._db = db
        self._size = size
        self._pause_after = pause_after
        self._items: list[tuple[int, FeedOutcome]] = []
        self._lock = threading.Lock()
        self._batches: queue.Queue[list[tuple[int, FeedOutcome]] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write, name="outcome-writer", daemon=True)
        self._writer.start()

    def add(self, feed_id: int, outcome: FeedOutcome) -> None:
        with self._lock:
            self._items.append((feed_id, outcome))
            if len(self._items) < self._size:
                return
            batch, self._items = self._items, []
        self._batches.put(batch)

    def flush(self) -> None:
        with self._lock:
            batch, self._items = self._items, []
        if batch:
            self._batches.put(batch)
        self._batches.put(None)
        self._writer.join()

    def _write(self) -> None:
        while (batch := self._batches.get()) is not None:
            try:
                queries.record_outcomes(self._db, batch, self._pause_after)
            except Exception:  # the database refused: those feeds keep their old state and are re-polled
                log.exception("event=outcomes_not_recorded feeds=%d", len(batch))


@dataclass
class _PendingFeed:
    """A fetched and parsed feed whose new entries are being processed; stored when the last is done."""

    feed: FeedSource
    state: FeedState
    outcome: FeedOutcome
    parsed_count: int
    churn: int
    feed_lang: str | None
    stored_articles: frozenset[str]
    fresh: list[Entry]
    results: list[ProcessedEntry | None]
    remaining: int
    lock: threading.Lock


class _Round:
    """One poll round: the running totals, the feeds still in flight, and the bound on pages in flight."""

    def __init__(self, on_done: Callable[[str, PollSummary], None] | None, max_pages: int) -> None:
        self.total = PollSummary()
        self.page_slots = threading.BoundedSemaphore(max_pages)
        self._on_done = on_done
        self._in_flight = 0
        self._cond = threading.Condition()

    def started(self) -> None:
        with self._cond:
            self._in_flight += 1

    def finished(self, name: str, summary: PollSummary) -> None:
        with self._cond:
            self.total.add(summary)
            if self._on_done:
                self._on_done(name, summary)
            self._in_flight -= 1
            self._cond.notify_all()

    def wait(self) -> None:
        with self._cond:
            while self._in_flight:
                self._cond.wait()


class Poller:
    """Polls feeds with few fetching lanes; new entries' pages go to a bounded page pool, so the next
    feed is fetched and parsed while the previous one's pages are extracted (workers never idle at
    feed boundaries). A feed is stored, atomically, once its last page is done."""

    def __init__(self, ctx: PollContext) -> None:
        self.ctx = ctx
        s = ctx.settings
        self._caps = FieldCaps(s.max_title_chars, s.max_summary_chars, s.max_entries_per_feed)
        self._rules = (ctx.rules, Context(next(_RULE_VERSIONS), ctx.rules))
        self._plan = partial(plan_deliveries, destinations=ctx.destinations)
        self._page_threads = s.worker_count * 4 + 2
        self._pages = ThreadPoolExecutor(max_workers=self._page_threads, thread_name_prefix="page")
        self._stopping = threading.Event()

    def set_rules(self, rules: RuleSet) -> None:
        """Match with ``rules`` from now on (pages already being matched finish with the rules they had);
        workers receive the new version with their next page."""
        self._rules = (rules, Context(next(_RULE_VERSIONS), rules))

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Take no new feed: lanes finish (and store) the feed in hand; the rest of a round waits for the
        next start (those feeds are still due)."""
        self._stopping.set()

    def close(self) -> None:
        self._pages.shutdown(wait=True, cancel_futures=True)

    def poll(self, feeds: Sequence[FeedSource], on_done: Callable[[str, PollSummary], None] | None = None,
             start_by: float | None = None) -> PollSummary:
        """Poll ``feeds`` once. Lanes ≤ concurrency and ≤ what the per-host caps can keep busy;
        feeds are interleaved by host so a lane rarely waits on another's host slot. No feed is started
        after ``start_by`` (time.monotonic(); its lease would run out meanwhile): those are left unpolled,
        named in the summary's ``unstarted``."""
        states = queries.sync_feeds(self.ctx.db, feeds)
        ordered, lanes = interleave_by_host(feeds, self.ctx.settings.per_host_concurrency)
        pending = deque(ordered)
        outcomes = OutcomeBatch(self.ctx.db, pause_after=self.ctx.settings.feed_pause_after)
        round_ = _Round(on_done, self._page_threads)

        def lane() -> None:  # each lane takes the next feed until none is left (no per-feed futures)
            while not self._stopping.is_set() and (start_by is None or time.monotonic() < start_by):
                try:
                    feed = pending.popleft()
                except IndexError:
                    return
                self._poll_into(round_, feed, states[feed.name], outcomes)

        threads = [threading.Thread(target=lane, name=f"feed-{n}", daemon=True)
                   for n in range(min(self.ctx.settings.concurrency, lanes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        round_.wait()
        outcomes.flush()
        round_.total.unstarted.extend(feed.name for feed in pending)
        return round_.total

    def _poll_into(self, round_: _Round, feed: FeedSource, state: FeedState, outcomes: OutcomeBatch) -> None:
        """Fetch and parse one feed, then hand its new entries to the page pool (or finish it here)."""
        now = datetime.now(UTC)
        round_.started()
        try:
            work_or_summary = self._poll(feed, state, now, outcomes)
        except MonitorError as exc:
            retry = exc.retry_after if isinstance(exc, ServerError) else None
            status = getattr(exc, "status", None)
            work_or_summary = self._failed(feed, state, now, exc.error_class, str(exc), status, retry, outcomes)
        except Exception as exc:  # the per-feed boundary: a bug must not stop the other feeds
            log.exception("feed=%s event=poll_crashed", feed.name)
            work_or_summary = self._failed(feed, state, now, "internal", f"{type(exc).__name__}: {exc}", None,
                                           None, outcomes)
        if isinstance(work_or_summary, PollSummary):
            round_.finished(feed.name, work_or_summary)
            return
        work = work_or_summary
        for index, entry in enumerate(work.fresh):
            round_.page_slots.acquire()  # back-pressure: at most one page per page thread in flight
            try:
                self._pages.submit(self._page_task, round_, work, index, entry, outcomes)
            except RuntimeError:  # the pool is shutting down: finish this feed in the lane itself
                self._page_task(round_, work, index, entry, outcomes)

    def _failed(self, feed: FeedSource, state: FeedState, now: datetime, error_class: str, message: str,
                status: int | None, retry_after: float | None, outcomes: OutcomeBatch) -> PollSummary:
        errors = state.consecutive_errors + 1
        log.warning("feed=%s event=poll_failed error_class=%s errors=%d error=%s", feed.name, error_class, errors,
                    message)
        pause_after = self.ctx.settings.feed_pause_after
        if pause_after and errors >= pause_after:
            log.warning("feed=%s event=feed_paused errors=%d resume_with='monitor feeds resume %s'", feed.name,
                        errors, feed.name)
        when = next_check(self.ctx.settings, feed, now, Hints(state.cadence, state.ttl), errors, retry_after)
        outcomes.add(state.id, FeedOutcome(now, when, status, "failed", error_class=error_class, error=message))
        return PollSummary(feeds_failed=1, failures=[(feed.name, f"{error_class}: {message}")])

    def _poll(self, feed: FeedSource, state: FeedState, now: datetime, outcomes: OutcomeBatch
              ) -> PollSummary | _PendingFeed:
        ctx = self.ctx
        with timed("fetch_feed"):
            result = ctx.fetcher.fetch_feed(feed.url, state.validators, ctx.settings.feed_max_bytes)
        if result.not_modified:
            hints = Hints(state.cadence, state.ttl, result.max_age)
            outcomes.add(state.id, FeedOutcome(now, next_check(ctx.settings, feed, now, hints), 304, "not_modified"))
            return PollSummary(feeds_not_modified=1)
        with timed("parse"):
            parsed = ctx.pool.run(parse_entries, result.body, self._caps, timeout=ctx.settings.parse_timeout,
                                  urgent=True)
        known = queries.known_entries(ctx.db, state.id, parsed.entries)
        fresh = [e for e in parsed.entries if e.key not in known.keys and e.canonical_url not in known.url_keys]
        churn = sum(1 for e in parsed.entries if e.key not in known.keys and e.canonical_url in known.url_keys)
        warning = parsed.warning
        if churn:
            warning = f"{churn} entries changed GUID but kept their URL; deduplicated by URL"
            log.warning("feed=%s event=guid_churn entries=%d", feed.name, churn)
        hints = Hints(learn_cadence(e.published for e in parsed.entries) or state.cadence, parsed.ttl, result.max_age)
        outcome = FeedOutcome(now, next_check(ctx.settings, feed, now, hints), result.status, "ok",
                              Validators(result.etag, result.last_modified), warning=warning,
                              cadence=hints.cadence, ttl=parsed.ttl)
        pending = _PendingFeed(feed, state, outcome, len(parsed.entries), churn, parsed.lang,
                               known.article_keys, fresh, [None] * len(fresh), len(fresh), threading.Lock())
        return self._store(pending) if not fresh else pending

    def _page_task(self, round_: _Round, work: _PendingFeed, index: int, entry: Entry,
                   outcomes: OutcomeBatch) -> None:
        try:
            try:
                processed = self._process(work.feed, entry, work.feed_lang, work.stored_articles)
            except Exception as exc:  # a bug on one page must not lose the feed's other entries
                log.exception("feed=%s event=page_crashed url=%s", work.feed.name, (entry.url or "")[:200])
                article = build_article(work.feed, entry, work.feed_lang, "", None, f"internal: {exc}"[:1000])
                processed = ProcessedEntry(entry, article, match_rules(article, self._rules[0]))
        finally:
            round_.page_slots.release()
        work.results[index] = processed
        with work.lock:
            work.remaining -= 1
            if work.remaining:
                return
        try:
            summary = self._store(work)
        except Exception as exc:  # storing failed (disk, database): recorded on the feed, nothing half-stored
            log.exception("feed=%s event=store_failed", work.feed.name)
            summary = self._failed(work.feed, work.state, work.outcome.checked_at, "store",
                                   f"{type(exc).__name__}: {exc}", None, None, outcomes)
        round_.finished(work.feed.name, summary)

    def _store(self, work: _PendingFeed) -> PollSummary:
        processed = [item for item in work.results if item is not None]
        with timed("store"):
            new_entries, new_matches = queries.store_entries(
                self.ctx.db, work.state.id, work.feed.name, processed, work.outcome, work.churn, self._plan)
        checkpoint("after_outbox_commit")
        log.info("feed=%s event=polled entries=%d new_entries=%d new_matches=%d",
                 work.feed.name, work.parsed_count, new_entries, new_matches)
        return PollSummary(feeds_ok=1, new_entries=new_entries, new_matches=new_matches)

    def _process(self, feed: FeedSource, entry: Entry, feed_lang: str | None,
                 stored_articles: frozenset[str]) -> ProcessedEntry:
        """Page text extracted and matched in a worker when possible; else the feed summary, matched here."""
        if entry.canonical_url and entry.canonical_url in stored_articles:
            return ProcessedEntry(entry, None)
        ctx, error = self.ctx, None
        rules, context = self._rules  # one version for the whole page, even if a reload lands meanwhile
        if feed.fetch_articles and entry.url:
            try:
                with timed("fetch_page"):
                    page = ctx.fetcher.fetch_page(entry.url, ctx.settings.page_max_bytes)
                with timed("extract_match"):
                    return ctx.pool.run(extract_and_match, page.body, page.final_url, feed, entry, feed_lang,
                                        ctx.settings.max_text_chars, timeout=ctx.settings.extract_timeout,
                                        context=context)
            except MonitorError as exc:
                error = f"{exc.error_class}: {exc}"[:1000]
                log.info("feed=%s event=extract_fallback url=%s error=%s", feed.name, entry.url[:200], error)
        article = build_article(feed, entry, feed_lang, "", None, error)
        return ProcessedEntry(entry, article, match_rules(article, rules))
