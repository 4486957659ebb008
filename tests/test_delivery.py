"""The outbox: routing, rows written with the matches, `monitor deliver --once` and `monitor deliveries`,
interrupted sends flagged as possible duplicates, retries, and replayed matches queued."""

from __future__ import annotations

import json
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import write_feeds
from support.httpserver import LocalServer, Route
from support.site import article_page, load_articles, rss
from test_cli import base_env, monitor

from monitor.errors import ClientError, ServerError
from monitor.models import Explanation, Match
from monitor.notify.destinations import load_destinations
from monitor.notify.routing import PlannedDelivery, plan_deliveries
from monitor.notify.sender import MAX_ATTEMPTS, backoff, deliver_due
from monitor.store.db import Database
from monitor.store.outbox import Claim, claim_due, list_deliveries

DESTINATIONS = """\
destinations:
  - {name: desk, kind: console}
  - {name: archive, kind: console, mode: digest, schedule: "0 8 * * *", timezone: Asia/Seoul}
  - {name: trade, kind: slack, webhook_url: "https://hooks.slack.com/services/T/B/x"}
default_routes: [desk]
"""


def match(rule: str, severity: str = "alert", routes: tuple[str, ...] = ()) -> Match:
    return Match(rule, rule.title(), severity, Explanation(rule, (), (), "", ""), routes)


def test_routing(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(DESTINATIONS)
    destinations = load_destinations(tmp_path / "d.yaml", {})
    # no routes: the default; several rules to one destination make one row listing them all
    assert plan_deliveries([match("tariff"), match("fta-round")], destinations) == [
        PlannedDelivery("desk", "alert", ("tariff", "fta-round"), True)]
    # a rule's own routes; a digest destination collects, an immediate one alerts
    assert plan_deliveries([match("tariff", routes=("trade", "archive"))], destinations) == [
        PlannedDelivery("trade", "alert", ("tariff",), True), PlannedDelivery("archive", "digest", ("tariff",), True)]
    # a digest-severity rule never alerts at once: only digests get it
    # (a digest row is marked alert when one of its rules is: quiet hours never hold those)
    assert plan_deliveries([match("tariff", "digest", ("desk", "archive"))], destinations) == [
        PlannedDelivery("archive", "digest", ("tariff",), False)]
    assert plan_deliveries([match("tariff", "digest", ("archive",)), match("trade", "alert", ("archive",))],
                           destinations) == [PlannedDelivery("archive", "digest", ("tariff", "trade"), True)]
    assert plan_deliveries([match("tariff", "digest")], destinations) == []


def _serve(server: LocalServer, articles: list[dict[str, str]]) -> None:
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles, server.base))


def _env(server: LocalServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
    return base_env(tmp_path, feeds, **extra)


def _db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "data" / "monitor.db")


def test_poll_queues_one_row_per_matched_article_and_deliver_sends_each_once(server: LocalServer,
                                                                           tmp_path: Path) -> None:
    articles = load_articles()
    _serve(server, articles)
    (tmp_path / "destinations.yaml").write_text(DESTINATIONS)
    env = _env(server, tmp_path, MONITOR_DESTINATIONS_FILE=str(tmp_path / "destinations.yaml"))
    assert monitor(["poll", "--once"], env, tmp_path).returncode == 0

    with _db(tmp_path) as conn:
        matched = {a for (a,) in conn.execute("SELECT DISTINCT article_id FROM matches")}
        rows = conn.execute("SELECT article_id, destination, kind, rules, status FROM deliveries").fetchall()
        rules_of = {}
        for article_id, rule in conn.execute("SELECT article_id, rule_id FROM matches"):
            rules_of.setdefault(article_id, set()).add(rule)
    assert matched and {(a, d) for a, d, *_ in rows} == {(a, "desk") for a in matched}
    for article_id, _, kind, rules, status in rows:
        assert (kind, status) == ("alert", "pending") and set(json.loads(rules)) == rules_of[article_id]

    first = monitor(["deliver", "--once"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"sent: {len(matched)}" in first.stderr
    blocks = [line for line in first.stdout.splitlines() if line.startswith("#")]
    assert len(blocks) == sum(len(r) for r in rules_of.values())  # every rule of every article, once
    second = monitor(["deliver", "--once"], env, tmp_path)
    assert second.returncode == 0 and second.stdout == "" and "sent: 0" in second.stderr

    listed = monitor(["deliveries", "--status", "sent", "--json", "--limit", "500"], env, tmp_path)
    assert len(listed.stdout.splitlines()) == len(matched)
    assert monitor(["deliveries", "--status", "lost"], env, tmp_path).returncode == 2
    assert monitor(["deliver"], env, tmp_path).returncode == 2


def test_a_send_interrupted_after_its_claim_is_sent_again_and_flagged(server: LocalServer, tmp_path: Path) -> None:
    _serve(server, load_articles()[:3])
    env = _env(server, tmp_path)
    assert monitor(["poll", "--once"], env, tmp_path).returncode == 0
    long_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    soon = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with _db(tmp_path) as conn:
        ids = [i for (i,) in conn.execute("SELECT id FROM deliveries ORDER BY id")]
        assert len(ids) >= 2
        # a sender died holding the first row (its lease ran out); the second is still leased to a live one
        conn.execute("UPDATE deliveries SET status='sending', attempts=1, next_attempt_at=? WHERE id=?",
                     (long_ago, ids[0]))
        conn.execute("UPDATE deliveries SET status='sending', attempts=1, next_attempt_at=? WHERE id=?",
                     (soon, ids[1]))
    result = monitor(["deliver", "--once"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(possible duplicate") == 1
    with _db(tmp_path) as conn:
        state = dict(conn.execute("SELECT id, status || '/' || possible_duplicate || '/' || attempts "
                                  "FROM deliveries").fetchall())
    assert state[ids[0]] == "sent/1/2" and state[ids[1]] == "sending/0/1"
    shown = monitor(["deliveries"], env, tmp_path)
    assert "possible duplicate" in shown.stdout


class _Flaky:
    def __init__(self, error: Exception | None) -> None:
        self.error, self.sent = error, []

    def send(self, claim: Claim) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(claim.id)


def _queued(directory: Path, count: int) -> Database:
    directory.mkdir(exist_ok=True)
    db = Database(f"sqlite:///{directory / 'outbox.db'}")
    db.migrate()
    now = datetime.now(UTC)
    with sqlite3.connect(directory / "outbox.db") as conn:
        for n in range(count):
            conn.execute("INSERT INTO articles (key, title, summary, text, text_source, created_at) "
                         "VALUES (?, 't', '', '', 'summary', ?)", (f"k{n}", now))
            conn.execute("INSERT INTO deliveries (article_id, destination, kind, rules, status, attempts, "
                         "next_attempt_at, created_at, possible_duplicate) VALUES (?, 'desk', 'alert', '[\"r\"]', "
                         "'pending', 0, ?, ?, 0)", (n + 1, now - timedelta(seconds=1), now))
    return db


def test_transient_errors_back_off_then_die_and_permanent_ones_fail_at_once(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text("destinations:\n  - {name: desk, kind: console}\n")
    destinations = load_destinations(tmp_path / "d.yaml", {})
    db = _queued(tmp_path, 2)
    flaky = _Flaky(ServerError("503 from the provider", 503))
    first = deliver_due(db, destinations, {"console": flaky})
    assert (first.sent, first.retrying) == (0, 2)
    rows = list_deliveries(db)
    assert all(r.status == "pending" and r.attempts == 1 and r.last_error for r in rows)
    assert all(r.next_attempt_at.replace(tzinfo=UTC) > datetime.now(UTC) + timedelta(seconds=10) for r in rows)
    assert deliver_due(db, destinations, {"console": flaky}).retrying == 0  # not due yet

    later = datetime.now(UTC) + timedelta(days=1)
    for _ in range(MAX_ATTEMPTS):
        deliver_due(db, destinations, {"console": flaky}, now=later)
        later += timedelta(days=1)
    assert {r.status for r in list_deliveries(db)} == {"dead"}

    db2 = _queued(tmp_path / "second", 1)
    refused = deliver_due(db2, destinations, {"console": _Flaky(ClientError("404 channel_not_found", 404))})
    assert refused.failed == 1 and list_deliveries(db2)[0].status == "failed"
    assert list_deliveries(db2)[0].attempts == 1


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    waits = [backoff(n, rng).total_seconds() for n in range(1, 12)]
    assert 15 <= waits[0] <= 30 and waits[3] >= 120 and max(waits) <= 7200
    assert len({round(w) for w in waits}) == len(waits)


def test_claims_never_hand_one_row_to_two_senders(tmp_path: Path) -> None:
    db = _queued(tmp_path, 3)
    now = datetime.now(UTC)
    first = claim_due(db, ["desk"], now)
    assert len(first) == 3 and claim_due(db, ["desk"], now) == []


def test_replay_apply_queues_alerts_unless_no_deliver(server: LocalServer, tmp_path: Path) -> None:
    import shutil

    _serve(server, load_articles())
    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).parent.parent / "rules", rules, ignore=shutil.ignore_patterns("*.md"))
    env = _env(server, tmp_path, MONITOR_RULES_DIR=str(rules))
    assert monitor(["poll", "--once"], env, tmp_path).returncode == 0
    # a new rule for an article that matched nothing at poll time (so nothing was alerted for it)
    (rules / "maize.yaml").write_text("id: maize\ntitle: Maize\nmatch: [Maize Producers]\n", encoding="utf-8")
    with _db(tmp_path) as conn:
        before = conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    backfill = monitor(["rules", "replay", "--since", "all", "--apply", "--no-deliver"], env, tmp_path)
    assert backfill.returncode == 0 and "stored: 1" in backfill.stdout
    with _db(tmp_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == before
        conn.execute("DELETE FROM matches WHERE rule_id='maize'")
    applied = monitor(["rules", "replay", "--since", "all", "--apply"], env, tmp_path)
    assert applied.returncode == 0 and "stored: 1" in applied.stdout
    with _db(tmp_path) as conn:
        queued = conn.execute("SELECT destination, rules, status FROM deliveries WHERE article_id = "
                              "(SELECT article_id FROM matches WHERE rule_id='maize')").fetchall()
    assert queued == [("console", '["maize"]', "pending")]
    sent = monitor(["deliver", "--once"], env, tmp_path)
    assert "[maize]" in sent.stdout and "sent: 1" in sent.stderr


@pytest.mark.parametrize("status", ["pending", "sent"])
def test_deliveries_lists_by_status(tmp_path: Path, status: str) -> None:
    (tmp_path / "d.yaml").write_text("destinations:\n  - {name: desk, kind: console}\n")
    db = _queued(tmp_path, 2)
    if status == "sent":
        deliver_due(db, load_destinations(tmp_path / "d.yaml", {}), {"console": _Flaky(None)})
    assert {r.status for r in list_deliveries(db, status)} == {status}
