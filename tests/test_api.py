"""The HTTP API as a user meets it: a real `monitor serve` (and `monitor run`) process on 127.0.0.1 over a
database filled by a real poll, asked with httpx. Reliability cases 37-42."""

from __future__ import annotations

import html
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import write_feeds
from prometheus_client.parser import text_string_to_metric_families
from support.httpserver import LocalServer, Route
from support.proc import stop as _stop
from support.site import article_page, load_articles, rss
from test_cli import base_env, monitor

TOKEN = "test-token-0123456789abcdef"


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, env: dict[str, str], tmp: Path) -> None:
        self.proc, self.url, self.env, self.tmp = proc, url, env, tmp

    def get(self, path: str, token: str | None = TOKEN, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, token, **kwargs)

    def request(self, method: str, path: str, token: str | None = TOKEN, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


def _start(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str, str]:
    """Start a `monitor` command that serves; return it, the URL it announced and the announcement."""
    proc = subprocess.Popen([sys.executable, "-m", "monitor", *args], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        found = re.search(r"web page and API: (http://[0-9.:]+)", line)
        if found:
            return proc, found.group(1), line
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"no announcement: {proc.communicate()[1][-2000:]}")


HOSTILE = {"id": "xss", "title": html.escape("<script>alert(1)</script> tariffs on steel"), "lang": "en",
           "text": "Washington imposed 25% tariffs on steel imports."}


def _polled(server: LocalServer, tmp: Path, poll: bool = True, **extra: str) -> dict[str, str]:
    articles = [*load_articles(), HOSTILE]
    for article in articles[:-1]:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles, server.base))
    feeds = write_feeds(tmp / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
    env = base_env(tmp, feeds, MONITOR_API_TOKEN=TOKEN, **extra)
    if poll:
        assert monitor(["poll", "--once"], env, tmp, timeout=300).returncode == 0
    return env


@contextmanager
def serving(tmp: Path, **extra: str) -> Iterator[Served]:
    """A site polled into a database under ``tmp`` and `monitor serve` over it, for the whole block."""
    server = LocalServer("127.0.0.1").start()
    try:
        env = _polled(server, tmp, MONITOR_API_RATE_LIMIT="1000000", **extra)
        proc, url, _ = _start(["serve", "--port", "0"], env, tmp)
        try:
            yield Served(proc, url, env, tmp)
        finally:
            assert TOKEN not in _stop(proc)  # case 37: the token is never logged
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("api")) as running:
        yield running


def _db(served: Served) -> sqlite3.Connection:
    return sqlite3.connect(served.tmp / "data" / "monitor.db")


def test_case_37_every_route_needs_the_token_but_healthz(served: Served) -> None:
    schema = served.get("/openapi.json").json()
    routes = [(method.upper(), p.replace("{match_id}", "1")) for p, item in schema["paths"].items() for method in item]
    routes += [("GET", "/openapi.json"), ("GET", "/docs")]
    assert {"/api/matches", "/api/rules", "/api/feeds", "/api/deliveries", "/readyz", "/metrics",
            "/api/judgements", "/api/judgements/missed", "/api/matches/1/judgement"} <= {p for _, p in routes}
    for method, path in routes:
        expected = 200 if path == "/healthz" else 401
        body = {"json": {}} if method == "POST" else {}
        assert served.request(method, path, None, **body).status_code == expected, path
        assert served.request(method, path, "wrong-token-but-long-enough", **body).status_code == expected, path
        assert served.request(method, path, None, cookies={"monitor_token": "nope"}, **body).status_code == expected
        # signed in: 404 where match 1 may not exist, 422 for the empty body of a POST
        assert served.request(method, path, **body).status_code in ((422,) if body else (200, 404)), path
    assert served.get("/healthz", token=None).json() == {"status": "ok", "checks": {}}


def test_matches_filtered_and_paged_with_a_cursor(served: Served) -> None:
    with _db(served) as conn:
        tariff = [i for (i,) in conn.execute("SELECT id FROM matches WHERE rule_id = 'tariff' "
                                             "ORDER BY matched_at DESC, id DESC")]
    assert len(tariff) >= 3
    first = served.get("/api/matches", params={"rule": "tariff", "limit": 2}).json()
    assert [m["id"] for m in first["items"]] == tariff[:2] and first["next_cursor"]
    seen, cursor = [], None
    while True:  # every tariff match once, newest first, through the cursors
        page = served.get("/api/matches", params={"rule": "tariff", "limit": 2, **({"cursor": cursor} if cursor
                                                                                   else {})}).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == tariff
    item = first["items"][0]
    assert item["rule"] == "tariff" and item["explanation"]["hits"] and item["feed"] == "wire"

    everything = served.get("/api/matches", params={"limit": 200}).json()["items"]
    korean = served.get("/api/matches", params={"lang": "ko", "limit": 200}).json()["items"]
    assert korean and all(m["lang"].startswith("ko") for m in korean) and len(korean) < len(everything)
    word = "관세"  # text search in Korean
    found = served.get("/api/matches", params={"q": word, "limit": 200}).json()["items"]
    assert found and all(m["lang"].startswith("ko") for m in found)
    assert served.get("/api/matches", params={"feed": "elsewhere"}).json()["items"] == []
    assert len(served.get("/api/matches", params={"feed": "wire", "limit": 200}).json()["items"]) == len(everything)
    assert served.get("/api/matches", params={"severity": "digest"}).json()["items"] == []
    newest = everything[0]["matched_at"]
    assert served.get("/api/matches", params={"since": newest, "limit": 200}).json()["items"]
    assert served.get("/api/matches", params={"until": everything[-1]["matched_at"]}).json()["items"] == []


def test_one_match_with_every_rule_its_article_matched(served: Served) -> None:
    with _db(served) as conn:
        match_id, article_id = conn.execute("SELECT MIN(id), article_id FROM matches GROUP BY article_id "
                                            "ORDER BY COUNT(*) DESC LIMIT 1").fetchone()
        rules = {r for (r,) in conn.execute("SELECT rule_id FROM matches WHERE article_id = ?", (article_id,))}
    body = served.get(f"/api/matches/{match_id}").json()
    assert body["article_id"] == article_id and {m["rule"] for m in body["matches"]} == rules
    assert body["text"] and all(m["explanation"]["snippet"] for m in body["matches"])
    assert served.get("/api/matches/999999").status_code == 404
    assert served.get("/api/matches/abc").status_code == 422


def test_rules_feeds_and_deliveries(served: Served) -> None:
    rules = {r["id"]: r for r in served.get("/api/rules").json()}
    assert set(rules) == {"export-control", "fta-round", "tariff", "trilateral-summit"}
    assert rules["tariff"]["matches"] >= 3 and rules["tariff"]["last_match"]
    feeds = served.get("/api/feeds").json()
    assert [(f["name"], f["health"], f["last_status"]) for f in feeds] == [("wire", "ok", 200)]
    rows = served.get("/api/deliveries", params={"status": "pending", "limit": 200}).json()
    with _db(served) as conn:
        assert len(rows) == conn.execute("SELECT COUNT(*) FROM deliveries WHERE status='pending'").fetchone()[0] > 0
    assert rows[0]["destination"] == "console" and rows[0]["rules"]
    assert served.get("/api/deliveries", params={"status": "lost"}).status_code == 422


@pytest.mark.parametrize("params", [
    {"limit": "100000"}, {"limit": "-1"}, {"limit": "abc"}, {"cursor": "not-a-cursor"}, {"cursor": "x" * 500},
    {"since": "notadate"}, {"since": "2026-11-20T08:00:00"}, {"lang": "<script>"}, {"severity": "urgent"},
    {"q": "x" * 500}])
def test_case_38_bad_parameters_answer_422_never_500(served: Served, params: dict[str, str]) -> None:
    response = served.get("/api/matches", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_case_38_unknown_parameters_are_ignored_not_run(served: Served) -> None:
    assert served.get("/api/matches", params={"sort": "id;drop table matches"}).status_code == 200
    with _db(served) as conn:
        assert conn.execute("SELECT COUNT(*) FROM matches").fetchone()[0] > 0


def test_case_39_untrusted_text_is_json_never_html(served: Served) -> None:
    found = served.get("/api/matches", params={"q": "<script>", "limit": 5})
    assert found.headers["content-type"].startswith("application/json")
    assert found.headers["x-content-type-options"] == "nosniff"
    assert found.json()["items"][0]["title"] == "<script>alert(1)</script> tariffs on steel"
    bad = served.get("/api/matches", params={"lang": "<img src=x onerror=alert(1)>"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/json")


def test_case_40_no_cors_unless_configured(served: Served) -> None:
    preflight = httpx.options(served.url + "/api/matches", headers={
        "Origin": "http://evil.test", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers
    plain = served.get("/api/matches", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in plain.headers


def test_readyz_and_metrics(served: Served) -> None:
    assert served.get("/readyz").json() == {"status": "ok", "checks": {"database": "ok"}}
    text = served.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    with _db(served) as conn:
        per_rule = dict(conn.execute("SELECT rule_id, COUNT(*) FROM matches GROUP BY rule_id"))
    assert {s.labels["rule"]: s.value for s in families["monitor_matches"].samples} == per_rule
    assert families["monitor_feeds"].samples[0].labels == {"outcome": "ok"}
    assert {"monitor_articles", "monitor_entries", "monitor_deliveries", "monitor_stage_seconds",
            "monitor_polls", "monitor_fetches"} <= set(families)


def test_case_41_a_flood_gets_429_and_health_checks_still_answer(server: LocalServer, tmp_path: Path) -> None:
    server.routes["/feed.xml"] = Route(rss([], server.base))
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
    env = base_env(tmp_path, feeds, MONITOR_API_TOKEN=TOKEN, MONITOR_API_RATE_LIMIT="60")
    proc, url, _ = _start(["serve", "--port", "0"], env, tmp_path)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            codes = [client.get("/api/rules").status_code for _ in range(500)]
            limited = client.get("/api/rules")
            health = [client.get("/healthz").status_code for _ in range(50)]
    finally:
        _stop(proc)
    assert codes[:60] == [200] * 60 and codes.count(429) >= 400
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert health == [200] * 50


def test_case_42_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    env = base_env(tmp_path, tmp_path / "feeds.yaml")
    refused = monitor(["serve", "--host", "0.0.0.0", "--port", "0"], env, tmp_path)
    assert refused.returncode == 2 and "refusing to serve the API on 0.0.0.0 without a token" in refused.stderr
    short = monitor(["serve", "--port", "0"], dict(env, MONITOR_API_TOKEN="short"), tmp_path)
    assert short.returncode == 2 and "MONITOR_API_TOKEN" in short.stderr and "16 characters" in short.stderr


def test_monitor_run_serves_the_api_with_a_token_made_for_the_run(server: LocalServer, tmp_path: Path) -> None:
    env = _polled(server, tmp_path, poll=False, MONITOR_POLL_TICK="1")
    del env["MONITOR_API_TOKEN"]
    write_feeds(Path(env["MONITOR_FEEDS_FILE"]), [{"name": "wire", "url": server.url("/feed.xml")},
                                                  {"name": "gone", "url": server.url("/gone.xml")}])
    proc, url, announcement = _start(["run"], env, tmp_path)
    try:
        login = re.search(r"/login\?token=(\S+)", announcement)
        assert login
        token = login.group(1)
        assert httpx.get(url + "/api/rules").status_code == 401
        with httpx.Client(base_url=url) as browser:  # a browser: the login link leaves a cookie
            first = browser.get(f"/login?token={token}")
            assert first.status_code == 303 and "httponly" in first.headers["set-cookie"].lower()
            assert browser.get("/api/rules").status_code == 200
        assert httpx.get(url + "/login?token=wrong").status_code == 401
        ready = httpx.get(url + "/readyz", headers={"Authorization": f"Bearer {token}"}).json()
        assert ready == {"status": "ok", "checks": {"database": "ok", "scheduler": "ok"}}
        deadline, polls = time.monotonic() + 120, 0.0
        while polls < 1 and time.monotonic() < deadline:  # the first poll round, seen in /metrics
            text = httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"}).text
            polls = {f.name: f for f in text_string_to_metric_families(text)}["monitor_polls"].samples[0].value
            time.sleep(0.5)
        assert polls >= 1
        stages = {s.labels["stage"] for s in {f.name: f for f in text_string_to_metric_families(text)}[
            "monitor_stage_seconds"].samples if s.name.endswith("_count")}
        assert {"fetch_feed", "parse", "fetch_page", "extract_match", "store", "poll"} <= stages
        fetches = {(x.labels["outcome"], x.labels["error_class"]): x.value for x in {
            f.name: f for f in text_string_to_metric_families(text)}["monitor_fetches"].samples
            if x.name.endswith("_total")}
        assert fetches[("ok", "")] >= 1 and fetches[("failed", "http_4xx")] >= 1
    finally:
        stderr = _stop(proc)
    assert proc.returncode == 0 and token not in stderr


def test_monitor_run_goes_on_without_the_api_when_its_port_is_taken(server: LocalServer, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        env = _polled(server, tmp_path, poll=False, MONITOR_POLL_TICK="1",
                      MONITOR_API_PORT=str(taken.getsockname()[1]))
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert "the API and web page are not served: cannot serve the API on 127.0.0.1" in first
            deadline = time.monotonic() + 120
            stored = 0
            while stored == 0 and time.monotonic() < deadline:  # polling goes on
                time.sleep(0.5)
                try:
                    with sqlite3.connect(tmp_path / "data" / "monitor.db") as conn:
                        stored = conn.execute("SELECT COUNT(*) FROM matches").fetchone()[0]
                except sqlite3.OperationalError:
                    pass
            assert stored > 0 and proc.poll() is None
        finally:
            stderr = _stop(proc)
    assert "event=api_not_served" in stderr


@pytest.mark.both_databases
def test_api_web_page_and_metrics_on_either_database(server: LocalServer, tmp_path: Path, database_url: str) -> None:
    """The same pages and answers from SQLite and PostgreSQL (MONITOR_TEST_POSTGRES_URL)."""
    env = _polled(server, tmp_path, MONITOR_DATABASE_URL=database_url, MONITOR_API_RATE_LIMIT="1000000")
    proc, url, _ = _start(["serve", "--port", "0"], env, tmp_path)
    try:
        served = Served(proc, url, env, tmp_path)
        first = served.get("/api/matches?limit=5").json()
        assert len(first["items"]) == 5 and first["next_cursor"]
        older = served.get("/api/matches", params={"limit": 5, "cursor": first["next_cursor"]}).json()
        assert older["items"] and {m["id"] for m in older["items"]}.isdisjoint(m["id"] for m in first["items"])
        korean = served.get("/api/matches", params={"q": "관세"}).json()["items"]
        assert korean and all(m["rule"] == "tariff" for m in korean)
        one = served.get(f"/api/matches/{first['items'][0]['id']}").json()
        assert one["matches"][0]["explanation"]["hits"]
        assert [(f["name"], f["health"]) for f in served.get("/api/feeds").json()] == [("wire", "ok")]
        assert served.get("/readyz").status_code == 200
        page = served.get("/")
        assert page.status_code == 200 and "&lt;script&gt;alert(1)" in page.text and "<script>alert" not in page.text
        assert 'monitor_matches{rule="tariff"}' in served.get("/metrics").text
    finally:
        assert TOKEN not in _stop(proc)
