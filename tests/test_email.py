"""The e-mail destination against a real SMTP server (aiosmtpd) on 127.0.0.1: multipart messages from the
templates, header injection impossible, HTML escaped with only http(s) links, refused recipients."""

from __future__ import annotations

import email
import email.policy
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from conftest import write_feeds
from support.httpserver import LocalServer, Route
from support.mailbox import Mailbox
from support.site import article_page, load_articles, rss
from test_cli import base_env, monitor

from monitor.notify.destinations import load_destinations
from monitor.notify.email import compose
from monitor.store.queries import MatchView

EVIL_TITLE = "Breaking\r\nBcc: x@example.test <script>alert(1)</script>"


def view(title: str = EVIL_TITLE, url: str | None = "javascript:alert(1)") -> MatchView:
    return MatchView(id=1, rule="tariff", rule_title="Tariffs", severity="alert", title=title, url=url, feed="wire",
                     feeds=("wire",), lang="en", published=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
                     matched_at=datetime(2026, 11, 20, 8, 5, tzinfo=UTC), text_source="extracted",
                     explanation={"snippet": "New <b>tariffs</b> on steel & more", "hits": [
                         {"term": "tariff", "text": "tariffs", "field": "text", "start": 7, "end": 14}]})


def _destination(tmp_path: Path, port: int, to: str = "[desk@example.org]") -> Path:
    path = tmp_path / "destinations.yaml"
    path.write_text("destinations:\n  - name: desk\n    kind: email\n"
                    f"    smtp: {{host: 127.0.0.1, port: {port}, tls: none}}\n"
                    f"    from: monitor@example.org\n    to: {to}\n")
    return path


def test_no_header_injection_html_escaped_only_http_links(tmp_path: Path) -> None:
    destination = load_destinations(_destination(tmp_path, 25), {}).items[0]
    message = compose([view()], destination)
    raw = message.as_bytes()
    headers = raw.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in headers and email.message_from_bytes(raw)["Bcc"] is None
    assert b"\nBcc:" not in raw  # not even as a line of the body
    assert message["Subject"] == "[tariff] Breaking Bcc: x@example.test <script>alert(1)</script>"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html and "href" not in html  # javascript: not linked
    assert "<strong>tariffs</strong>" in html and "&lt;b&gt;" in html and "&amp; more" in html
    assert "Tariffs (tariff)" in text and "(no link)" in text
    linked = compose([view(title="Plain", url="https://news.example/a?b=1&c=2")], destination)
    assert 'href="https://news.example/a?b=1&amp;c=2"' in linked.get_body(("html",)).get_content()


def _poll(server: LocalServer, tmp_path: Path, destinations: Path) -> dict[str, str]:
    articles = load_articles()
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles, server.base))
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
    env = base_env(tmp_path, feeds, MONITOR_DESTINATIONS_FILE=str(destinations))
    assert monitor(["poll", "--once"], env, tmp_path).returncode == 0
    return env


def _rows(tmp_path: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(tmp_path / "data" / "monitor.db") as conn:
        return conn.execute("SELECT status, last_error FROM deliveries ORDER BY id").fetchall()


def test_one_multipart_message_per_alert_and_none_the_second_time(server: LocalServer, smtp: tuple[Mailbox, int],
                                                                  tmp_path: Path) -> None:
    box, port = smtp
    env = _poll(server, tmp_path, _destination(tmp_path, port))
    first = monitor(["deliver", "--once"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    rows = _rows(tmp_path)
    assert rows and len(box.messages) == len(rows) and {s for s, _ in rows} == {"sent"}
    for recipients, message in box.messages:
        assert recipients == ["desk@example.org"] and message["From"] == "monitor@example.org"
        assert message.get_content_type() == "multipart/alternative"
        assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None
    assert monitor(["deliver", "--once"], env, tmp_path).returncode == 0
    assert len(box.messages) == len(rows)


def test_refused_recipients_are_recorded_and_the_accepted_not_sent_twice(server: LocalServer,
                                                                        smtp: tuple[Mailbox, int],
                                                                        tmp_path: Path) -> None:
    box, port = smtp
    env = _poll(server, tmp_path, _destination(tmp_path, port, "[desk@example.org, gone@refused.test]"))
    assert monitor(["deliver", "--once"], env, tmp_path).returncode == 0
    rows = _rows(tmp_path)
    assert {s for s, _ in rows} == {"sent"} and all("gone@refused.test (550" in (e or "") for _, e in rows)
    assert all(recipients == ["desk@example.org"] for recipients, _ in box.messages)
    assert monitor(["deliver", "--once"], env, tmp_path).returncode == 0
    assert len(box.messages) == len(rows)


def test_every_recipient_refused_fails_the_row_at_once(server: LocalServer, smtp: tuple[Mailbox, int],
                                                      tmp_path: Path) -> None:
    box, port = smtp
    env = _poll(server, tmp_path, _destination(tmp_path, port, "[gone@refused.test]"))
    result = monitor(["deliver", "--once"], env, tmp_path)
    assert result.returncode == 1 and box.messages == []
    assert {s for s, _ in _rows(tmp_path)} == {"failed"}


def test_starttls_refused_by_a_server_without_it_fails_instead_of_sending_in_clear(
        server: LocalServer, smtp: tuple[Mailbox, int], tmp_path: Path) -> None:
    box, port = smtp
    path = tmp_path / "destinations.yaml"
    path.write_text("destinations:\n  - name: desk\n    kind: email\n"
                    f"    smtp: {{host: 127.0.0.1, port: {port}, tls: starttls}}\n"
                    "    from: monitor@example.org\n    to: [desk@example.org]\n")
    env = _poll(server, tmp_path, path)
    result = monitor(["deliver", "--once"], env, tmp_path)
    assert result.returncode == 1 and "does not offer STARTTLS" in result.stderr and box.messages == []


def test_destinations_check_send_test_reaches_every_destination(smtp: tuple[Mailbox, int], tmp_path: Path) -> None:
    from support.fakeslack import Answer, FakeSlack

    box, port = smtp
    slack = FakeSlack()
    try:
        slack.script["/hook/broken"] = [Answer(404, "no_service")]
        path = tmp_path / "destinations.yaml"
        path.write_text(
            "destinations:\n"
            "  - {name: screen, kind: console}\n"
            f"  - {{name: chat, kind: slack, webhook_url: '{slack.base}/hook/ok'}}\n"
            f"  - {{name: broken, kind: slack, webhook_url: '{slack.base}/hook/broken'}}\n"
            f"  - {{name: desk, kind: email, smtp: {{host: 127.0.0.1, port: {port}, tls: none}}, "
            "from: monitor@example.org, to: [desk@example.org]}\n")
        env = base_env(tmp_path, tmp_path / "feeds.yaml", MONITOR_DESTINATIONS_FILE=str(path))
        result = monitor(["destinations", "check", "--send-test"], env, tmp_path)
        assert result.returncode == 1  # the broken webhook
        assert "test message for destination 'screen'" in result.stdout
        assert "test message to chat: sent" in result.stderr and "test message to desk: sent" in result.stderr
        assert "test message to broken failed" in result.stderr and "404" in result.stderr
        assert len(slack.to("/hook/ok")) == 1 and len(box.messages) == 1
        assert "test message" in str(box.messages[0][1]["Subject"])
    finally:
        slack.shutdown()
        slack.server_close()
