"""Dedupe: canonical URLs, entry keys, and reliability case 19 (identity edge cases) end to end."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.httpserver import LocalServer, Route

from monitor.pipeline.dedupe import canonical_url, entry_key
from monitor.service import Service
from monitor.store import queries


@pytest.mark.parametrize(("url", "expected"), [
    ("HTTPS://Example.COM:443/a?utm_source=x&id=3&fbclid=abc#frag", "https://example.com/a?id=3"),
    ("http://example.com:80", "http://example.com/"),
    ("http://example.com:8080/p?gclid=1&utm_medium=m", "http://example.com:8080/p"),
    ("https://news.example/x?b=2&a=1", "https://news.example/x?b=2&a=1"),
    (" https://example.com/x ", "https://example.com/x"),
])
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_entry_key_prefers_guid_then_url_then_title_and_date() -> None:
    when = datetime(2026, 11, 1, tzinfo=UTC)
    assert entry_key(" g-1 ", "http://x/a", "t", when) == ("guid:g-1", "guid")
    assert entry_key(None, "HTTP://X/a?utm_source=z", "t", when) == ("url:http://x/a", "url")
    key, kind = entry_key(None, None, "Title", when)
    assert kind == "title_date" and key == entry_key("", "", "Title", when)[0]
    assert key != entry_key(None, None, "Title", None)[0]


def rss(items: list[tuple[str | None, str | None, str]]) -> bytes:
    parts = []
    for guid, link, title in items:
        parts.append("<item>" + (f"<guid>{guid}</guid>" if guid else "") + (f"<link>{link}</link>" if link else "")
                     + f"<title>{title}</title><description>{title} tariffs on steel</description></item>")
    return ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>' + "".join(parts)
            + "</channel></rss>").encode()


def poll(service: Service):  # type: ignore[no-untyped-def]
    return service.poll_all()


@pytest.mark.both_databases
def test_case19_identity_edge_cases(server: LocalServer, make_settings) -> None:
    base = "http://news.invalid"  # links are never fetched: fetch_articles is off
    server.routes["/f"] = Route(rss([("dup", f"{base}/1", "Tariff one"), ("dup", f"{base}/1", "Tariff one again"),
                                     (None, f"{base}/2?utm_source=rss", "Tariff two")]))
    service = Service(make_settings([{"name": "f", "url": server.url("/f"), "fetch_articles": False}]),
                      inline_workers=True)
    try:
        first = poll(service)
        assert (first.new_entries, first.new_matches) == (2, 2)  # duplicate GUID inside the feed counts once
        # same GUID, edited title; link-only entry with a different tracking parameter
        server.routes["/f"] = Route(rss([("dup", f"{base}/1", "Tariff one (updated)"),
                                         (None, f"{base}/2?utm_source=email", "Tariff two")]))
        second = poll(service)
        assert (second.new_entries, second.new_matches) == (0, 0)
        # GUID changes on every poll while the URL stays the same: no new entry, flagged
        for n in range(3):
            server.routes["/f"] = Route(rss([(f"rotating-{n}", f"{base}/1", "Tariff one"),
                                             (f"rot2-{n}", f"{base}/2", "Tariff two")]))
            churn = poll(service)
            assert (churn.new_entries, churn.new_matches) == (0, 0)
        row = queries.list_feed_rows(service.db)[0]
        assert row.guid_churn == 6 and "changed GUID" in (row.last_warning or "")
        counts = queries.count_rows(service.db)
        assert counts["entries"] == 2 and counts["matches"] == 2
    finally:
        service.close()


@pytest.mark.both_databases
def test_article_from_two_feeds_is_stored_once_with_both_sources(server: LocalServer, make_settings) -> None:
    page = b"<html><body><article><p>" + b"Seoul imposed new tariffs on imported steel this week. " * 5 + \
           b"</p></article></body></html>"
    server.routes["/story"] = server.routes["/story?utm_campaign=a"] = Route(page)
    server.routes["/a"] = Route(rss([("a-1", server.url("/story?utm_campaign=a"), "Steel tariffs")]))
    server.routes["/b"] = Route(rss([("b-9", server.url("/story#top"), "Steel tariffs (B)")]))
    service = Service(make_settings([{"name": "feed-a", "url": server.url("/a")},
                                     {"name": "feed-b", "url": server.url("/b")}]), inline_workers=True)
    try:
        service.poll_all()
        counts = queries.count_rows(service.db)
        assert counts["entries"] == 2 and counts["articles"] == 1 and counts["matches"] == 1
        (match,) = queries.list_matches(service.db)
        assert set(match.feeds) == {"feed-a", "feed-b"}
        fetched = server.hits.get("/story", 0) + server.hits.get("/story?utm_campaign=a", 0)
        assert 1 <= fetched <= 2  # both feeds may race for the page; never more
        assert match.text_source == "extracted"
        service.poll_all()
        assert queries.count_rows(service.db) == counts
    finally:
        service.close()


def test_outcome_writer_survives_a_database_refusal(make_settings, monkeypatch, caplog) -> None:
    from monitor.pipeline.run import OutcomeBatch
    from monitor.store.db import Database
    from monitor.store.queries import FeedOutcome

    def refuse(db, batch, pause_after=0):  # type: ignore[no-untyped-def]
        raise RuntimeError("database or disk is full")

    monkeypatch.setattr(queries, "record_outcomes", refuse)
    settings = make_settings([])
    batch = OutcomeBatch(Database(settings.database_url), size=1)
    now = datetime.now(UTC)
    batch.add(1, FeedOutcome(now, now, 304, "not_modified"))
    batch.flush()  # returns: the failure is logged, the feed keeps its old state and is polled again
    assert "outcomes_not_recorded" in caplog.text
