"""Reliability cases 13, 14, 15, 17, 18 (entity expansion, XXE, ReDoS, input confusion, garbage)."""

from __future__ import annotations

import json
import time

import pytest
from sqlmodel import select
from support.httpserver import LocalServer, Route

from monitor.errors import ParseError, WorkTimeout
from monitor.pipeline.parse import FieldCaps, parse_entries
from monitor.pipeline.workers import WorkerPool
from monitor.service import Service
from monitor.store import queries
from monitor.store.tables import ArticleRow, EntryRow

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
]>
<rss version="2.0"><channel><title>&lol6;</title>
<item><title>&lol6;</title><guid>1</guid><description>&lol6;</description></item></channel></rss>"""

# A 5-level payload whose DOCTYPE sits on the XML declaration's line (slips past feedparser's stripper).
ONE_LINE = (
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
    b'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;'
    b'&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>'
    b'<rss version="2.0"><channel><title>x</title><item><title>&e;</title><guid>1</guid>'
    b"<description>&e;</description></item></channel></rss>"
)


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, ONE_LINE], ids=["multi-line", "one-line-doctype"])
def test_case13_entity_expansion_is_neutralised(payload: bytes) -> None:
    caps = FieldCaps(title=1000, summary=65536, entries=500)
    started = time.monotonic()
    try:
        parsed = parse_entries(payload, caps)
    except ParseError:
        return  # rejected outright is a pass too
    assert time.monotonic() - started < 1
    for entry in parsed.entries:
        assert len(entry.title) <= caps.title and len(entry.summary) <= caps.summary
        assert "lollollol" not in entry.title and "aaaa" * 50 not in entry.summary


def test_case14_xxe_never_reads_the_local_file(tmp_path, server: LocalServer, make_settings) -> None:
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("XXE-SENTINEL-7f3a")
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{sentinel}">]>'
        '<rss version="2.0"><channel><title>t</title><item><title>Tariff &xxe;</title><guid>1</guid>'
        "<description>tariffs &xxe; on steel</description></item></channel></rss>"
    ).encode()
    server.routes["/x"] = Route(body)
    service = Service(make_settings([{"name": "x", "url": server.url("/x"), "fetch_articles": False}]),
                      inline_workers=True)
    try:
        service.poll_all()
        with service.db.read() as session:
            dump = json.dumps([r.model_dump(mode="json") for r in session.exec(select(ArticleRow))])
            dump += json.dumps([r.model_dump(mode="json") for r in session.exec(select(EntryRow))])
        dump += json.dumps([m.as_dict() for m in queries.list_matches(service.db)])
        assert "XXE-SENTINEL" not in dump
    finally:
        service.close()


def redos_feed(items: int = 10) -> bytes:
    author = "a" * 32768
    entries = "".join(f"<item><title>t{i}</title><guid>{i}</guid><author>{author}</author></item>"
                      for i in range(items))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>{entries}</channel></rss>'.encode()


def test_case15_redos_parse_is_killed_at_the_wall_clock_limit() -> None:
    pool = WorkerPool(1)
    try:
        started = time.monotonic()
        with pytest.raises(WorkTimeout, match="wall-clock"):
            pool.run(parse_entries, redos_feed(), FieldCaps(), timeout=1.5)
        assert time.monotonic() - started < 6  # includes spawning the worker
        # the replacement worker serves the next feed
        ok = pool.run(parse_entries, b'<rss version="2.0"><channel><item><guid>1</guid></item></channel></rss>',
                      FieldCaps(), timeout=10)
        assert len(ok.entries) == 1
    finally:
        pool.close()


def test_case15_redos_feed_is_marked_failed_and_others_are_polled(server: LocalServer, make_settings) -> None:
    server.routes["/redos"] = Route(redos_feed())
    server.routes["/ok"] = Route(b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                                 b"<item><title>ok</title><guid>1</guid></item></channel></rss>")
    settings = make_settings([{"name": "redos", "url": server.url("/redos")},
                              {"name": "ok", "url": server.url("/ok"), "fetch_articles": False}],
                             parse_timeout=1.5, workers=2)
    service = Service(settings)
    try:
        summary = service.poll_all()
        assert summary.feeds_failed == 1 and summary.feeds_ok == 1
        rows = {r.name: r for r in queries.list_feed_rows(service.db)}
        assert rows["redos"].last_error_class == "worker_timeout"
        assert rows["ok"].entries_seen == 1
    finally:
        service.close()


def test_case17_body_that_looks_like_a_path_or_url_is_parsed_as_bytes(tmp_path, server: LocalServer,
                                                                      forbidden_server: LocalServer,
                                                                      make_settings) -> None:
    local = tmp_path / "local-feed.xml"
    local.write_text('<rss version="2.0"><channel><item><title>LOCAL-FILE-READ</title><guid>1</guid></item>'
                     "</channel></rss>")
    forbidden_server.routes["/"] = Route(b'<rss version="2.0"><channel><item><title>REMOTE</title></item>'
                                         b"</channel></rss>")
    server.routes["/path"] = Route(str(local).encode())
    server.routes["/url"] = Route(forbidden_server.url("/").encode())
    service = Service(make_settings([{"name": "path", "url": server.url("/path")},
                                     {"name": "url", "url": server.url("/url")}]), inline_workers=True)
    try:
        summary = service.poll_all()
        assert summary.feeds_failed == 2
        assert forbidden_server.total_hits() == 0
        assert queries.count_rows(service.db)["entries"] == 0
    finally:
        service.close()


GARBAGE = {
    "html": b"<!DOCTYPE html><html><head><title>Not a feed</title></head><body><p>tariff</p></body></html>",
    "truncated": b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>Tariff cut',
    "truncated-after-one": b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    b"<item><title>Weather</title><guid>1</guid></item><item><title>Tariff cut",
    "nul": b"\x00\x00\x00\x00<rss>\x00</rss>",
    "empty": b"",
    "json": b'{"hello": "world", "items": [1, 2, 3]}',
    "binary": bytes(range(256)) * 8,
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_case18_garbage_feeds_fail_cleanly_with_no_partial_matches(kind: str, server: LocalServer,
                                                                   make_settings) -> None:
    server.routes["/g"] = Route(GARBAGE[kind])
    service = Service(make_settings([{"name": "g", "url": server.url("/g"), "fetch_articles": False}]),
                      inline_workers=True)
    try:
        summary = service.poll_all()
        rows = queries.list_feed_rows(service.db)
        if summary.feeds_failed:
            assert rows[0].last_error_class == "parse" and rows[0].last_error
        else:  # bozo with entries: used, warning recorded
            assert rows[0].last_warning
        assert queries.count_rows(service.db)["matches"] == 0
    finally:
        service.close()


def test_case18_wrong_charset_feed_is_used_with_a_warning() -> None:
    body = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
            "<item><title>Zölle auf Stahl</title><guid>1</guid></item></channel></rss>").encode("latin-1")
    parsed = parse_entries(body)
    assert parsed.warning and len(parsed.entries) == 1
