"""The orchestrator: the only module that knows the order of the stages.

    fetch feed → (304: done) → parse (worker) → dedupe against the store → for each new entry:
    fetch page → extract (worker) → match → store entries, articles and matches in one transaction

One feed's failure is recorded on that feed and never stops the others.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from monitor.errors import MonitorError, ServerError
from monitor.models import Article, Entry, FeedSource, PollSummary, ProcessedEntry
from monitor.pipeline.extract import extract_text
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.lang import choose_lang
from monitor.pipeline.match import match_rules
from monitor.pipeline.parse import FieldCaps, parse_entries
from monitor.pipeline.workers import Context, InlinePool, WorkerPool
from monitor.rules.engine import RuleSet
from monitor.settings import Settings
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.queries import FeedOutcome, FeedState

log = logging.getLogger(__name__)

MAX_BACKOFF = 24 * 3600.0
_RULE_VERSIONS = itertools.count(1)


@dataclass(frozen=True)
class PollContext:
    settings: Settings
    db: Database
    fetcher: Fetcher
    pool: WorkerPool | InlinePool
    rules: RuleSet


def next_check(settings: Settings, feed: FeedSource, now: datetime, errors: int = 0,
               retry_after: float | None = None) -> datetime:
    """Next poll time: the feed's interval; exponential backoff after failures; Retry-After honoured."""
    interval = feed.interval or settings.default_interval
    delay = interval if errors == 0 else min(interval * (2 ** min(errors, 16)), MAX_BACKOFF)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF))
    return now + timedelta(seconds=delay)


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
    """Fetch outcomes that store nothing else (304s, failures), written a batch per transaction.

    A crash loses at most one batch of outcomes: those feeds are simply polled again."""

    def __init__(self, db: Database, size: int = 256) -> None:
        self._db = db
        self._size = size
        self._items: list[tuple[int, FeedOutcome]] = []
        self._lock = threading.Lock()

    def add(self, feed_id: int, outcome: FeedOutcome) -> None:
        with self._lock:
            self._items.append((feed_id, outcome))
            if len(self._items) < self._size:
                return
            batch, self._items = self._items, []
        queries.record_outcomes(self._db, batch)

    def flush(self) -> None:
        with self._lock:
            batch, self._items = self._items, []
        if batch:
            queries.record_outcomes(self._db, batch)


class Poller:
    """Polls feeds with bounded concurrency; pages of new entries share a second bounded pool."""

    def __init__(self, ctx: PollContext) -> None:
        self.ctx = ctx
        s = ctx.settings
        self._caps = FieldCaps(s.max_title_chars, s.max_summary_chars, s.max_entries_per_feed)
        self._rules = Context(next(_RULE_VERSIONS), ctx.rules)
        self._pages = ThreadPoolExecutor(max_workers=s.worker_count * 4 + 2, thread_name_prefix="page")

    def close(self) -> None:
        self._pages.shutdown(wait=True, cancel_futures=True)

    def poll(self, feeds: Sequence[FeedSource], on_done: Callable[[str, PollSummary], None] | None = None
             ) -> PollSummary:
        """Poll ``feeds`` once. Threads ≤ concurrency and ≤ what the per-host caps can keep busy;
        feeds are interleaved by host so a thread rarely waits on another's host slot."""
        states = queries.sync_feeds(self.ctx.db, feeds)
        ordered, lanes = interleave_by_host(feeds, self.ctx.settings.per_host_concurrency)
        pending = deque(ordered)
        total = PollSummary()
        outcomes = OutcomeBatch(self.ctx.db)
        lock = threading.Lock()

        def lane() -> None:  # each lane takes the next feed until none is left (no per-feed futures)
            while True:
                try:
                    feed = pending.popleft()
                except IndexError:
                    return
                result = self.poll_feed(feed, states[feed.name], outcomes)
                with lock:
                    total.add(result)
                    if on_done:
                        on_done(feed.name, result)

        threads = [threading.Thread(target=lane, name=f"feed-{n}", daemon=True)
                   for n in range(min(self.ctx.settings.concurrency, lanes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        outcomes.flush()
        return total

    def poll_feed(self, feed: FeedSource, state: FeedState, outcomes: OutcomeBatch | None = None) -> PollSummary:
        """Poll one feed; every failure is recorded on the feed and summarised, never raised.

        Outcomes that store nothing else (304, failures) go to ``outcomes`` to be written in batches;
        without a batch they are written at once."""
        now = datetime.now(UTC)
        batch = outcomes or OutcomeBatch(self.ctx.db, size=1)
        try:
            return self._poll(feed, state, now, batch)
        except MonitorError as exc:
            retry = exc.retry_after if isinstance(exc, ServerError) else None
            status = getattr(exc, "status", None)
            return self._failed(feed, state, now, exc.error_class, str(exc), status, retry, batch)
        except Exception as exc:  # the per-feed boundary: a bug must not stop the other feeds
            log.exception("feed=%s event=poll_crashed", feed.name)
            return self._failed(feed, state, now, "internal", f"{type(exc).__name__}: {exc}", None, None, batch)
        finally:
            if outcomes is None:
                batch.flush()

    def _failed(self, feed: FeedSource, state: FeedState, now: datetime, error_class: str, message: str,
                status: int | None, retry_after: float | None, outcomes: OutcomeBatch) -> PollSummary:
        log.warning("feed=%s event=poll_failed error_class=%s error=%s", feed.name, error_class, message)
        when = next_check(self.ctx.settings, feed, now, state.consecutive_errors + 1, retry_after)
        outcomes.add(state.id, FeedOutcome(now, when, status, "failed", error_class=error_class, error=message))
        return PollSummary(feeds_failed=1, failures=[(feed.name, f"{error_class}: {message}")])

    def _poll(self, feed: FeedSource, state: FeedState, now: datetime, outcomes: OutcomeBatch) -> PollSummary:
        ctx = self.ctx
        result = ctx.fetcher.fetch_feed(feed.url, state.validators, ctx.settings.feed_max_bytes)
        if result.not_modified:
            outcomes.add(state.id, FeedOutcome(now, next_check(ctx.settings, feed, now), 304, "not_modified"))
            return PollSummary(feeds_not_modified=1)
        parsed = ctx.pool.run(parse_entries, result.body, self._caps, timeout=ctx.settings.parse_timeout)
        known = queries.known_entries(ctx.db, state.id, parsed.entries)
        fresh = [e for e in parsed.entries if e.key not in known.keys and e.canonical_url not in known.url_keys]
        churn = sum(1 for e in parsed.entries if e.key not in known.keys and e.canonical_url in known.url_keys)
        processed = list(self._pages.map(
            lambda entry: self._process(feed, entry, parsed.lang, known.article_keys), fresh))
        validators = type(state.validators)(result.etag, result.last_modified)
        warning = parsed.warning
        if churn:
            warning = f"{churn} entries changed GUID but kept their URL; deduplicated by URL"
            log.warning("feed=%s event=guid_churn entries=%d", feed.name, churn)
        outcome = FeedOutcome(now, next_check(ctx.settings, feed, now), result.status, "ok", validators,
                              warning=warning)
        new_entries, new_matches = queries.store_entries(ctx.db, state.id, feed.name, processed, outcome, churn)
        log.info("feed=%s event=polled entries=%d new_entries=%d new_matches=%d",
                 feed.name, len(parsed.entries), new_entries, new_matches)
        return PollSummary(feeds_ok=1, new_entries=new_entries, new_matches=new_matches)

    def _process(self, feed: FeedSource, entry: Entry, feed_lang: str | None,
                 stored_articles: frozenset[str]) -> ProcessedEntry:
        """Page text extracted and matched in a worker when possible; else the feed summary, matched here."""
        if entry.canonical_url and entry.canonical_url in stored_articles:
            return ProcessedEntry(entry, None)
        ctx, error = self.ctx, None
        if feed.fetch_articles and entry.url:
            try:
                page = ctx.fetcher.fetch_page(entry.url, ctx.settings.page_max_bytes)
                return ctx.pool.run(extract_and_match, page.body, page.final_url, feed, entry, feed_lang,
                                    ctx.settings.max_text_chars, timeout=ctx.settings.extract_timeout,
                                    context=self._rules)
            except MonitorError as exc:
                error = f"{exc.error_class}: {exc}"[:1000]
                log.info("feed=%s event=extract_fallback url=%s error=%s", feed.name, entry.url[:200], error)
        article = build_article(feed, entry, feed_lang, "", None, error)
        return ProcessedEntry(entry, article, match_rules(article, ctx.rules))


def build_article(feed: FeedSource, entry: Entry, feed_lang: str | None, text: str, page_lang: str | None,
                  error: str | None) -> Article:
    """The article to match: extracted text when there is some, the feed summary otherwise."""
    return Article(
        title=entry.title,
        summary=entry.summary,
        text=text,
        text_source="extracted" if text else "summary",
        lang=choose_lang(feed.lang or feed_lang, page_lang, text or entry.summary or entry.title),
        url=entry.url,
        feed=feed.name,
        tags=feed.tags,
        extract_error=error,
    )


def extract_and_match(rules: RuleSet, html: bytes, url: str, feed: FeedSource, entry: Entry,
                      feed_lang: str | None, max_chars: int) -> ProcessedEntry:
    """Worker side (pure): page → text → article → matches, so the CPU work stays off the fetching core."""
    extracted = extract_text(html, url, max_chars)
    article = build_article(feed, entry, feed_lang, extracted.text, extracted.lang, None)
    return ProcessedEntry(entry, article, match_rules(article, rules))
