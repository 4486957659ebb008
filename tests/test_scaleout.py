"""Scale-out: several `monitor worker` processes against one PostgreSQL database (a fresh schema on
MONITOR_TEST_POSTGRES_URL), 200 feeds on 127.0.0.1 and a fake Slack — every feed fetched by one worker at a
time, every entry stored once, every alert delivered once; SIGKILL one worker mid-way and the others finish
its work when its leases run out. The same code with SQLite in one process."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from conftest import write_feeds
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from support.fakeslack import FakeSlack
from support.httpserver import LocalServer, Route, respond
from support.proc import stop
from test_cli import base_env

FEEDS = 200
HOOK = "/services/T000/B000/scale"


class Site:
    """200 feeds of two entries each; every fifth feed's first entry is about the trilateral summit. Each
    request is held 50 ms, and overlapping requests for one feed are counted."""

    def __init__(self, server: LocalServer) -> None:
        self.in_flight: dict[str, int] = {}
        self.overlaps = 0
        self.lock = threading.Lock()
        for n in range(FEEDS):
            server.routes[f"/f/{n}.xml"] = Route(handler=self._answer(self._feed(n)))

    @staticmethod
    def _feed(n: int) -> bytes:
        first = (f"China, Japan and South Korea hold a trilateral summit in Seoul (report {n})" if n % 5 == 0
                 else f"Local weather report {n}")
        items = "".join(f"<item><title>{title}</title><link>https://news.invalid/{n}/{k}</link><guid>f{n}-{k}</guid>"
                        f"<description>{title}.</description></item>"
                        for k, title in enumerate((first, f"City council meets on parking, item {n}")))
        return f"<?xml version='1.0'?><rss version='2.0'><channel><title>f{n}</title>{items}</channel></rss>".encode()

    def _answer(self, body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            with self.lock:
                self.in_flight[handler.path] = self.in_flight.get(handler.path, 0) + 1
                if self.in_flight[handler.path] > 1:
                    self.overlaps += 1
            try:
                time.sleep(0.05)
                respond(handler, 200, body, {"Content-Type": "application/rss+xml"})
            finally:
                with self.lock:
                    self.in_flight[handler.path] -= 1
        return answer


@pytest.fixture(params=["postgresql", "postgresql-kill", "sqlite"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int, bool]]:
    """(database URL, workers, whether one is killed)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'monitor.db'}", 1, False
        return
    from support.pg import fresh_schema

    with fresh_schema() as url:
        yield url, 3, request.param.endswith("kill")


def _count(url: str, sql: str) -> Any:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def _wait(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except Exception:
            pass
        time.sleep(0.2)
    return False


def test_workers_share_feeds_and_alerts_each_once(server: LocalServer, slack: FakeSlack, tmp_path: Path,
                                                   setup: tuple[str, int, bool]) -> None:
    url, workers, kill = setup
    site = Site(server)
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": f"f{n}", "url": server.url(f"/f/{n}.xml"),
                                                    "interval": "1h", "fetch_articles": False}
                                                   for n in range(FEEDS)])
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text(f"destinations:\n  - {{name: chat, kind: slack, webhook_url: '{slack.base}{HOOK}'}}\n")
    env = base_env(tmp_path, feeds, MONITOR_DATABASE_URL=url, MONITOR_DESTINATIONS_FILE=str(destinations),
                   MONITOR_POLL_TICK="0.3", MONITOR_WORKERS="1", MONITOR_CONCURRENCY="4",
                   MONITOR_FETCH_TIMEOUT="2", MONITOR_PARSE_TIMEOUT="2", MONITOR_EXTRACT_TIMEOUT="2",
                   MONITOR_FEED_LEASE="10s", MONITOR_DELIVERY_LEASE="4s")
    procs = []
    for n in range(workers):
        with (tmp_path / f"worker{n}.err").open("wb") as errors:
            procs.append(subprocess.Popen([sys.executable, "-m", "monitor", "worker"], env=env, cwd=tmp_path,
                                          stdout=subprocess.DEVNULL, stderr=errors))
    alerts = FEEDS // 5
    try:
        if kill:  # the first worker dies (no clean-up at all) once the work is under way
            assert _wait(lambda: server.total_hits() >= 30, 90)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(timeout=30)
        assert _wait(lambda: _count(url, "SELECT COUNT(*) FROM entries") == 2 * FEEDS, 120), \
            f"entries stored: {_count(url, 'SELECT COUNT(*) FROM entries')}"
        assert _wait(lambda: len(slack.to(HOOK)) >= alerts, 120), f"alerts: {len(slack.to(HOOK))}"
        time.sleep(2)  # any duplicate would show up now
    finally:
        results = [stop(proc) for proc in procs]
    for n, proc in enumerate(procs):
        if not (kill and n == 0):
            assert proc.returncode == 0, results[n]
    assert site.overlaps == 0, "a feed was fetched by two workers at once"
    hits = [server.hits.get(f"/f/{n}.xml", 0) for n in range(FEEDS)]
    if kill:  # a feed the dead worker had fetched but not stored is fetched again, after its lease ran out
        assert min(hits) == 1 and max(hits) <= 2
    else:
        assert hits == [1] * FEEDS, "a feed was polled twice within its interval"
    assert _count(url, "SELECT COUNT(*) FROM matches") == alerts
    assert _count(url, "SELECT SUM(entries_seen) FROM feeds") == 2 * FEEDS  # each entry processed once
    texts = [body["text"] for _, _, body in slack.to(HOOK)]
    assert len(set(texts)) == alerts  # none lost
    flagged = _count(url, "SELECT COUNT(*) FROM deliveries WHERE possible_duplicate")
    assert len(texts) <= alerts + flagged  # none doubled, beyond a send the dead worker may have made
    if not kill:
        assert len(texts) == alerts and flagged == 0
    assert _count(url, "SELECT COUNT(*) FROM deliveries WHERE status = 'sent'") == alerts
    assert _count(url, "SELECT COUNT(*) FROM feeds WHERE lease_until IS NOT NULL") == 0
