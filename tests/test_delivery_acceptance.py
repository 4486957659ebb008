"""Issue 4's acceptance, the way an operator runs it: a real poll of a local feed (real articles plus hostile
titles), then `monitor deliver --once` against a fake Slack (slack-sdk, webhook and Web API) and a real SMTP
server (aiosmtpd): one Slack message per (matched article, immediate Slack destination), one digest e-mail
per digest destination at its time, nothing the second time; escaping (cases 26, 33, 34)."""

from __future__ import annotations

import html
import json
import sqlite3
from pathlib import Path

from conftest import write_feeds
from support.fakeslack import FakeSlack
from support.httpserver import LocalServer, Route
from support.mailbox import Mailbox
from support.site import article_page, load_articles, rss
from test_cli import base_env, monitor

HOOK = "/services/T000/B000/secretpart"
SLACK_EVIL = "<!channel> <https://evil.test|bank> & *x* tariffs"
HOSTILE = [
    # feed titles are HTML: escaped once more, the title is this literal text
    {"id": "evil-slack", "title": html.escape(SLACK_EVIL), "lang": "en",
     "text": "&lt;!here&gt; Washington imposed 25% tariffs on steel imports from Korea and Japan."},
    {"id": "evil-mail", "title": "Breaking__CRLF__Bcc: x@example.test new tariffs", "lang": "en",
     "text": "Seoul imposed retaliatory tariffs on imports of American beef."},
    {"id": "evil-xss", "title": html.escape("<script>alert(1)</script><img src=x onerror=alert(2)> tariffs"),
     "lang": "en", "text": "Tokyo raised tariffs on rice imports."},  # and its link is javascript:
]


def _serve(server: LocalServer) -> None:
    articles = load_articles()[:8] + HOSTILE
    for article in articles[:-3]:  # the hostile pages are gone (404): their alerts come from the feed itself
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    # a CR LF inside a title, as a character reference (a raw one would be normalised by the XML parser)
    feed = rss(articles, server.base).replace(b"__CRLF__", b"&#13;&#10;")
    server.routes["/feed.xml"] = Route(feed.replace(f"{server.base}/a/evil-xss.html".encode(), b"javascript:alert(1)"))


def _destinations(tmp_path: Path, slack: FakeSlack, port: int) -> Path:
    path = tmp_path / "destinations.yaml"
    path.write_text(f"""\
destinations:
  - name: trade-alerts
    kind: slack
    webhook_url: ${{SLACK_WEBHOOK_URL}}
    mode: immediate
  - name: morning-digest
    kind: email
    smtp: {{host: 127.0.0.1, port: {port}, tls: none}}
    from: monitor@example.org
    to: [desk@example.org, chief@example.org]
    mode: digest
    schedule: "0 8 * * *"
    timezone: Asia/Seoul
    quiet_hours: {{start: "22:00", end: "07:00"}}
  - name: evening-digest
    kind: email
    smtp: {{host: 127.0.0.1, port: {port}, tls: none}}
    from: monitor@example.org
    to: [night@example.org]
    mode: digest
    schedule: "0 18 * * 1-5"
    timezone: Europe/Berlin
  - name: team-digest
    kind: slack
    token: ${{SLACK_BOT_TOKEN}}
    channel: "#trade"
    base_url: {slack.base}/api/
    mode: digest
    schedule: "30 7 * * *"
    timezone: UTC
default_routes: [trade-alerts, morning-digest, evening-digest, team-digest]
""")
    return path


def _polled(server: LocalServer, slack: FakeSlack, port: int, tmp_path: Path) -> dict[str, str]:
    """The site served, the destinations written, one poll made: the environment for `monitor`."""
    _serve(server)
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
    env = base_env(tmp_path, feeds, MONITOR_DESTINATIONS_FILE=str(_destinations(tmp_path, slack, port)),
                   SLACK_WEBHOOK_URL=slack.base + HOOK, SLACK_BOT_TOKEN="xoxb-test-token")
    assert monitor(["poll", "--once"], env, tmp_path, timeout=300).returncode == 0
    return env


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "data" / "monitor.db")


def test_alerts_at_once_digests_at_their_time_each_once_and_everything_escaped(
        server: LocalServer, slack: FakeSlack, smtp: tuple[Mailbox, int], tmp_path: Path) -> None:
    box, port = smtp
    env = _polled(server, slack, port, tmp_path)
    with _db(tmp_path) as conn:
        matched = {a for (a,) in conn.execute("SELECT DISTINCT article_id FROM matches")}
        per_rule = dict(conn.execute("SELECT rule_id, COUNT(DISTINCT article_id) FROM matches GROUP BY rule_id"))
        titles = dict(conn.execute("SELECT id, title FROM articles"))
        linked = conn.execute("SELECT COUNT(*) FROM matches JOIN articles ON articles.id = matches.article_id "
                              "WHERE articles.url LIKE 'http%'").fetchone()[0]
    titles_of_matched = [titles[a] for a in matched]
    assert len(matched) >= 4 and SLACK_EVIL in titles_of_matched

    # alerts at once; the digests' period (the last 08:00 in Seoul...) ended before these were queued
    first = monitor(["deliver", "--once"], env, tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    alerts = slack.to(HOOK)
    assert len(alerts) == len(matched) and box.messages == [] and slack.to("/api/chat.postMessage") == []
    assert f"waiting for their digest: {3 * len(matched)}" in first.stderr

    # case 26: nothing from the content makes a mention, a channel ping or a link of its own
    payload = json.dumps([body for _, _, body in alerts], ensure_ascii=False)
    assert "<!channel>" not in payload and "<!here>" not in payload and "<https://evil.test|bank>" not in payload
    assert "&lt;!channel&gt;" in payload and "&amp;" in payload

    # a dry run shows the digest and changes nothing
    dry = monitor(["digest", "--now", "--dry-run", "--destination", "morning-digest"], env, tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "Subject: [monitor] morning-digest digest:" in dry.stdout and box.messages == []
    with _db(tmp_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM digests").fetchone() == (0,)

    # the next fire time passes (as if these had been queued a day earlier): one digest per destination
    with _db(tmp_path) as conn:
        conn.execute("UPDATE deliveries SET created_at = datetime(created_at, '-8 days') WHERE kind = 'digest'")
    second = monitor(["deliver", "--once"], env, tmp_path, timeout=300)
    assert second.returncode == 0, second.stderr
    assert len(box.messages) == 2 and len(slack.to(HOOK)) == len(matched)
    by_recipients = {tuple(sorted(r)): m for r, m in box.messages}
    assert set(by_recipients) == {("chief@example.org", "desk@example.org"), ("night@example.org",)}
    team = slack.to("/api/chat.postMessage")
    assert team and all(body["channel"] == "#trade" for _, _, body in team)

    for message in by_recipients.values():
        # case 33: the CR LF in a title never makes a header
        assert message["Bcc"] is None and "\n" not in str(message["Subject"])
        assert f"{len(matched)} articles" in str(message["Subject"])
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        for rule, count in per_rule.items():  # grouped by rule, with counts
            assert f"({rule}): {count} article{'s' if count != 1 else ''}" in text
            assert f"({rule}) · {count} article" in html
        assert "Breaking Bcc: x@example.test new tariffs" in text
        # case 34: every untrusted string escaped, only http(s) links
        assert "<script>" not in html and "<img" not in html and "javascript:" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; tariffs" in html
        assert html.count('<a href="http') == linked < sum(per_rule.values())

    third = monitor(["deliver", "--once"], env, tmp_path, timeout=300)
    assert third.returncode == 0 and "sent: 0" in third.stderr
    assert len(box.messages) == 2 and len(slack.to(HOOK)) == len(matched) and len(slack.to("/api/chat.postMessage")) \
        == len(team)
    listed = monitor(["deliveries", "--digests", "--json"], env, tmp_path)
    digests = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted((d["destination"], d["status"], d["items"]) for d in digests) == [
        ("evening-digest", "sent", len(matched)), ("morning-digest", "sent", len(matched)),
        ("team-digest", "sent", len(matched))]
    assert slack.oversize == 0  # never a message beyond Slack's limits
    assert "secretpart" not in first.stderr + second.stderr + third.stderr + listed.stdout
    assert "xoxb-test-token" not in first.stderr + second.stderr + third.stderr + listed.stdout


def test_digest_now_sends_what_waits_once(server: LocalServer, slack: FakeSlack, smtp: tuple[Mailbox, int],
                                          tmp_path: Path) -> None:
    box, port = smtp
    env = _polled(server, slack, port, tmp_path)

    immediate = monitor(["digest", "--now", "--destination", "trade-alerts"], env, tmp_path)
    assert immediate.returncode == 2 and "'trade-alerts' is immediate" in immediate.stderr
    unknown = monitor(["digest", "--now", "--destination", "nowhere"], env, tmp_path)
    assert unknown.returncode == 2 and "no destination named 'nowhere'" in unknown.stderr
    assert monitor(["digest"], env, tmp_path).returncode == 2

    sent = monitor(["digest", "--now", "--destination", "morning-digest"], env, tmp_path, timeout=300)
    assert sent.returncode == 0, sent.stderr
    assert len(box.messages) == 1 and "sent: 1" in sent.stderr
    again = monitor(["digest", "--now", "--destination", "morning-digest"], env, tmp_path, timeout=300)
    assert again.returncode == 0 and "nothing waits for a digest" in again.stderr and len(box.messages) == 1
    rest = monitor(["digest", "--now"], env, tmp_path, timeout=300)  # every digest destination
    assert rest.returncode == 0 and "sent: 2" in rest.stderr, rest.stderr
    assert len(box.messages) == 2 and slack.to("/api/chat.postMessage")
