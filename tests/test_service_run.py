"""`monitor run` as its operator runs it: a real process against feed servers on 127.0.0.1 with second-scale
intervals and a fake Slack — polls, deliveries and a digest on schedule, the API, SIGTERM and a restart that
re-sends nothing, reliability cases 10 (Retry-After) and 12 (a persistently failing feed: backoff, pause,
health alert, `monitor feeds resume`, recovery notice)."""

from __future__ import annotations

import itertools
import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from conftest import write_feeds
from support.fakeslack import FakeSlack
from support.httpserver import LocalServer, Route, respond
from support.proc import stop
from support.site import article_page, load_articles, rss
from test_cli import base_env

HOOK = "/services/T000/B000/alerts"
OPS = "/services/T000/B000/ops"
EMPTY = rss([], "http://127.0.0.1")


def _destinations(tmp_path: Path, slack: FakeSlack, extra: str = "", routes: str = "[chat]") -> Path:
    path = tmp_path / "destinations.yaml"
    path.write_text("destinations:\n"
                    f"  - {{name: chat, kind: slack, webhook_url: '{slack.base}{HOOK}'}}\n"
                    f"  - {{name: ops, kind: slack, webhook_url: '{slack.base}{OPS}'}}\n"
                    f"{extra}default_routes: {routes}\n")
    return path


def _start(env: dict[str, str], cwd: Path, name: str = "run") -> tuple[subprocess.Popen[bytes], Path]:
    out = cwd / f"{name}.out"
    with out.open("ab") as handle, (cwd / f"{name}.err").open("ab") as errors:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, cwd=cwd, stdout=handle,
                                stderr=errors)
    return proc, out


def _wait(condition: Callable[[], object], seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except sqlite3.OperationalError:  # the schema is not there yet
            pass
        time.sleep(0.1)
    return False


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "data" / "monitor.db")


def _query(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with _db(tmp_path) as conn:
        return conn.execute(sql).fetchall()


def _gaps(server: LocalServer, path: str) -> list[float]:
    times = [t for p, t in server.times if p == path]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


def _api(out: Path) -> tuple[str, str]:
    found = re.search(r"web page and API: (http://127\.0\.0\.1:\d+)/login\?token=(\S+)", out.read_text())
    assert found, out.read_text()
    return found.group(1), found.group(2)


def _get(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_run_polls_delivers_digests_serves_and_a_restart_resends_nothing(
        server: LocalServer, slack: FakeSlack, tmp_path: Path) -> None:
    articles = [a for a in load_articles() if a["id"] in ("seed-001", "hkcnews-12033", "naver-018_0006191993",
                                                          "reuters21578-04444", "reuters21578-10530")]
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles[:4], server.base))
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml"),
                                                    "interval": "1s"}])
    digest = "  - {name: daily, kind: console, mode: digest, schedule: '* * * * *', timezone: UTC}\n"
    env = base_env(tmp_path, feeds, MONITOR_POLL_TICK="0.5", MONITOR_WORKERS="1",
                   MONITOR_DESTINATIONS_FILE=str(_destinations(tmp_path, slack, digest, "[chat, daily]")))
    proc, out = _start(env, tmp_path)
    try:
        assert _wait(lambda: _query(tmp_path, "SELECT COUNT(DISTINCT article_id) FROM matches")[0][0] == 3)
        assert _wait(lambda: len(slack.to(HOOK)) == 3), "the three matched articles were not each alerted"
        assert _wait(lambda: server.hits.get("/feed.xml", 0) >= 4), "the feed was not polled every second"
        base, token = _api(out)
        assert _get(f"{base}/healthz")["status"] == "ok"
        assert [(f["name"], f["health"]) for f in _get(f"{base}/api/feeds", token)] == [("wire", "ok")]
        assert len(_get(f"{base}/api/matches", token)["items"]) >= 3
        # the digest destination's period is a minute: its digest goes out when the minute turns
        assert _wait(lambda: "daily digest: 3 articles" in out.read_text(), 75), out.read_text()
    finally:
        errors = stop(proc)
    assert proc.returncode == 0, errors
    log = (tmp_path / "run.err").read_text()
    assert "event=shutdown signal=SIGTERM" in log and "event=scheduler_stopped" in log
    assert set(_query(tmp_path, "SELECT status FROM deliveries")) == {("sent",)}
    assert _query(tmp_path, "SELECT status, items FROM digests") == [("sent", 3)]

    # restarted: nothing is sent again; the one new matching entry is alerted once
    server.routes["/feed.xml"] = Route(rss(articles, server.base))
    proc, out = _start(env, tmp_path)
    try:
        assert _wait(lambda: len(slack.to(HOOK)) == 4), "the new entry was not alerted"
        polled = server.hits["/feed.xml"]
        assert _wait(lambda: server.hits["/feed.xml"] >= polled + 3)  # several more rounds
    finally:
        errors = stop(proc)
    assert proc.returncode == 0, errors
    texts = [body["text"] for _, _, body in slack.to(HOOK)]
    assert len(texts) == len(set(texts)) == 4
    assert _query(tmp_path, "SELECT COUNT(*) FROM deliveries WHERE possible_duplicate") == [(0,)]
    assert "reuters21578-04444" not in " ".join(texts)  # the negative never alerted


def test_sigterm_during_a_poll_finishes_the_feed_in_hand_and_nothing_is_lost_or_doubled(
        server: LocalServer, slack: FakeSlack, tmp_path: Path) -> None:
    articles = [a for a in load_articles() if a["id"] in ("seed-001", "seed-002", "hkcnews-12033",
                                                          "naver-018_0006191993", "reuters21578-10530")]

    def slow(page: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
        def answer(handler: BaseHTTPRequestHandler) -> None:
            time.sleep(0.7)
            respond(handler, 200, page, {"Content-Type": "text/html; charset=utf-8"})
        return answer

    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(handler=slow(article_page(article)))
    server.routes["/feed.xml"] = Route(rss(articles, server.base))
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml"),
                                                    "interval": "1s"}])
    env = base_env(tmp_path, feeds, MONITOR_POLL_TICK="0.5", MONITOR_WORKERS="1",
                   MONITOR_DESTINATIONS_FILE=str(_destinations(tmp_path, slack)))
    proc, _ = _start(env, tmp_path)
    try:
        assert _wait(lambda: any(p.startswith("/a/") for p, _ in server.times))
    finally:
        proc.send_signal(signal.SIGTERM)  # pages are in flight
        errors = stop(proc)
    assert proc.returncode == 0, errors
    # the feed in hand was finished and stored whole before the exit
    assert _query(tmp_path, "SELECT COUNT(*) FROM entries") == [(5,)]
    proc, _ = _start(env, tmp_path)
    try:
        matched = _query(tmp_path, "SELECT COUNT(DISTINCT article_id) FROM matches")[0][0]
        assert matched >= 4
        assert _wait(lambda: len(slack.to(HOOK)) >= matched)
        time.sleep(2)
    finally:
        errors = stop(proc)
    assert proc.returncode == 0, errors
    texts = [body["text"] for _, _, body in slack.to(HOOK)]
    assert len(texts) == len(set(texts)) == matched
    assert set(_query(tmp_path, "SELECT status FROM deliveries")) == {("sent",)}


def test_case_12_failing_feed_backs_off_pauses_alerts_once_resumes_and_recovers_once(
        server: LocalServer, slack: FakeSlack, tmp_path: Path) -> None:
    failing = {"on": True}

    def feed(handler: BaseHTTPRequestHandler) -> None:
        respond(handler, *((500, b"down") if failing["on"] else (200, EMPTY)))

    server.routes["/feed.xml"] = Route(handler=feed)
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml"),
                                                    "interval": "1s"}])
    env = base_env(tmp_path, feeds, MONITOR_POLL_TICK="0.2", MONITOR_FEED_PAUSE_AFTER="3",
                   MONITOR_HEALTH_DESTINATION="ops", MONITOR_HEALTH_FAILING_AFTER="1h",
                   MONITOR_DESTINATIONS_FILE=str(_destinations(tmp_path, slack)))
    proc, out = _start(env, tmp_path)
    try:
        assert _wait(lambda: _query(tmp_path, "SELECT paused_at IS NOT NULL FROM feeds") == [(1,)], 60)
        assert _wait(lambda: len(slack.to(OPS)) == 1), "no health alert for the paused feed"
        time.sleep(4)  # paused: not polled any more, and no second alert
        assert server.hits["/feed.xml"] == 3
        assert len(slack.to(OPS)) == 1
        gaps = _gaps(server, "/feed.xml")
        assert gaps[0] >= 2.0 and gaps[1] >= 4.0, gaps  # interval 1 s doubled per failure in a row
        alert = slack.to(OPS)[0][2]["text"]
        assert "wire is failing" in alert and "paused after 3 failures" in alert and "HTTP 500" in alert
        base, token = _api(out)
        shown = _get(f"{base}/api/feeds", token)[0]
        assert shown["health"] == "paused" and shown["paused_at"] and shown["consecutive_errors"] == 3
        listing = subprocess.run([sys.executable, "-m", "monitor", "feeds"], env=env, cwd=tmp_path,
                                 capture_output=True, text=True, timeout=60)
        assert "paused" in listing.stdout and "monitor feeds resume NAME" in listing.stderr

        failing["on"] = False
        resumed = subprocess.run([sys.executable, "-m", "monitor", "feeds", "resume", "wire"], env=env,
                                 cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0 and "wire: resumed" in resumed.stdout, resumed.stderr
        assert _wait(lambda: len(slack.to(OPS)) == 2), "no recovery notice"
        assert "wire recovered" in slack.to(OPS)[1][2]["text"]
        polled = server.hits["/feed.xml"]
        assert _wait(lambda: server.hits["/feed.xml"] >= polled + 3)  # polled on its interval again
        assert len(slack.to(OPS)) == 2
        assert _get(f"{base}/api/feeds", token)[0]["health"] == "ok"
    finally:
        errors = stop(proc)
    assert proc.returncode == 0, errors
    assert _query(tmp_path, "SELECT consecutive_errors, paused_at, failing_since, health FROM feeds") == [
        (0, None, None, None)]
    assert _query(tmp_path, "SELECT kind, status FROM feed_notices ORDER BY id") == [
        ("failing", "sent"), ("recovered", "sent")]


def test_case_10_retry_after_is_honoured_as_seconds_and_as_a_date_and_capped(
        server: LocalServer, slack: FakeSlack, tmp_path: Path) -> None:
    answers: dict[str, list[tuple[int, dict[str, str]]]] = {
        "/seconds.xml": [(429, {"Retry-After": "3"})],
        "/date.xml": [(503, {"Retry-After": "DATE"})],
        "/capped.xml": [(429, {"Retry-After": "120"})],
    }

    def feed(handler: BaseHTTPRequestHandler) -> None:
        script = answers[handler.path]
        status, headers = script.pop(0) if script else (200, {})
        if headers.get("Retry-After") == "DATE":
            headers = {"Retry-After": format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)}
        respond(handler, status, EMPTY if status == 200 else b"busy", headers)

    for path in answers:
        server.routes[path] = Route(handler=feed)
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": p[1:-4], "url": server.url(p), "interval": "1s"}
                                                  for p in answers])
    env = base_env(tmp_path, feeds, MONITOR_POLL_TICK="0.2", MONITOR_MAX_BACKOFF="5s",
                   MONITOR_DESTINATIONS_FILE=str(_destinations(tmp_path, slack)))
    proc, _ = _start(env, tmp_path)
    try:
        assert _wait(lambda: all(server.hits.get(p, 0) >= 2 for p in answers), 60)
    finally:
        errors = stop(proc)
    assert proc.returncode == 0, errors
    assert _gaps(server, "/seconds.xml")[0] >= 3.0
    assert _gaps(server, "/date.xml")[0] >= 3.0  # the date is 4 s ahead, to the second
    capped = _gaps(server, "/capped.xml")[0]
    assert 5.0 <= capped < 60, capped  # Retry-After: 120 capped at MONITOR_MAX_BACKOFF
    assert (tmp_path / "run.err").read_text().count("HTTP 429") >= 2
    assert _query(tmp_path, "SELECT COUNT(*) FROM feeds WHERE consecutive_errors = 0") == [(3,)]  # success resets


def test_a_tick_skipped_while_the_job_still_runs_is_not_a_warning(caplog: Any) -> None:
    """A poll round longer than MONITOR_POLL_TICK is normal: APScheduler's warning for it is moved to DEBUG."""
    import logging

    from apscheduler.schedulers.background import BackgroundScheduler

    from monitor.scheduler import quiet_skipped_ticks

    def run_a_slow_job() -> list[str]:
        caplog.clear()
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(time.sleep, "interval", args=[0.6], seconds=0.1, id="slow", max_instances=1,
                          next_run_time=datetime.now(UTC))
        with caplog.at_level(logging.WARNING, logger="apscheduler.scheduler"):
            scheduler.start()
            time.sleep(0.5)
            scheduler.shutdown(wait=True)
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    assert any("maximum number of running instances" in m for m in run_a_slow_job())  # what it used to say
    quiet_skipped_ticks()
    assert not any("maximum number of running instances" in m for m in run_a_slow_job())
