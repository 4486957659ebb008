"""Reliability cases 1, 2, 3, 4, 5 (SSRF and URL tricks) of shared/reliability-cases.md."""

from __future__ import annotations

import ipaddress

import pytest
from support.httpserver import LocalServer, Route

from monitor.errors import BlockedURL
from monitor.pipeline.fetch import Fetcher
from monitor.pipeline.netguard import check_url
from monitor.service import Service
from monitor.store import queries

LOOPBACK_ONE = [ipaddress.ip_network("127.0.0.1/32")]


def fetcher(**kw) -> Fetcher:
    args = dict(user_agent="monitor-test/1", connect_timeout=2, total_timeout=5, max_redirects=5, per_host=2,
                allow=LOOPBACK_ONE)
    args.update(kw)
    return Fetcher(**args)


def feed_with_link(link: str, title: str = "New tariffs on steel") -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>{title}</title><link>{link}</link><guid>g1</guid>"
        "<description>The government imposed new tariffs on imported steel.</description></item>"
        "</channel></rss>"
    ).encode()


def test_case1_ssrf_article_link_is_refused_and_summary_used(server: LocalServer, forbidden_server: LocalServer,
                                                             make_settings) -> None:
    forbidden_server.routes["/secret"] = Route(b"<html><body><p>secret tariff text</p></body></html>")
    server.routes["/feed.xml"] = Route(feed_with_link(forbidden_server.url("/secret")))
    service = Service(make_settings([{"name": "f", "url": server.url("/feed.xml")}]), inline_workers=True)
    try:
        summary = service.poll_all()
        assert summary.feeds_ok == 1 and summary.new_matches == 1
        assert forbidden_server.total_hits() == 0
        (match,) = queries.list_matches(service.db)
        assert match.rule == "tariff" and match.text_source == "summary"
        from sqlmodel import select

        from monitor.store.tables import ArticleRow

        with service.db.read() as session:
            article = session.exec(select(ArticleRow)).one()
        assert "blocked non-public address" in (article.extract_error or "")
    finally:
        service.close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_case2_redirect_to_private_address_is_refused(status: int, server: LocalServer,
                                                      forbidden_server: LocalServer) -> None:
    server.routes["/go"] = Route(status=status, headers={"Location": forbidden_server.url("/")})
    f = fetcher()
    with pytest.raises(BlockedURL, match="non-public"):
        f.fetch_page(server.url("/go"), 1 << 20)
    assert forbidden_server.total_hits() == 0


def test_case2_operator_feed_redirect_hop_is_untrusted(server: LocalServer, forbidden_server: LocalServer) -> None:
    # No allow-list at all: the operator's feed URL on loopback is fetched, its redirect hop is not.
    server.routes["/feed"] = Route(status=302, headers={"Location": forbidden_server.url("/feed")})
    f = fetcher(allow=[])
    from monitor.models import Validators

    with pytest.raises(BlockedURL):
        f.fetch_feed(server.url("/feed"), Validators(), 1 << 20)
    assert server.hits["/feed"] == 1 and forbidden_server.total_hits() == 0


def test_case2_relative_redirect_loop_stops_at_max_hops(server: LocalServer) -> None:
    server.routes["/loop"] = Route(status=302, headers={"Location": "/loop"})
    with pytest.raises(BlockedURL, match="too many redirects"):
        fetcher().fetch_page(server.url("/loop"), 1 << 20)
    assert server.hits["/loop"] == 6  # first request + 5 redirects, never more


def test_case2_relative_redirect_is_followed(server: LocalServer) -> None:
    server.routes["/old"] = Route(status=301, headers={"Location": "new?x=1"})
    server.routes["/new?x=1"] = Route(b"hello")
    result = fetcher().fetch_page(server.url("/old"), 1 << 20)
    assert result.body == b"hello" and result.redirects == 1 and result.final_url.endswith("/new?x=1")


def test_case3_dns_rebinding_connects_only_to_the_validated_address(server: LocalServer,
                                                                    forbidden_server: LocalServer) -> None:
    port = server.server_address[1]
    forbidden_server.routes["/"] = Route(b"secret")
    server.routes["/"] = Route(b"public")
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]])
    f = fetcher(resolver=lambda host, p: next(answers))
    assert f.fetch_page(f"http://rebind.test:{port}/", 1 << 20).body == b"public"
    f.close()  # force a new connection, so a new lookup
    f2 = fetcher(resolver=lambda host, p: next(answers))
    with pytest.raises(BlockedURL):
        f2.fetch_page(f"http://rebind.test:{port}/", 1 << 20)
    assert forbidden_server.total_hits() == 0


@pytest.mark.parametrize("host", ["0177.0.0.2", "0x7f.0.0.2", "2130706434", "127.1", "[::ffff:127.0.0.2]",
                                  "[::1]", "0.0.0.0", "0x7f000002", "127.0.0.2."])
def test_case4_ip_literal_tricks_are_refused_before_connect(host: str, forbidden_server: LocalServer) -> None:
    port = forbidden_server.server_address[1]
    with pytest.raises(BlockedURL):
        fetcher().fetch_page(f"http://{host}:{port}/", 1 << 20)
    assert forbidden_server.total_hits() == 0


def test_case5_odd_urls_are_refused_without_io(server: LocalServer, forbidden_server: LocalServer, tmp_path) -> None:
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("SENTINEL-CONTENT")
    p, q = forbidden_server.server_address[1], server.server_address[1]
    urls = [
        f"http://127.0.0.2:{p}\\@127.0.0.1:{q}/",
        f"http://user:pw@127.0.0.1:{q}/",
        f"http://127.0.0.2:{p}@127.0.0.1:{q}/",
        f"file://{sentinel}",
        f"ftp://127.0.0.1:{q}/x",
        f"gopher://127.0.0.1:{q}/x",
        "data:text/html,<p>hi</p>",
        "javascript:alert(1)",
        f"http://127.0.0.1:{q}/a b",
    ]
    for url in urls:
        with pytest.raises(BlockedURL):
            check_url(url)
        with pytest.raises(BlockedURL):
            fetcher().fetch_page(url, 1 << 20)
    assert server.total_hits() == 0 and forbidden_server.total_hits() == 0
