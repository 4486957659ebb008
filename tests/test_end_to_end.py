"""End to end: real HTTP on 127.0.0.1 serving a feed of real articles; poll, check, re-poll."""

from __future__ import annotations

import pytest
from support.httpserver import LocalServer, Route
from support.site import article_page, load_articles, load_labels, rss

from monitor.service import Service
from monitor.store import queries

RULES = ("trilateral-summit", "fta-round", "export-control", "tariff")


def serve_site(server: LocalServer) -> list[dict[str, str]]:
    articles = load_articles()
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article),
                                                          headers={"Content-Type": "text/html; charset=utf-8"})
    server.routes["/feed.xml"] = Route(rss(articles, server.base), etag='"v1"',
                                      headers={"Content-Type": "application/rss+xml"})
    return articles


@pytest.mark.both_databases
def test_poll_stores_expected_matches_then_repoll_is_all_304(server: LocalServer, make_settings) -> None:
    articles = serve_site(server)
    settings = make_settings([{"name": "wire", "url": server.url("/feed.xml")}])
    service = Service(settings)
    try:
        first = service.poll_all()
        assert (first.feeds_ok, first.feeds_failed, first.new_entries) == (1, 0, len(articles))
        stored = queries.list_matches(service.db, limit=1000)
        got = {(m.url.rsplit("/", 1)[1].removesuffix(".html"), m.rule) for m in stored if m.url}
        labels = load_labels()
        for article in articles:
            for rule in RULES:
                if rule in labels[article["id"]].get("unsure", []):
                    continue
                if labels[article["id"]][rule]:
                    assert (article["id"], rule) in got, f"missed {rule} on {article['id']}"
        for match in stored:
            assert match.text_source == "extracted"
            assert match.explanation["hits"] and match.explanation["snippet"]
            assert match.feed == "wire"
        counts = queries.count_rows(service.db)
        hits_before = server.total_hits()

        second = service.poll_all()
        assert (second.feeds_not_modified, second.new_entries, second.new_matches) == (1, 0, 0)
        assert server.total_hits() == hits_before + 1  # one conditional GET, no page refetch
        assert server.requests[-1][1].get("If-None-Match") == '"v1"'
        assert queries.count_rows(service.db) == counts
    finally:
        service.close()
