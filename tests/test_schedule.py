"""The polling policy (unit level): interval, learned cadence, <ttl>, Cache-Control, backoff, Retry-After, jitter."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.models import FeedSource
from monitor.pipeline.fetch import parse_max_age
from monitor.pipeline.parse import parse_entries
from monitor.pipeline.schedule import Hints, learn_cadence, next_check, poll_interval
from monitor.settings import Settings

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def wait(when: datetime) -> float:
    return (when - NOW).total_seconds()


def test_explicit_interval_backoff_and_retry_after_capped() -> None:
    s = settings(max_backoff="1h")
    feed = FeedSource(name="f", url="https://e.org/", interval=60)
    no_jitter = dict(rng=lambda: 0.0)
    assert wait(next_check(s, feed, NOW, **no_jitter)) == 60
    assert wait(next_check(s, feed, NOW, errors=2, **no_jitter)) == 240
    assert wait(next_check(s, feed, NOW, errors=1, retry_after=600, **no_jitter)) == 600
    assert wait(next_check(s, feed, NOW, errors=30, **no_jitter)) == 3600  # backoff capped at MONITOR_MAX_BACKOFF
    assert wait(next_check(s, feed, NOW, errors=1, retry_after=10**9, **no_jitter)) == 3600  # Retry-After too
    slow = FeedSource(name="s", url="https://e.org/", interval=7200)  # an interval beyond the cap is kept
    assert wait(next_check(s, slow, NOW, errors=3, **no_jitter)) == 7200


def test_jitter_only_ever_delays_and_by_at_most_a_tenth() -> None:
    feed = FeedSource(name="f", url="https://e.org/", interval=100)
    assert wait(next_check(settings(), feed, NOW, rng=lambda: 0.999)) == pytest.approx(109.99)
    spread = {wait(next_check(settings(), feed, NOW)) for _ in range(50)}
    assert min(spread) >= 100 and max(spread) <= 110 and len(spread) > 1


def test_adaptive_interval_from_cadence_within_bounds() -> None:
    s = settings(poll_min_interval="5m", poll_max_interval="1h", default_interval="15m")
    feed = FeedSource(name="f", url="https://e.org/")
    assert poll_interval(s, feed, Hints()) == 900  # nothing learned yet: the default
    assert poll_interval(s, feed, Hints(cadence=1800)) == 900  # half the cadence
    assert poll_interval(s, feed, Hints(cadence=60)) == 300  # a busy feed: the floor
    assert poll_interval(s, feed, Hints(cadence=86400)) == 3600  # a slow feed: the ceiling
    assert poll_interval(s, FeedSource(name="f", url="https://e.org/", interval=120), Hints(cadence=86400)) == 120


def test_ttl_and_max_age_are_floors_capped_at_max_interval() -> None:
    s = settings(poll_min_interval="5m", poll_max_interval="1h")
    feed = FeedSource(name="f", url="https://e.org/", interval=60)
    assert poll_interval(s, feed, Hints(ttl=1800)) == 1800
    assert poll_interval(s, feed, Hints(max_age=600)) == 600
    assert poll_interval(s, feed, Hints(ttl=10 * 86400, max_age=30)) == 3600
    assert poll_interval(s, feed, Hints(max_age=0)) == 60


def test_learn_cadence_is_the_median_gap_of_recent_entries() -> None:
    hourly = [NOW - timedelta(hours=n) for n in range(10)] + [NOW - timedelta(days=30)]  # one old outlier
    assert learn_cadence(hourly) == 3600
    assert learn_cadence([NOW, NOW, NOW - timedelta(hours=1), None]) is None  # two distinct times: too few
    assert learn_cadence([None, None]) is None
    many = [NOW - timedelta(minutes=10 * n) for n in range(100)] + [NOW - timedelta(days=n) for n in range(30, 60)]
    assert learn_cadence(many) == 600  # only the most recent twenty gaps count


@pytest.mark.parametrize(("header", "seconds"), [
    ("max-age=300", 300), ("public, max-age=600, must-revalidate", 600), ('max-age="120"', 120),
    ("s-maxage=900, max-age=60", 900), ("no-cache, max-age=600", None), ("no-store", None), ("", None),
    (None, None), ("max-age=abc", None), ("max-age=99999999999", None),
])
def test_parse_max_age(header: str | None, seconds: float | None) -> None:
    assert parse_max_age(header) == seconds


@pytest.mark.parametrize(("ttl", "seconds"), [("30", 1800.0), ("0", None), ("-5", None), ("lots", None),
                                             ("99999", None), ("9" * 5000, None), ("١٢", None)])
def test_rss_ttl(ttl: str, seconds: float | None) -> None:
    body = (f"<rss version='2.0'><channel><title>t</title><ttl>{ttl}</ttl>"
            "<item><title>a</title><link>https://e.org/a</link></item></channel></rss>").encode()
    assert parse_entries(body).ttl == seconds


def test_requests_to_one_host_are_spaced(server: Any) -> None:
    import threading

    from support.httpserver import Route

    from monitor.models import Validators
    from monitor.pipeline.fetch import Fetcher

    server.routes["/x"] = Route(b"ok")
    fetcher = Fetcher(user_agent="monitor-test/1", connect_timeout=2, total_timeout=10, max_redirects=5,
                      per_host=4, per_host_delay=0.3)
    threads = [threading.Thread(target=fetcher.fetch_feed, args=(server.url("/x"), Validators(), 1024))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fetcher.close()
    times = sorted(t for _, t in server.times)
    assert len(times) == 4
    assert all(later - earlier >= 0.28 for earlier, later in itertools.pairwise(times)), times


def _hourly_feed(base: str, ttl: str = "") -> bytes:
    from email.utils import format_datetime

    items = "".join(f"<item><title>Story {n}</title><link>{base}/a/{n}</link><guid>g{n}</guid>"
                    f"<pubDate>{format_datetime(NOW - timedelta(hours=n))}</pubDate></item>" for n in range(8))
    return (f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{ttl}{items}"
            "</channel></rss>").encode()


@pytest.mark.both_databases
def test_the_poller_schedules_from_learned_cadence_ttl_and_max_age(server: Any, make_settings: Any) -> None:
    """Wiring: what the policy decides is what the poller stores as the feed's next check."""
    from support.httpserver import Route

    from monitor.service import Service
    from monitor.store import queries

    def scheduled() -> tuple[float, float | None]:
        (row,) = queries.list_feed_rows(service.db)
        assert row.next_check_at is not None and row.last_checked_at is not None
        return (row.next_check_at - row.last_checked_at).total_seconds(), row.cadence

    server.routes["/feed.xml"] = Route(_hourly_feed(server.base), etag='"v1"',
                                       headers={"Cache-Control": "max-age=30"})
    settings = make_settings([{"name": "wire", "url": server.url("/feed.xml"), "fetch_articles": False}],
                             poll_min_interval="1m", poll_max_interval="2h")
    service = Service(settings, inline_workers=True)
    try:
        service.poll_all()
        wait, cadence = scheduled()
        assert cadence == 3600 and 1800 <= wait <= 1980  # half the hourly cadence (+ up to 10% jitter)
        server.routes["/feed.xml"] = Route(_hourly_feed(server.base, "<ttl>60</ttl>"), etag='"v2"')
        service.poll_all()
        assert 3600 <= scheduled()[0] <= 3960  # <ttl>60</ttl>: not before an hour
        server.routes["/feed.xml"].headers = {"Cache-Control": "public, max-age=5400"}
        service.poll_all()  # a 304 that asks for 90 minutes
        assert server.requests[-1][1].get("If-None-Match") == '"v2"'
        assert 5400 <= scheduled()[0] <= 5940
    finally:
        service.close()
