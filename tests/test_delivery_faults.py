"""Reliability cases 20-32 for delivery with real parts: a real `monitor` process killed at the named points
(MONITOR_KILL_AT) and restarted, slack-sdk against the fake Slack, smtplib against aiosmtpd, a silent TCP
server for the SMTP hang. (22, 26, 27, 30, 33, 34 are also covered in test_delivery_crash, test_slack,
test_email, test_digest and test_delivery_acceptance.)"""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult
from conftest import write_feeds
from support.fakeslack import Answer, FakeSlack
from support.httpserver import LocalServer, Route
from support.mailbox import Mailbox, start
from support.outbox import Item, at, seed
from support.proc import stop as _stop
from support.site import article_page, load_articles, rss
from test_cli import base_env, monitor

from monitor.notify.destinations import load_destinations
from monitor.notify.digest import send_due_digests
from monitor.notify.notifiers import notifiers
from monitor.notify.sender import MAX_ATTEMPTS, MAX_BACKOFF, deliver_due
from monitor.store.db import Database
from monitor.store.digests import list_digests
from monitor.store.outbox import list_deliveries

HOOK = "/services/T000/B000/secretpart"


def _db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "monitor.db"


def _env(tmp_path: Path, destinations: str, **extra: str) -> dict[str, str]:
    path = tmp_path / "destinations.yaml"
    path.write_text(f"destinations:\n{destinations}")
    return base_env(tmp_path, tmp_path / "feeds.yaml", MONITOR_DESTINATIONS_FILE=str(path), **extra)


def _alerts(tmp_path: Path, count: int, destinations: list[str]) -> None:
    """``count`` articles with an alert row for each destination, queued an hour ago."""
    _db_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    created = datetime.now(UTC) - timedelta(hours=1)
    seed(_db_path(tmp_path), [Item(f"Story {n} on tariffs", f"https://news.test/{n}", [("tariff", "alert")], created,
                                   destinations=destinations) for n in range(count)], kind="alert").dispose()


def _rows(tmp_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(_db_path(tmp_path)) as conn:
        return conn.execute("SELECT destination, status, attempts, possible_duplicate, last_error FROM deliveries "
                            "ORDER BY id").fetchall()


def _wait(condition: Any, seconds: float = 90) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except sqlite3.OperationalError:  # the service has not created its schema yet
            pass
        time.sleep(0.1)
    return False


def _serve(server: LocalServer, count: int) -> list[dict[str, str]]:
    articles = load_articles()[:count]
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles, server.base))
    return articles


def _matched(tmp_path: Path) -> int:
    with sqlite3.connect(_db_path(tmp_path)) as conn:
        return int(conn.execute("SELECT COUNT(DISTINCT article_id) FROM matches").fetchone()[0])


def _run(env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


WEBHOOK = "  - {name: chat, kind: slack, webhook_url: '${SLACK_WEBHOOK_URL}'}\n"


def test_case_20_killed_after_the_outbox_commit_sends_each_alert_once_after_restart(
        server: LocalServer, slack: FakeSlack, tmp_path: Path) -> None:
    _serve(server, 6)
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
    env = _env(tmp_path, WEBHOOK, SLACK_WEBHOOK_URL=slack.base + HOOK, MONITOR_POLL_TICK="0.5")
    env["MONITOR_FEEDS_FILE"] = str(feeds)
    killed = _run({**env, "MONITOR_KILL_AT": "after_outbox_commit"}, tmp_path)
    assert killed.wait(timeout=120) == -signal.SIGKILL
    killed.communicate()
    rows = _rows(tmp_path)
    assert rows and {r[1] for r in rows} == {"pending"} and slack.posts == []  # queued, nothing sent

    restarted = _run(env, tmp_path)
    try:
        assert _wait(lambda: {r[1] for r in _rows(tmp_path)} == {"sent"})
        time.sleep(1.5)  # room for a wrong second post to show up
    finally:
        _stop(restarted)
    assert len(slack.to(HOOK)) == len(rows) == _matched(tmp_path)
    assert len({body["text"] for _, _, body in slack.to(HOOK)}) == len(rows)  # one per article
    assert {r[3] for r in _rows(tmp_path)} == {0}


def test_case_21_killed_after_the_provider_accepted_resends_once_flagged(slack: FakeSlack, tmp_path: Path) -> None:
    _alerts(tmp_path, 4, ["chat"])
    env = _env(tmp_path, WEBHOOK, SLACK_WEBHOOK_URL=slack.base + HOOK, MONITOR_DELIVERY_LEASE="1s")
    killed = monitor(["deliver", "--once"], {**env, "MONITOR_KILL_AT": "after_provider_200"}, tmp_path)
    assert killed.returncode == -signal.SIGKILL
    assert len(slack.posts) == 1 and [r[1] for r in _rows(tmp_path)] == ["sending", "pending", "pending", "pending"]
    time.sleep(1.2)  # the dead sender's lease runs out
    again = monitor(["deliver", "--once"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(slack.posts) == 5  # one documented re-send in the ambiguous window
    assert [(r[1], r[3]) for r in _rows(tmp_path)] == [("sent", 1), ("sent", 0), ("sent", 0), ("sent", 0)]
    assert "possible duplicate" in json.dumps(slack.posts[1][2]) and slack.posts[1][2]["text"] == \
        slack.posts[0][2]["text"]


def _email(port: int, extra: str = "", mode: str = "") -> str:
    return (f"  - {{name: desk, kind: email, smtp: {{host: 127.0.0.1, port: {port}, tls: none{extra}}}, "
            f"from: monitor@example.org, to: [desk@example.org]{mode}}}\n")


def test_case_23_a_429_waits_its_retry_after_and_does_not_hold_up_email(
        server: LocalServer, slack: FakeSlack, unused_port: int, tmp_path: Path) -> None:
    box = Mailbox()
    controller = start(box, unused_port)
    try:
        _serve(server, 5)
        feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
        env = _env(tmp_path, WEBHOOK + _email(unused_port) + "default_routes: [chat, desk]\n",
                   SLACK_WEBHOOK_URL=slack.base + HOOK, MONITOR_POLL_TICK="0.5")
        env["MONITOR_FEEDS_FILE"] = str(feeds)
        slack.script[HOOK] = [Answer(429, "rate_limited", {"Retry-After": "2"})]
        proc = _run(env, tmp_path)
        try:
            assert _wait(lambda: _db_path(tmp_path).exists() and bool(_rows(tmp_path))
                         and {r[1] for r in _rows(tmp_path)} == {"sent"})
        finally:
            _stop(proc)
    finally:
        controller.stop()
    articles = _matched(tmp_path)
    assert len(slack.posts) == articles + 1 and len(box.messages) == articles  # exactly one message each
    assert slack.times[1] - slack.times[0] >= 2.0  # nothing to the destination before its Retry-After
    assert max(box.times) < slack.times[-1]  # e-mail went its own way meanwhile
    assert slack.oversize == 0


@pytest.mark.parametrize(("destination", "answer", "shown"), [
    (WEBHOOK, Answer(400, "invalid_payload"), "400 invalid_payload"),
    (WEBHOOK, Answer(403, "action_prohibited"), "403 action_prohibited"),
    (WEBHOOK, Answer(404, "channel_not_found"), "404 channel_not_found"),
    (WEBHOOK, Answer(410, "channel_is_archived"), "410 channel_is_archived"),
    ("  - {name: chat, kind: slack, token: '${SLACK_BOT_TOKEN}', channel: '#trade', base_url: '${SLACK_API}'}\n",
     Answer(200, json.dumps({"ok": False, "error": "invalid_auth"})), "invalid_auth"),
])
def test_case_24_permanent_slack_errors_fail_after_one_attempt_and_others_go_on(
        slack: FakeSlack, tmp_path: Path, destination: str, answer: Answer, shown: str) -> None:
    _alerts(tmp_path, 3, ["chat", "screen"])
    env = _env(tmp_path, destination + "  - {name: screen, kind: console}\n", SLACK_WEBHOOK_URL=slack.base + HOOK,
               SLACK_BOT_TOKEN="xoxb-secret-token", SLACK_API=slack.base + "/api/")
    path = HOOK if "webhook" in destination else "/api/chat.postMessage"
    slack.script[path] = [answer] * 3
    first = monitor(["deliver", "--once"], env, tmp_path)
    assert first.returncode == 1 and shown in first.stderr
    second = monitor(["deliver", "--once"], env, tmp_path)
    assert second.returncode == 0 and len(slack.to(path)) == 3  # one attempt each, no retry loop
    rows = _rows(tmp_path)
    assert [(r[1], r[2]) for r in rows if r[0] == "chat"] == [("failed", 1)] * 3
    assert all(shown in r[4] for r in rows if r[0] == "chat")
    assert {r[1] for r in rows if r[0] == "screen"} == {"sent"} and first.stdout.count("[tariff]") == 3
    listed = monitor(["deliveries", "--status", "failed", "--json"], env, tmp_path)
    assert [json.loads(line)["destination"] for line in listed.stdout.splitlines()] == ["chat"] * 3
    assert "xoxb-secret-token" not in first.stderr + listed.stdout


def test_case_25_transient_slack_errors_back_off_with_jitter_then_die(slack: FakeSlack, tmp_path: Path) -> None:
    _alerts(tmp_path, 1, ["chat"])
    path = tmp_path / "destinations.yaml"
    path.write_text(f"destinations:\n  - {{name: chat, kind: slack, webhook_url: '{slack.base}{HOOK}', timeout: 1}}\n")
    destinations = load_destinations(path, {})
    db = Database(f"sqlite:///{_db_path(tmp_path)}")
    kinds = notifiers(db, destinations, print)
    slack.script[HOOK] = [Answer(stall=3)] + [Answer(500, "server_error")] * (MAX_ATTEMPTS - 1)
    now, waits = datetime.now(UTC), []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        summary = deliver_due(db, destinations, kinds, now)
        row = list_deliveries(db)[0]
        assert row.attempts == attempt and len(slack.posts) == attempt
        if attempt == 1:  # the stalled request: the client's timeout fired
            assert "timed out" in (row.last_error or "").lower()
        if attempt < MAX_ATTEMPTS:
            assert (summary.retrying, row.status) == (1, "pending")
            waits.append(row.next_attempt_at - now)
            now = row.next_attempt_at + timedelta(seconds=1)
            assert deliver_due(db, destinations, kinds, now - timedelta(seconds=2)).sent == 0  # not before then
    assert (summary.dead, row.status) == (1, "dead") and "500" in (row.last_error or "")
    # exponential (each ceiling doubles, capped) with jitter over the upper half of it
    for number, wait in enumerate(waits, 1):
        ceiling = min(timedelta(seconds=30) * 2 ** (number - 1), MAX_BACKOFF)
        assert ceiling / 2 - timedelta(seconds=5) <= wait <= ceiling + timedelta(seconds=5)
    db.dispose()


def test_case_28_secrets_never_shown_in_logs_errors_or_crash_output(slack: FakeSlack, unused_port: int,
                                                                     tmp_path: Path) -> None:
    _alerts(tmp_path, 2, ["chat", "gone"])
    slack.script[HOOK] = [Answer(500, f"internal error for {slack.base}{HOOK} token xoxb-secret-token")] * 2
    env = _env(tmp_path, WEBHOOK + "  - {name: gone, kind: slack, webhook_url: '${DEAD_WEBHOOK}'}\n",
               SLACK_WEBHOOK_URL=slack.base + HOOK, DEAD_WEBHOOK=f"http://127.0.0.1:{unused_port}/services/T/B/"
               "deadsecret", MONITOR_LOG_LEVEL="DEBUG")
    result = monitor(["deliver", "--once"], env, tmp_path)
    listed = monitor(["deliveries", "--json"], env, tmp_path)
    checked = monitor(["destinations", "check", "--send-test"], env, tmp_path)
    shown = result.stdout + result.stderr + listed.stdout + listed.stderr + checked.stdout + checked.stderr
    assert "retrying: 4" in result.stderr and "500" in listed.stdout and "Connection refused" in listed.stdout
    assert "secretpart" not in shown and "deadsecret" not in shown
    assert "****" in listed.stdout

    # a crash (an error nothing handles) prints its traceback with the secrets masked
    crash = subprocess.run([sys.executable, "-c", (
        "import sys; from monitor import cli; from monitor.notify.destinations import load_destinations\n"
        f"load_destinations(__import__('pathlib').Path({str(tmp_path / 'destinations.yaml')!r}))\n"
        "def boom(): raise RuntimeError('cannot post to ' + __import__('os').environ['SLACK_WEBHOOK_URL'])\n"
        "cli.app = boom\ncli.main()")], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert crash.returncode == 1 and "RuntimeError: cannot post to ****" in crash.stderr
    assert "secretpart" not in crash.stderr


def _digest_setup(tmp_path: Path, port: int, extra: str = "") -> tuple[Database, Any, Any]:
    path = tmp_path / "destinations.yaml"
    path.write_text("destinations:\n" + _email(port, extra, ", mode: digest, schedule: '0 8 * * *', timezone: UTC"))
    destinations = load_destinations(path, {"SMTP_USER": "monitor", "SMTP_PASSWORD": "hunter22"})
    _db_path(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    db = seed(_db_path(tmp_path), [Item(f"Story {n}", f"https://news.test/{n}", [("tariff", "alert")],
                                        at("2026-11-20 06:00"), destinations=["desk"]) for n in range(3)])
    return db, destinations, notifiers(db, destinations, print)


@pytest.mark.parametrize("fault", ["451 4.3.0 try again later", "drop"])
def test_case_29_a_transient_smtp_failure_sends_the_digest_once_with_every_item_once(
        unused_port: int, tmp_path: Path, fault: str) -> None:
    box = Mailbox([fault])
    controller = start(box, unused_port)
    try:
        db, destinations, kinds = _digest_setup(tmp_path, unused_port)
        first = send_due_digests(db, destinations, kinds, at("2026-11-20 08:00:05"))
        assert (first.sent, first.retrying) == (0, 1) and box.messages == []
        later = datetime.now(UTC) + timedelta(hours=3)
        second = send_due_digests(db, destinations, kinds, later)
        assert second.sent == 1 and send_due_digests(db, destinations, kinds, later).sent == 0
    finally:
        controller.stop()
    assert len(box.messages) == 1
    text = box.messages[0][1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert all(text.count(f"https://news.test/{n}") == 1 for n in range(3))
    assert [(d.status, d.attempts, d.items) for d in list_digests(db)] == [("sent", 2, 3)]
    db.dispose()


class _Refuse:
    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)


@pytest.mark.parametrize(("fault", "shown"), [("auth", "login refused (535)"), ("554 5.7.1 rejected", "SMTP 554")])
def test_case_31_permanent_smtp_errors_fail_the_digest_without_retrying(unused_port: int, tmp_path: Path,
                                                                        fault: str, shown: str) -> None:
    box = Mailbox([] if fault == "auth" else [fault] * 5)
    options = {"authenticator": _Refuse(), "auth_require_tls": False} if fault == "auth" else {}
    controller = start(box, unused_port, **options)
    try:
        credentials = ", username: '${SMTP_USER}', password: '${SMTP_PASSWORD}'" if fault == "auth" else ""
        db, destinations, kinds = _digest_setup(tmp_path, unused_port, credentials)
        summary = send_due_digests(db, destinations, kinds, at("2026-11-20 08:00:05"))
        assert summary.failed == 1 and shown in summary.errors[0] and "hunter22" not in summary.errors[0]
        assert send_due_digests(db, destinations, kinds, datetime.now(UTC) + timedelta(days=1)).failed == 0
    finally:
        controller.stop()
    assert box.messages == []
    assert [(d.status, d.attempts) for d in list_digests(db)] == [("failed", 1)]
    assert {(r.status, shown in (r.last_error or "")) for r in list_deliveries(db)} == {("failed", True)}
    db.dispose()


class _Silent:
    """Accepts TCP connections and never says a word (no SMTP banner)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def test_case_32_an_smtp_server_that_never_answers_times_out(tmp_path: Path) -> None:
    silent = _Silent()
    try:
        _alerts(tmp_path, 1, ["desk"])
        path = tmp_path / "destinations.yaml"
        path.write_text("destinations:\n" + _email(silent.port, ", timeout: 1"))
        destinations = load_destinations(path, {})
        db = Database(f"sqlite:///{_db_path(tmp_path)}")
        summary = deliver_due(db, destinations, notifiers(db, destinations, print))
        assert summary.retrying == 1 and "timed out" in summary.errors[0]
        assert list_deliveries(db)[0].status == "pending" and len(silent.accepted) == 1
        db.dispose()
    finally:
        silent.close()


def test_case_32_polling_goes_on_while_smtp_hangs(server: LocalServer, tmp_path: Path) -> None:
    silent = _Silent()
    articles = load_articles()
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles[:3], server.base))
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml"), "interval": "1s"}])
    env = _env(tmp_path, _email(silent.port, ", timeout: 60"), MONITOR_POLL_TICK="0.5")
    env["MONITOR_FEEDS_FILE"] = str(feeds)
    proc = _run(env, tmp_path)
    try:
        assert _wait(lambda: len(silent.accepted) >= 1)  # the sender is stuck waiting for a banner
        server.routes["/feed.xml"] = Route(rss(articles[:6], server.base))  # news while it waits

        def stored() -> int:
            with sqlite3.connect(_db_path(tmp_path)) as conn:
                return int(conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0])

        assert _wait(lambda: stored() == 6, 50)  # polled and stored on schedule
        assert proc.poll() is None and len(silent.accepted) == 1  # the send is still hanging
    finally:
        _stop(proc)
        silent.close()


def test_case_21_for_a_digest_killed_after_the_server_accepted_it_resends_it_once_flagged(
        unused_port: int, tmp_path: Path) -> None:
    box = Mailbox()
    controller = start(box, unused_port)
    try:
        db, _, _ = _digest_setup(tmp_path, unused_port)
        db.dispose()
        env = base_env(tmp_path, tmp_path / "feeds.yaml", MONITOR_DESTINATIONS_FILE=str(tmp_path / "destinations.yaml"),
                       MONITOR_DELIVERY_LEASE="1s")
        killed = monitor(["deliver", "--once"], {**env, "MONITOR_KILL_AT": "after_provider_200"}, tmp_path)
        assert killed.returncode == -signal.SIGKILL and len(box.messages) == 1
        time.sleep(1.2)  # the dead sender's lease runs out
        again = monitor(["deliver", "--once"], env, tmp_path)
        assert again.returncode == 0 and "sent: 1" in again.stderr, again.stderr
        assert monitor(["deliver", "--once"], env, tmp_path).returncode == 0
    finally:
        controller.stop()
    assert len(box.messages) == 2  # one documented re-send in the ambiguous window
    resent = box.messages[1][1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "possible duplicate" in resent and "possible duplicate" not in str(box.messages[0][1])
    with sqlite3.connect(_db_path(tmp_path)) as conn:
        assert conn.execute("SELECT status, attempts, possible_duplicate, items FROM digests").fetchall() == [
            ("sent", 2, 1, 3)]
