"""The orchestrator: the only module that knows the order of the stages.

    fetch feed → (304: done) → parse (worker) → dedupe against the store → for each new entry:
    fetch page → extract (worker) → match → store entries, articles and matches in one transaction

One feed's failure is recorded on that feed and never stops the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from monitor.errors import MonitorError, ServerError
from monitor.models import Article, Entry, FeedSource, PollSummary, ProcessedEntry
from monitor.pipeline.extract import extract_text
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.lang import choose_lang
from monitor.pipeline.match import match_rules
from monitor.pipeline.parse import FieldCaps, parse_entries
from monitor.pipeline.workers import InlinePool, WorkerPool
from monitor.rules.engine import RuleSet
from monitor.settings import Settings
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.queries import FeedOutcome, FeedState

log = logging.getLogger(__name__)

MAX_BACKOFF = 24 * 3600.0


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


class Poller:
    """Polls feeds with bounded concurrency; pages of new entries share a second bounded pool."""

    def __init__(self, ctx: PollContext) -> None:
        self.ctx = ctx
        s = ctx.settings
        self._caps = FieldCaps(s.max_title_chars, s.max_summary_chars, s.max_entries_per_feed)
        self._pages = ThreadPoolExecutor(max_workers=max(2, s.worker_count * 2 + 2), thread_name_prefix="page")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pages.shutdown(wait=True, cancel_futures=True)

    def poll(self, feeds: Sequence[FeedSource], on_done: Callable[[str, PollSummary], None] | None = None
             ) -> PollSummary:
        states = queries.sync_feeds(self.ctx.db, feeds)
        total = PollSummary()
        workers = min(self.ctx.settings.concurrency, max(1, len(feeds)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="feed") as pool:
            futures = {pool.submit(self.poll_feed, feed, states[feed.name]): feed for feed in feeds}
            for future in as_completed(futures):
                result = future.result()
                total.add(result)
                if on_done:
                    on_done(futures[future].name, result)
        return total

    def poll_feed(self, feed: FeedSource, state: FeedState) -> PollSummary:
        """Poll one feed; every failure is recorded on the feed and summarised, never raised."""
        now = datetime.now(UTC)
        try:
            return self._poll(feed, state, now)
        except MonitorError as exc:
            retry = exc.retry_after if isinstance(exc, ServerError) else None
            return self._failed(feed, state, now, exc.error_class, str(exc), getattr(exc, "status", None), retry)
        except Exception as exc:  # the per-feed boundary: a bug must not stop the other feeds
            log.exception("feed=%s event=poll_crashed", feed.name)
            return self._failed(feed, state, now, "internal", f"{type(exc).__name__}: {exc}", None, None)

    def _failed(self, feed: FeedSource, state: FeedState, now: datetime, error_class: str, message: str,
                status: int | None, retry_after: float | None) -> PollSummary:
        log.warning("feed=%s event=poll_failed error_class=%s error=%s", feed.name, error_class, message)
        outcome = FeedOutcome(now, next_check(self.ctx.settings, feed, now, state.consecutive_errors + 1, retry_after),
                              status, "failed", error_class=error_class, error=message)
        queries.record_outcome(self.ctx.db, state.id, outcome)
        return PollSummary(feeds_failed=1, failures=[(feed.name, f"{error_class}: {message}")])

    def _poll(self, feed: FeedSource, state: FeedState, now: datetime) -> PollSummary:
        ctx = self.ctx
        result = ctx.fetcher.fetch_feed(feed.url, state.validators, ctx.settings.feed_max_bytes)
        if result.not_modified:
            queries.record_outcome(ctx.db, state.id, FeedOutcome(
                now, next_check(ctx.settings, feed, now), 304, "not_modified"))
            log.debug("feed=%s event=not_modified", feed.name)
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
        if entry.canonical_url and entry.canonical_url in stored_articles:
            return ProcessedEntry(entry, None)
        article = self._article(feed, entry, feed_lang)
        return ProcessedEntry(entry, article, match_rules(article, self.ctx.rules))

    def _article(self, feed: FeedSource, entry: Entry, feed_lang: str | None) -> Article:
        """Extracted page text when possible; the feed summary otherwise (the reason is kept)."""
        ctx, text, page_lang, error = self.ctx, "", None, None
        if feed.fetch_articles and entry.url:
            try:
                page = ctx.fetcher.fetch_page(entry.url, ctx.settings.page_max_bytes)
                extracted = ctx.pool.run(extract_text, page.body, page.final_url, ctx.settings.max_text_chars,
                                         timeout=ctx.settings.extract_timeout)
                text, page_lang = extracted.text, extracted.lang
            except MonitorError as exc:
                error = f"{exc.error_class}: {exc}"[:1000]
                log.info("feed=%s event=extract_fallback url=%s error=%s", feed.name, entry.url[:200], error)
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
