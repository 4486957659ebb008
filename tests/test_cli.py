"""The acceptance path, run the way a user runs it: `monitor` as a subprocess against feeds on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import write_feeds
from support.httpserver import LocalServer, Route
from support.site import article_page, load_articles, rss
from test_reliability_fetch import _closed_port, _trickle
from test_reliability_parse import redos_feed

ROOT = Path(__file__).parent.parent


def monitor(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


def base_env(tmp_path: Path, feeds_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update({
        "MONITOR_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'monitor.db'}",
        "MONITOR_FEEDS_FILE": str(feeds_file),
        "MONITOR_RULES_DIR": str(ROOT / "rules"),
        "MONITOR_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32",
        "MONITOR_WORKERS": "2",
        "PYTHONPATH": str(ROOT),
        "MONITOR_API_PORT": "0",  # `monitor run` serves the API: on any free port, never a fixed one
        "MONITOR_PER_HOST_DELAY": "0",  # every test server is 127.0.0.1; spacing has its own test
    })
    env.update(extra)
    return env


def test_poll_once_matches_json_and_conditional_repoll(server: LocalServer, tmp_path: Path) -> None:
    articles = load_articles()
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles, server.base), etag='"e1"',
                                      last_modified="Fri, 20 Nov 2026 08:00:00 GMT")
    env = base_env(tmp_path, write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}]))

    first = monitor(["poll", "--once"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"feeds ok: 1  not modified: 0  failed: 0  new entries: {len(articles)}" in first.stdout

    listed = monitor(["matches", "--json", "--limit", "200"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["rule"] for r in rows} == {"trilateral-summit", "fta-round", "export-control", "tariff"}
    for row in rows:
        assert {"id", "rule", "title", "url", "feed", "published", "matched_at", "explanation"} <= set(row)
        assert row["explanation"]["hits"] and row["explanation"]["snippet"] and row["feed"] == "wire"
    seed0 = {r["rule"] for r in rows if r["url"].endswith("/seed-000.html")}
    assert {"trilateral-summit", "fta-round"} <= seed0
    only_tariff = monitor(["matches", "--rule", "tariff", "--json"], env, tmp_path)
    assert {json.loads(line)["rule"] for line in only_tariff.stdout.splitlines()} == {"tariff"}
    human = monitor(["matches", "--limit", "3"], env, tmp_path)
    assert "why:" in human.stdout

    hits = server.total_hits()
    second = monitor(["poll", "--once"], env, tmp_path)
    assert "feeds ok: 0  not modified: 1  failed: 0  new entries: 0  new matches: 0" in second.stdout
    assert server.total_hits() == hits + 1
    assert server.requests[-1][1].get("If-None-Match") == '"e1"'
    again = monitor(["matches", "--json", "--limit", "200"], env, tmp_path)
    assert len(again.stdout.splitlines()) == len(rows)


def test_bad_feeds_are_recorded_with_reasons_and_the_good_one_is_processed(server: LocalServer,
                                                                           tmp_path: Path) -> None:
    articles = load_articles()[:2]
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/good.xml"] = Route(rss(articles, server.base))
    server.routes["/slow.xml"] = Route(handler=_trickle)
    server.routes["/huge.xml"] = Route(b"<rss>" + b"x" * (3 * 1024 * 1024) + b"</rss>")
    server.routes["/malformed.xml"] = Route(b"<html><body>Not a feed at all</body></html>")
    server.routes["/hostile.xml"] = Route(redos_feed(4))
    feeds = [{"name": "good", "url": server.url("/good.xml")},
             {"name": "down", "url": f"http://127.0.0.1:{_closed_port()}/feed"},
             {"name": "slow", "url": server.url("/slow.xml")},
             {"name": "huge", "url": server.url("/huge.xml")},
             {"name": "malformed", "url": server.url("/malformed.xml")},
             {"name": "hostile", "url": server.url("/hostile.xml")}]
    env = base_env(tmp_path, write_feeds(tmp_path / "feeds.yaml", feeds), MONITOR_FETCH_TIMEOUT="2",
                   MONITOR_FEED_MAX_BYTES="1048576", MONITOR_PARSE_TIMEOUT="2")
    result = monitor(["poll", "--once"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "feeds ok: 1  not modified: 0  failed: 5" in result.stdout
    state = {h["name"]: h for h in map(json.loads, monitor(["feeds", "--json"], env, tmp_path).stdout.splitlines())}
    assert state["good"]["health"] == "ok" and state["good"]["entries_seen"] == 2
    expected = {"down": "transport: ", "slow": "timeout: ", "huge": "too_large: body too large",
                "malformed": "parse: ", "hostile": "worker_timeout: "}
    for name, reason in expected.items():
        assert state[name]["health"] == "failing", name
        assert state[name]["reason"].startswith(reason), (name, state[name]["reason"])
    table = monitor(["feeds"], env, tmp_path)
    assert "failing" in table.stdout and "too_large" in table.stdout


def test_configuration_errors_exit_2_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "feeds.yaml"
    bad.write_text("feeds:\n  - name: x\n    url: gopher://example.org/\n")
    result = monitor(["poll", "--once"], base_env(tmp_path, bad), tmp_path)
    assert result.returncode == 2
    assert f"{bad}:2: feeds[0] ('x'): field 'url'" in result.stderr
    bad_setting = monitor(["feeds"], base_env(tmp_path, bad, MONITOR_CONCURRENCY="lots"), tmp_path)
    assert bad_setting.returncode == 2 and "MONITOR_CONCURRENCY" in bad_setting.stderr


def test_feeds_marks_feeds_removed_from_the_file_and_since_is_validated(server: LocalServer, tmp_path: Path) -> None:
    server.routes["/a.xml"] = Route(rss([], server.base))
    server.routes["/b.xml"] = Route(rss([], server.base))
    feeds_file = write_feeds(tmp_path / "feeds.yaml", [{"name": "a", "url": server.url("/a.xml")},
                                                       {"name": "b", "url": server.url("/b.xml")}])
    env = base_env(tmp_path, feeds_file)
    assert monitor(["poll", "--once"], env, tmp_path).returncode == 0
    write_feeds(feeds_file, [{"name": "a", "url": server.url("/a.xml")}])
    listed = monitor(["feeds", "--json"], env, tmp_path).stdout.splitlines()
    state = {h["name"]: h["health"] for h in map(json.loads, listed)}
    assert state == {"a": "ok", "b": "not in feeds file"}
    bad = monitor(["matches", "--since", "yesterday-ish"], env, tmp_path)
    assert bad.returncode == 2 and "neither an ISO date/time nor a duration" in bad.stderr
    assert monitor(["matches", "--since", "2h", "--json"], env, tmp_path).returncode == 0


def test_help_on_every_command(tmp_path: Path) -> None:
    for args in (["--help"], ["run", "--help"], ["poll", "--help"], ["matches", "--help"], ["feeds", "--help"],
                 ["db", "upgrade", "--help"], ["rules", "--help"], ["rules", "check", "--help"],
                 ["rules", "test", "--help"], ["rules", "eval", "--help"], ["rules", "replay", "--help"],
                 ["destinations", "--help"], ["destinations", "check", "--help"], ["deliver", "--help"],
                 ["deliveries", "--help"]):
        result = monitor(args, dict(os.environ, PYTHONPATH=str(ROOT)), tmp_path)
        assert result.returncode == 0 and "Usage" in result.stdout, args


def test_run_polls_prints_new_matches_and_stops_cleanly_on_sigterm(server: LocalServer, tmp_path: Path) -> None:
    import signal
    import time

    articles = load_articles()[:3]
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles, server.base), etag='"r1"')
    env = base_env(tmp_path, write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml"),
                                                                     "interval": "1s"}]),
                   MONITOR_POLL_TICK="0.5s", MONITOR_WORKERS="1")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while server.hits.get("/feed.xml", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.hits.get("/feed.xml", 0) >= 3, "the feed was not polled on schedule"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "[trilateral-summit]" in out and "why:" in out
    printed = [line.split()[0] for line in out.splitlines() if line.startswith("#")]
    assert printed and len(printed) == len(set(printed))  # each match printed once, not on every poll
    assert "event=shutdown signal=SIGTERM" in err
