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
from monitor.store.tables import ArticleRow, DeliveryRow

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


def _queued(directory: Path, count: int, url: str | None = None) -> Database:
    """``count`` pending alert rows for 'desk', due a second ago (in an SQLite file under ``directory``,
    or in the database ``url``)."""
    directory.mkdir(exist_ok=True)
    db = Database(url or f"sqlite:///{directory / 'outbox.db'}")
    db.migrate()
    now = datetime.now(UTC)
    with db.write() as session:
        for n in range(count):
            article = ArticleRow(key=f"k{n}", title="t", text_source="summary", created_at=now)
            session.add(article)
            session.flush()
            assert article.id is not None
            session.add(DeliveryRow(article_id=article.id, destination="desk", kind="alert", rules='["r"]',
                                    status="pending", next_attempt_at=now - timedelta(seconds=1), created_at=now))
    return db


@pytest.mark.both_databases
def test_transient_errors_back_off_then_die_and_permanent_ones_fail_at_once(tmp_path: Path,
                                                                           database_url: str) -> None:
    (tmp_path / "d.yaml").write_text("destinations:\n  - {name: desk, kind: console}\n")
    destinations = load_destinations(tmp_path / "d.yaml", {})
    db = _queued(tmp_path, 2, database_url)
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


@pytest.mark.both_databases
def test_claims_never_hand_one_row_to_two_senders(tmp_path: Path, database_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    db = _queued(tmp_path, 40, database_url)
    now = datetime.now(UTC)
    with ThreadPoolExecutor(4) as pool:  # four senders claiming at the same moment (SKIP LOCKED on PostgreSQL)
        batches = list(pool.map(lambda _: [c.id for c in claim_due(db, ["desk"], now, 10)], range(4)))
    claimed = [row for batch in batches for row in batch]
    assert len(claimed) == len(set(claimed)) == 40
    assert claim_due(db, ["desk"], now) == []
    db.dispose()


@pytest.mark.both_databases
def test_replay_apply_queues_alerts_unless_no_deliver(server: LocalServer, tmp_path: Path, database_url: str) -> None:
    import shutil

    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    def sql(statement: str) -> list[tuple[object, ...]]:
        engine = create_engine(database_url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(statement))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    _serve(server, load_articles())
    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).parent.parent / "rules", rules, ignore=shutil.ignore_patterns("*.md"))
    env = _env(server, tmp_path, MONITOR_RULES_DIR=str(rules), MONITOR_DATABASE_URL=database_url)
    assert monitor(["poll", "--once"], env, tmp_path).returncode == 0
    # a new rule for an article that matched nothing at poll time (so nothing was alerted for it)
    (rules / "maize.yaml").write_text("id: maize\ntitle: Maize\nmatch: [Maize Producers]\n", encoding="utf-8")
    before = sql("SELECT COUNT(*) FROM deliveries")
    backfill = monitor(["rules", "replay", "--since", "all", "--apply", "--no-deliver"], env, tmp_path)
    assert backfill.returncode == 0 and "stored: 1" in backfill.stdout
    assert sql("SELECT COUNT(*) FROM deliveries") == before
    sql("DELETE FROM matches WHERE rule_id='maize'")
    applied = monitor(["rules", "replay", "--since", "all", "--apply"], env, tmp_path)
    assert applied.returncode == 0 and "stored: 1" in applied.stdout
    queued = sql("SELECT destination, rules, status FROM deliveries WHERE article_id = "
                 "(SELECT article_id FROM matches WHERE rule_id='maize')")
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
