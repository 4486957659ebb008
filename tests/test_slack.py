"""The Slack destination against a fake Slack on 127.0.0.1 through slack-sdk: one message per (article,
destination), escaping, size limits, 429 Retry-After, permanent errors, bot token + channel."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import write_feeds
from support.fakeslack import Answer, FakeSlack
from support.httpserver import LocalServer, Route
from support.site import article_page, load_articles, rss
from test_cli import base_env, monitor

from monitor.notify.slack_blocks import MAX_BLOCKS, MAX_MESSAGE_CHARS, MAX_SECTION_CHARS, escape, render
from monitor.store.queries import MatchView

HOOK = "/services/T000/B000/secretpart"
EVIL = "<!channel> <https://evil.test|bank> & *x*"


def view(rule: str, title: str = "Title", snippet: str = "New tariffs on steel.", url: str | None = "https://a.test/1",
         hits: list[dict[str, object]] | None = None) -> MatchView:
    return MatchView(id=1, rule=rule, rule_title=rule.title(), severity="alert", title=title, url=url, feed="wire",
                     feeds=("wire",), lang="en", published=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
                     matched_at=datetime(2026, 11, 20, 8, 5, tzinfo=UTC), text_source="extracted",
                     explanation={"snippet": snippet, "hits": hits if hits is not None else
                                  [{"term": "tariff", "text": "tariffs"}]})


def all_text(blocks: list[dict[str, object]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_untrusted_text_is_escaped_and_terms_are_bold() -> None:
    text, blocks = render([view("tariff", title=EVIL, snippet=f"{EVIL} new tariffs",
                                url="https://a.test/x?a=1&b=<2>|3")])
    shown = all_text(blocks) + text
    assert "<!channel>" not in shown and "<https://evil.test|bank>" not in shown and "& " not in shown
    assert "&lt;!channel&gt;" in shown and "&amp;" in shown
    assert "*\u200bx*\u200b" in shown  # the title's own asterisks cannot make bold text
    assert "*tariffs*" in shown  # the matched term is
    assert "<https://a.test/x?a=1&amp;b=%3C2%3E%7C3|" in shown  # the link itself cannot be broken out of
    assert escape("<@U123> `code` _i_ ~s~") == "&lt;@U123&gt; `\u200bcode`\u200b _\u200bi_\u200b ~\u200bs~\u200b"


def test_messages_stay_within_slack_limits() -> None:
    huge = "word " * 20_000
    matches = [view(f"rule-{n:03d}", title="T" * 5000, snippet=huge) for n in range(200)]
    text, blocks = render(matches, possible_duplicate=True)
    assert len(blocks) <= MAX_BLOCKS and len(text) <= 300
    sections = [b["text"]["text"] for b in blocks if "text" in b]  # type: ignore[index]
    assert all(len(s) <= MAX_SECTION_CHARS for s in sections)
    assert sum(len(s) for s in sections) + sum(
        len(e["text"]) for b in blocks for e in b.get("elements", [])) <= MAX_MESSAGE_CHARS  # type: ignore[union-attr]
    assert "more rules" in all_text(blocks) and "possible duplicate" in all_text(blocks)


def _setup(server: LocalServer, slack: FakeSlack, tmp_path: Path, destination: str) -> dict[str, str]:
    articles = load_articles()
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles, server.base))
    (tmp_path / "destinations.yaml").write_text(f"destinations:\n{destination}default_routes: [desk]\n")
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
    env = base_env(tmp_path, feeds, MONITOR_DESTINATIONS_FILE=str(tmp_path / "destinations.yaml"),
                   SLACK_WEBHOOK_URL=slack.base + HOOK, SLACK_BOT_TOKEN="xoxb-test-token")
    assert monitor(["poll", "--once"], env, tmp_path).returncode == 0
    return env


WEBHOOK_DESK = "  - {name: desk, kind: slack, webhook_url: '${SLACK_WEBHOOK_URL}'}\n"


def _matched_articles(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "data" / "monitor.db") as conn:
        return int(conn.execute("SELECT COUNT(DISTINCT article_id) FROM matches").fetchone()[0])


def test_one_message_per_matched_article_and_none_the_second_time(server: LocalServer, slack: FakeSlack,
                                                                tmp_path: Path) -> None:
    env = _setup(server, slack, tmp_path, WEBHOOK_DESK)
    first = monitor(["deliver", "--once"], env, tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    posts = slack.to(HOOK)
    assert len(posts) == _matched_articles(tmp_path) > 0
    for _, headers, body in posts:
        assert headers["Content-Type"].startswith("application/json") and body["blocks"] and body["text"]
        assert len(body["blocks"]) <= MAX_BLOCKS
    second = monitor(["deliver", "--once"], env, tmp_path)
    assert second.returncode == 0 and len(slack.to(HOOK)) == len(posts)
    assert "secretpart" not in first.stderr + first.stdout + second.stderr


def test_4xx_fails_once_and_429_holds_the_destination_for_its_retry_after(server: LocalServer, slack: FakeSlack,
                                                                         tmp_path: Path) -> None:
    env = _setup(server, slack, tmp_path, WEBHOOK_DESK)
    assert _matched_articles(tmp_path) >= 3
    slack.script[HOOK] = [Answer(404, "no_service"), Answer(429, "rate_limited", {"Retry-After": "90"})]
    started = datetime.now(UTC)
    result = monitor(["deliver", "--once"], env, tmp_path, timeout=300)
    assert result.returncode == 1  # one failed for good
    assert len(slack.to(HOOK)) == 2  # nothing more to a destination that asked to wait
    with sqlite3.connect(tmp_path / "data" / "monitor.db") as conn:
        rows = conn.execute("SELECT status, attempts, next_attempt_at, last_error FROM deliveries "
                            "ORDER BY id").fetchall()
    refused, limited = rows[0], rows[1]
    assert refused[:2] == ("failed", 1) and "404" in refused[3]
    assert limited[:2] == ("pending", 1) and "429" in limited[3]
    for status, attempts, not_before, _ in rows[1:]:  # the limited row and every other row wait 90 s
        assert status == "pending" and attempts <= 1
        assert datetime.fromisoformat(not_before).replace(tzinfo=UTC) >= started + timedelta(seconds=89)
    monitor(["deliver", "--once"], env, tmp_path)
    assert len(slack.to(HOOK)) == 2  # still waiting


def test_bot_token_and_channel_through_the_web_api(server: LocalServer, slack: FakeSlack, tmp_path: Path) -> None:
    destination = (f"  - {{name: desk, kind: slack, token: '${{SLACK_BOT_TOKEN}}', channel: '#trade', "
                   f"base_url: '{slack.base}/api/'}}\n")
    env = _setup(server, slack, tmp_path, destination)
    slack.script["/api/chat.postMessage"] = [Answer(200, json.dumps({"ok": False, "error": "channel_not_found"}))]
    result = monitor(["deliver", "--once"], env, tmp_path, timeout=300)
    posts = slack.to("/api/chat.postMessage")
    assert len(posts) == _matched_articles(tmp_path)
    assert all(body["channel"] == "#trade" for _, _, body in posts)
    assert all(headers["Authorization"] == "Bearer xoxb-test-token" for _, headers, _ in posts)
    assert result.returncode == 1 and "channel_not_found" in result.stderr
    assert "xoxb-test-token" not in result.stderr + result.stdout


def test_killed_while_slack_holds_the_request_resends_once_flagged_and_the_rest_once(
        server: LocalServer, slack: FakeSlack, tmp_path: Path) -> None:
    """Reliability cases 20 and 21 without fault hooks: the fake Slack stalls the first POST; the sender is
    SIGKILLed while it waits (the provider has the message, the row is not marked: the ambiguous window)
    and before it reached the other rows (queued, nothing sent). After a restart every alert goes out;
    the first twice at most, the second time flagged."""
    import signal
    import subprocess
    import sys
    import time

    env = _setup(server, slack, tmp_path, WEBHOOK_DESK)
    env["MONITOR_DELIVERY_LEASE"] = "1s"
    total = _matched_articles(tmp_path)
    slack.script[HOOK] = [Answer(stall=60)]
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "deliver", "--once"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not slack.to(HOOK) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(slack.to(HOOK)) == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with sqlite3.connect(tmp_path / "data" / "monitor.db") as conn:
        states = [s for (s,) in conn.execute("SELECT status FROM deliveries ORDER BY id")]
    assert states[0] == "sending" and set(states[1:]) == {"pending"}

    time.sleep(1.5)  # the dead sender's lease runs out
    again = monitor(["deliver", "--once"], env, tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    posts = slack.to(HOOK)
    assert len(posts) == total + 1  # every alert once, plus the one re-send of the ambiguous row
    flagged = [body for _, _, body in posts if "possible duplicate" in json.dumps(body)]
    assert len(flagged) == 1 and flagged[0]["text"] == posts[0][2]["text"]
    with sqlite3.connect(tmp_path / "data" / "monitor.db") as conn:
        rows = conn.execute("SELECT status, possible_duplicate FROM deliveries ORDER BY id").fetchall()
    assert rows[0] == ("sent", 1) and set(rows[1:]) == {("sent", 0)}
