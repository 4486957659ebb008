"""Reliability cases 6, 7, 8, 9, 11 (size, compression, time, transport, conditional GET)."""

from __future__ import annotations

import gzip
import ipaddress
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator

import brotli
import pytest
from support.httpserver import LocalServer, Route

from monitor.errors import BodyTooLarge, FetchTimeout, ParseError, SkipItem, TransportError
from monitor.models import Validators
from monitor.pipeline.fetch import Fetcher
from monitor.service import Service
from monitor.store import queries

MIB = 1024 * 1024


def fetcher(total: float = 5) -> Fetcher:
    return Fetcher(user_agent="monitor-test/1", connect_timeout=2, total_timeout=total, max_redirects=5,
                   per_host=2, allow=[ipaddress.ip_network("127.0.0.1/32")])


def chunked(handler, chunks: Iterator[bytes], headers: dict[str, str] | None = None) -> None:
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    try:
        for chunk in chunks:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass


def measure_peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def assert_aborts_below_twice_the_cap(f: Fetcher, url: str, reason: str, cap: int = 2 * MIB) -> None:
    """The fetch fails with BodyTooLarge and never holds (traced) more than twice the cap."""

    def run() -> None:
        with pytest.raises(BodyTooLarge, match=reason):
            f.fetch_page(url, cap)

    assert measure_peak(run) < 2 * cap


@pytest.mark.parametrize("total_mib", [200, None])
def test_case6_oversized_and_endless_bodies_abort_at_the_cap(server: LocalServer, total_mib: int | None) -> None:
    block = b"x" * 65536

    def blocks() -> Iterator[bytes]:
        sent = 0
        while total_mib is None or sent < total_mib * MIB:
            sent += len(block)
            yield block

    server.routes["/big"] = Route(handler=lambda h: chunked(h, blocks()))
    assert_aborts_below_twice_the_cap(fetcher(total=20), server.url("/big"), "body too large")


def test_case6_declared_length_over_cap_fails_before_reading(server: LocalServer) -> None:
    server.routes["/declared"] = Route(b"x" * (3 * MIB))
    with pytest.raises(BodyTooLarge, match="Content-Length"):
        fetcher().fetch_page(server.url("/declared"), MIB)


def _gzip_bomb(size: int) -> bytes:
    out = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    data = b"".join(out.compress(b"\0" * MIB) for _ in range(size // MIB)) + out.flush()
    return data


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
def test_case7_compression_bombs_stop_at_the_decoded_cap(server: LocalServer, encoding: str) -> None:
    if encoding == "gzip":
        body = _gzip_bomb(50 * MIB)
    elif encoding == "br":
        body = brotli.compress(b"\0" * (50 * MIB), quality=5)
    else:
        body = zlib.compress(b"\0" * (50 * MIB), 9)
    assert len(body) < 200 * 1024
    server.routes["/bomb"] = Route(body, headers={"Content-Encoding": encoding})
    assert_aborts_below_twice_the_cap(fetcher(), server.url("/bomb"), "decoded")


def test_case7_compressed_body_within_cap_is_decoded(server: LocalServer) -> None:
    server.routes["/ok"] = Route(gzip.compress(b"<rss>fine</rss>"), headers={"Content-Encoding": "gzip"})
    assert fetcher().fetch_page(server.url("/ok"), MIB).body == b"<rss>fine</rss>"


def test_case7_unrequested_content_encoding_is_refused(server: LocalServer) -> None:
    server.routes["/zstd"] = Route(b"\x28\xb5\x2f\xfd junk", headers={"Content-Encoding": "zstd"})
    with pytest.raises(SkipItem, match="not requested"):
        fetcher().fetch_page(server.url("/zstd"), MIB)


def _trickle(handler) -> None:
    def slow() -> Iterator[bytes]:
        for _ in range(30):
            time.sleep(1)
            yield b"x"

    chunked(handler, slow())


def test_case8_trickling_server_hits_the_total_deadline(server: LocalServer) -> None:
    server.routes["/slow"] = Route(handler=_trickle)
    started = time.monotonic()
    with pytest.raises(FetchTimeout):
        fetcher(total=2).fetch_page(server.url("/slow"), MIB)
    assert time.monotonic() - started < 3.5


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts TCP connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def test_case8_stalled_feed_does_not_delay_the_others(server: LocalServer, silent_port: int, make_settings) -> None:
    server.routes["/ok.xml"] = Route(b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                                     b"<item><title>hello</title><guid>1</guid></item></channel></rss>")
    settings = make_settings(
        [{"name": "stalled", "url": f"http://127.0.0.1:{silent_port}/feed", "fetch_articles": False},
         {"name": "ok", "url": server.url("/ok.xml"), "fetch_articles": False}],
        fetch_timeout=2,
    )
    service = Service(settings, inline_workers=True)
    try:
        started = time.monotonic()
        summary = service.poll_all()
        assert time.monotonic() - started < 4
        assert summary.feeds_ok == 1 and summary.feeds_failed == 1
        rows = {r.name: r for r in queries.list_feed_rows(service.db)}
        assert rows["stalled"].last_error_class == "timeout"
        assert rows["ok"].last_outcome == "ok"
    finally:
        service.close()


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _reset_mid_body(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.write(b"<rss><channel><item><title>partial")
    handler.wfile.flush()
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    handler.close_connection = True
    handler.wfile.close()
    handler.rfile.close()
    handler.connection.close()  # linger 0: the peer sees a reset in the middle of the body


@pytest.fixture
def garbage_tls_port() -> Iterator[int]:
    """A 'TLS' port that answers the handshake with garbage."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def serve() -> None:
        try:
            conn, _ = sock.accept()
            conn.recv(1024)
            conn.sendall(b"HTTP/1.1 400 not tls\r\n\r\n")
            conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    yield sock.getsockname()[1]
    sock.close()


def test_case9_transport_failures_are_recorded_with_their_class(server: LocalServer, garbage_tls_port: int,
                                                                make_settings) -> None:
    server.routes["/reset"] = Route(handler=_reset_mid_body)
    server.routes["/empty"] = Route(b"")
    server.routes["/good"] = Route(b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                                   b"<item><title>kept</title><guid>1</guid></item></channel></rss>")
    feeds = [
        {"name": "closed", "url": f"http://127.0.0.1:{_closed_port()}/"},
        {"name": "reset", "url": server.url("/reset")},
        {"name": "tls", "url": f"https://127.0.0.1:{garbage_tls_port}/"},
        {"name": "empty", "url": server.url("/empty")},
        {"name": "good", "url": server.url("/good"), "fetch_articles": False},
    ]
    service = Service(make_settings(feeds), inline_workers=True)
    try:
        summary = service.poll_all()
        assert summary.feeds_failed == 4 and summary.feeds_ok == 1
        rows = {r.name: r for r in queries.list_feed_rows(service.db)}
        assert rows["closed"].last_error_class == "transport"
        assert rows["reset"].last_error_class == "transport"
        assert rows["tls"].last_error_class == "transport"
        assert rows["empty"].last_error_class == "parse" and "empty body" in (rows["empty"].last_error or "")
        assert queries.count_rows(service.db)["entries"] == 1  # only the good feed's entry
    finally:
        service.close()


def test_case9_direct_errors() -> None:
    with pytest.raises(TransportError):
        fetcher().fetch_page(f"http://127.0.0.1:{_closed_port()}/", MIB)
    with pytest.raises(ParseError):
        from monitor.pipeline.parse import parse_entries

        parse_entries(b"")


def test_case11_conditional_get_with_last_modified_resets_error_count(server: LocalServer, make_settings) -> None:
    lm = "Wed, 18 Nov 2026 10:00:00 GMT"
    good = Route(b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                 b"<item><title>Tariff talk</title><guid>1</guid><description>tariffs on steel</description>"
                 b"</item></channel></rss>", last_modified=lm)
    server.routes["/f"] = good
    service = Service(make_settings([{"name": "f", "url": server.url("/f"), "fetch_articles": False}]),
                      inline_workers=True)
    try:
        assert service.poll_all().new_matches == 1
        server.routes["/f"] = Route(status=500)
        assert service.poll_all().feeds_failed == 1
        row = queries.list_feed_rows(service.db)[0]
        assert row.consecutive_errors == 1 and row.last_error_class == "http_5xx"
        server.routes["/f"] = good
        again = service.poll_all()
        assert again.feeds_not_modified == 1 and again.new_matches == 0
        assert server.requests[-1][1].get("If-Modified-Since") == lm
        row = queries.list_feed_rows(service.db)[0]
        assert row.consecutive_errors == 0 and row.last_outcome == "not_modified"
        assert queries.count_rows(service.db)["matches"] == 1
    finally:
        service.close()


def test_validators_are_sent_on_conditional_requests(server: LocalServer) -> None:
    server.routes["/v"] = Route(b"body", etag='"abc"')
    f = fetcher()
    first = f.fetch_feed(server.url("/v"), Validators(), MIB)
    assert first.etag == '"abc"' and first.status == 200
    assert f.fetch_feed(server.url("/v"), Validators(etag='"abc"'), MIB).not_modified


def test_transport_serves_httpx_clients(server: LocalServer) -> None:
    """The transport's httpx interface (handle_request over exchange): an httpx.Client can mount it."""
    import httpx

    from monitor.pipeline.netguard import Guard
    from monitor.pipeline.transport import StdlibTransport

    server.routes["/x"] = Route(b"hello", etag='"e1"')
    transport = StdlibTransport(Guard(False).connect, 5.0, 5.0)
    with httpx.Client(transport=transport) as client:
        first = client.get(server.url("/x"))
        again = client.get(server.url("/x"), headers={"If-None-Match": '"e1"'})
    assert (first.status_code, first.content, first.headers["etag"]) == (200, b"hello", '"e1"')
    assert again.status_code == 304 and again.content == b""
