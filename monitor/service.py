"""Composition root: builds the database, feeds, rules, fetcher, workers and poller from Settings."""

from __future__ import annotations

import logging
import os
import pyexpat
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from monitor.errors import ConfigError
from monitor.feeds_file import load_feeds
from monitor.metrics import FETCHES, POLLS, timed
from monitor.models import FeedSource, PollSummary
from monitor.notify.destinations import load_destinations, unknown_routes
from monitor.notify.digest import send_due_digests
from monitor.notify.health import HealthNotifier
from monitor.notify.notifiers import notifiers
from monitor.notify.sender import DeliverySummary, deliver_due
from monitor.notify.slack import SlackNotifier
from monitor.pipeline.article import warm_up
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.run import PollContext, Poller
from monitor.pipeline.workers import InlinePool, WorkerPool
from monitor.rules.engine import RuleSet
from monitor.rules.reload import RulesWatcher
from monitor.settings import Settings
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.feedstate import claim_feeds, paused_feeds, release_feeds
from monitor.store.retention import Pruned, prune

if TYPE_CHECKING:
    from monitor.api.context import Heartbeat
    from monitor.api.server import ApiServer

log = logging.getLogger(__name__)


def check_runtime() -> None:
    """Refuse to run on an expat without billion-laughs protection (< 2.4)."""
    major, minor, _ = pyexpat.version_info
    if (major, minor) < (2, 4):
        raise ConfigError(f"expat {pyexpat.EXPAT_VERSION} is too old: 2.4 or newer is required")


class Service:
    """Everything `monitor run` and `monitor poll` need, built once."""

    def __init__(self, settings: Settings, inline_workers: bool = False) -> None:
        check_runtime()
        self.settings = settings
        self.feeds: list[FeedSource] = load_feeds(settings.feeds_file)
        self.destinations = load_destinations(settings.destinations_file)
        self.rules_watcher = RulesWatcher(settings.rules_dir,
                                          validate=lambda rules: unknown_routes(rules, self.destinations))
        self.rules: RuleSet = self.rules_watcher.load()
        self.db = Database(settings.database_url)
        self.db.migrate()
        queries.sync_feeds(self.db, self.feeds)  # a row per configured feed, for the claims below
        self._by_name = {feed.name: feed for feed in self.feeds}
        self.fetcher = Fetcher(
            user_agent=settings.user_agent,
            connect_timeout=settings.connect_timeout,
            total_timeout=settings.fetch_timeout,
            max_redirects=settings.max_redirects,
            per_host=settings.per_host_concurrency,
            per_host_delay=settings.per_host_delay,
            allow=settings.allow_private_networks,
            keepalive=settings.per_host_concurrency,
        )
        self.pool: WorkerPool | InlinePool = InlinePool() if inline_workers else WorkerPool(settings.worker_count)
        if isinstance(self.pool, WorkerPool):
            self.pool.start(warm_up)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"  # whose feed leases these are
        self._batch = max(64, settings.concurrency * 16)  # feeds claimed at a time (256 by default)
        # the longest one feed's poll may take: fetch, parse, and its pages in the page pool
        self._feed_budget = settings.fetch_timeout + settings.parse_timeout + settings.extract_timeout
        self._slack = SlackNotifier(self.db, self.destinations)  # keeps the one-message-a-second pace
        self._health = HealthNotifier(self.db, settings, self.destinations, self._slack, self._lease)
        self.poller = Poller(PollContext(settings, self.db, self.fetcher, self.pool, self.rules, self.destinations))
        log.info("event=service_ready feeds=%d rules=%d database=%s", len(self.feeds), len(self.rules.rules),
                 self.db.engine.url.render_as_string(hide_password=True))

    def reload_rules(self, force: bool = False) -> bool:
        """Swap in the rules directory's new contents if it changed (or ``force``) and compiles; a broken
        directory is logged (event=rules_reload_failed) and the running rules stay. True when swapped."""
        rules = self.rules_watcher.check(force)
        if rules is None:
            return False
        self.rules = rules
        self.poller.set_rules(rules)
        return True

    def start_api(self, heartbeat: Heartbeat | None) -> ApiServer:
        """Serve the API and web page in a thread of this process (``heartbeat``: the scheduler's, if any). FastAPI
        and uvicorn are imported here, not at start-up: `monitor poll --once` and the rest never load them."""
        from monitor.api.context import ApiContext
        from monitor.api.server import ApiServer

        ctx = ApiContext(self.settings, self.db, lambda: self.rules, heartbeat)
        server = ApiServer(ctx, self.settings.api_host, self.settings.api_port)
        server.start()
        return server

    def deliver(self, write: Callable[[str], None] = print, destination: str | None = None) -> DeliverySummary:
        """Send the outbox rows that are due (console: ``write``), of every immediate destination or of one."""
        with timed("deliver"):
            return deliver_due(self.db, self.destinations, notifiers(self.db, self.destinations, write, self._slack),
                               lease=self._lease, only=destination)

    def send_digests(self, write: Callable[[str], None] = print, destination: str | None = None) -> DeliverySummary:
        """Open the digests whose period has ended and send the due ones, of every digest destination or
        of one."""
        with timed("digest"):
            return send_due_digests(self.db, self.destinations,
                                    notifiers(self.db, self.destinations, write, self._slack),
                                    lease=self._lease, only=destination)

    def check_health(self, write: Callable[[str], None] = print) -> DeliverySummary:
        """Record feed-health changes (failing, paused, silent, recovered) and those of the rules loaded now
        (silent, recovered), and send their notices."""
        return self._health.run([feed.name for feed in self.feeds], write,
                                rules=[rule.id for rule in self.rules.rules])

    def housekeep(self) -> Pruned:
        """Delete unmatched entries and articles older than MONITOR_RETENTION (matches are kept)."""
        with timed("housekeeping"):
            pruned = prune(self.db, datetime.now(UTC) - timedelta(seconds=self.settings.retention))
        log.info("event=housekeeping entries=%d articles=%d notices=%d", pruned.entries, pruned.articles,
                 pruned.notices)
        return pruned

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self.settings.delivery_lease)

    def paused(self) -> list[str]:
        """Names of the configured feeds that are paused (not polled until resumed)."""
        paused = paused_feeds(self.db)
        return [feed.name for feed in self.feeds if feed.name in paused]

    def poll_all(self, on_done: Callable[[str, PollSummary], None] | None = None) -> PollSummary:
        """Poll every configured feed once, now, except the paused ones and those another process is polling
        (leased): all are claimed first, so running workers never poll one at the same time."""
        by_name = self._by_name
        claimed = claim_feeds(self.db, by_name, self.owner, datetime.now(UTC),
                              timedelta(seconds=self.settings.feed_lease), len(by_name), due_only=False)
        taken = set(claimed)
        return self.poller.poll([feed for feed in self.feeds if feed.name in taken], on_done)

    def poll_due(self) -> PollSummary:
        """Claim the feeds whose next check has come (never-polled feeds are due; paused ones never) a batch
        at a time, with a lease (MONITOR_FEED_LEASE), and poll them, until none is due. Any number of
        processes may do this against one database: each feed is polled by one of them at a time."""
        by_name = self._by_name
        total, lease = PollSummary(), timedelta(seconds=self.settings.feed_lease)
        while not self.poller.stopping:
            names = claim_feeds(self.db, by_name, self.owner, datetime.now(UTC), lease, self._batch)
            if not names:
                break
            # a feed is started only while its lease has time left for a whole poll of it
            start_by = time.monotonic() + max(self.settings.feed_lease - self._feed_budget, 0.0)
            with timed("poll"):
                summary = self.poller.poll([by_name[name] for name in names], start_by=start_by)
            release_feeds(self.db, summary.unstarted, self.owner)
            POLLS.inc()
            FETCHES.labels("ok", "").inc(summary.feeds_ok)
            FETCHES.labels("not_modified", "").inc(summary.feeds_not_modified)
            for _feed, reason in summary.failures:
                FETCHES.labels("failed", reason.split(":", 1)[0]).inc()
            log.info("event=poll_round feeds=%d ok=%d not_modified=%d failed=%d new_entries=%d new_matches=%d",
                     len(names), summary.feeds_ok, summary.feeds_not_modified, summary.feeds_failed,
                     summary.new_entries, summary.new_matches)
            total.add(summary)
        return total

    def close(self) -> None:
        self.poller.close()
        self.pool.close()
        self.fetcher.close()
        self.db.dispose()
