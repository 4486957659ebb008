"""Feed pause/resume, feed-health notices and retention, on real SQLite files (store and notifier level; the
same behaviour under a running `monitor run` is in test_service_run.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update

from monitor.errors import ConfigError
from monitor.models import FeedSource
from monitor.notify.destinations import load_destinations
from monitor.notify.health import HealthNotifier
from monitor.notify.slack import SlackNotifier
from monitor.settings import Settings
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.feedstate import claim_feeds, feed_health, paused_feeds, resume_feed
from monitor.store.notices import Thresholds, update_health
from monitor.store.queries import FeedOutcome
from monitor.store.retention import prune
from monitor.store.tables import ArticleRow, EntryRow, FeedRow, MatchRow

pytestmark = pytest.mark.both_databases

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
LIMITS = Thresholds(timedelta(minutes=30), 10.0, timedelta(hours=6))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def _sql(db: Database, statement: str) -> list[tuple[Any, ...]]:
    with db.engine.begin() as conn:
        result = conn.execute(text(statement))
        return [tuple(row) for row in result] if result.returns_rows else []


def _feed(db: Database, name: str = "wire") -> int:
    return queries.sync_feeds(db, [FeedSource(name=name, url=f"https://{name}.test/feed.xml")])[name].id


def _fail(db: Database, feed_id: int, at: datetime, pause_after: int = 3) -> None:
    queries.record_outcomes(db, [(feed_id, FeedOutcome(at, at + timedelta(minutes=5), 500, "failed",
                                                       error_class="server", error="HTTP 500"))], pause_after)


def _ok(db: Database, feed_id: int, at: datetime) -> None:
    queries.record_outcomes(db, [(feed_id, FeedOutcome(at, at + timedelta(minutes=5), 304, "not_modified"))])


def _row(db: Database, name: str = "wire") -> dict[str, object]:
    return next(feed_health(r) for r in queries.list_feed_rows(db) if r.name == name)


def _set(db: Database, feed_id: int, **values: object) -> None:
    with db.write() as session:
        session.execute(update(FeedRow).where(FeedRow.id == feed_id).values(**values))  # type: ignore[arg-type]


def _describe(row: object, kind: str, now: datetime) -> str:
    return f"{getattr(row, 'name', '?')} {kind}"


def test_a_feed_is_paused_at_the_limit_skipped_until_resumed_and_a_success_resets_it(db: Database) -> None:
    feed_id = _feed(db)
    for n in range(2):
        _fail(db, feed_id, T0 + timedelta(minutes=n))
    row = _row(db)
    assert row["health"] == "failing" and row["consecutive_errors"] == 2 and row["paused_at"] is None
    assert row["failing_since"] == T0  # the first failure of the run
    _fail(db, feed_id, T0 + timedelta(minutes=2))
    row = _row(db)
    assert row["health"] == "paused" and row["consecutive_errors"] == 3
    assert paused_feeds(db) == {"wire"}
    assert claim_feeds(db, ["wire"], "w:1", T0 + timedelta(days=30), timedelta(minutes=1), 1) == []  # never due
    _fail(db, feed_id, T0 + timedelta(minutes=3))
    assert _row(db)["paused_at"] == T0 + timedelta(minutes=2)  # paused once; a later failure keeps the time

    assert resume_feed(db, "wire", T0 + timedelta(hours=1)) is True
    row = _row(db)
    assert row["paused_at"] is None and row["consecutive_errors"] == 0
    assert row["failing_since"] == T0  # not recovered until a poll succeeds
    assert claim_feeds(db, ["wire"], "w:1", T0 + timedelta(hours=1), timedelta(minutes=1), 1) == ["wire"]  # due
    assert paused_feeds(db) == set()
    assert resume_feed(db, "wire", T0 + timedelta(hours=1)) is False  # was not paused
    with pytest.raises(ConfigError, match="no feed named 'nope'"):
        resume_feed(db, "nope", T0)

    _ok(db, feed_id, T0 + timedelta(hours=2))
    row = _row(db)
    assert row["health"] == "ok" and row["failing_since"] is None and row["consecutive_errors"] == 0


def test_pause_after_zero_never_pauses(db: Database) -> None:
    feed_id = _feed(db)
    for n in range(10):
        _fail(db, feed_id, T0 + timedelta(minutes=n), pause_after=0)
    assert _row(db)["paused_at"] is None and _row(db)["consecutive_errors"] == 10


def test_failing_feed_gets_one_notice_after_the_threshold_and_one_recovery(db: Database) -> None:
    feed_id = _feed(db)
    _fail(db, feed_id, T0)
    assert update_health(db, ["wire"], T0 + timedelta(minutes=10), LIMITS, "ops", _describe) == []  # too soon
    _fail(db, feed_id, T0 + timedelta(minutes=20))
    kinds = []
    for minute in range(30, 200, 10):  # many looks while it keeps failing: one notice
        kinds += [n.kind for n in update_health(db, ["wire"], T0 + timedelta(minutes=minute), LIMITS, "ops",
                                                _describe)]
    assert kinds == ["failing"]
    _ok(db, feed_id, T0 + timedelta(minutes=205))
    notices = [update_health(db, ["wire"], T0 + timedelta(minutes=m), LIMITS, "ops", _describe)
               for m in (206, 207, 208)]
    assert [[n.kind for n in batch] for batch in notices] == [["recovered"], [], []]
    assert notices[0][0].destination == "ops" and notices[0][0].message == "wire recovered"


def test_a_paused_feed_is_reported_at_once_and_feeds_not_asked_about_are_left_alone(db: Database) -> None:
    feed_id, other = _feed(db), _feed(db, "other")
    for n in range(3):
        _fail(db, feed_id, T0 + timedelta(seconds=n))
        _fail(db, other, T0 + timedelta(seconds=n))
    queued = update_health(db, ["wire"], T0 + timedelta(seconds=5), LIMITS, "ops", _describe)  # < threshold
    assert [(n.feed_name, n.kind) for n in queued] == [("wire", "failing")]


def test_a_silent_feed_gets_one_notice_and_a_recovery_when_entries_come_back(db: Database) -> None:
    feed_id = _feed(db)
    _set(db, feed_id, cadence=3600, last_new_entry_at=T0, last_outcome="ok")  # an entry an hour; last at T0
    assert update_health(db, ["wire"], T0 + timedelta(hours=9), LIMITS, "ops", _describe) == []  # 10 x 1h
    queued = update_health(db, ["wire"], T0 + timedelta(hours=10, minutes=1), LIMITS, "ops", _describe)
    assert [n.kind for n in queued] == ["silent"]
    assert update_health(db, ["wire"], T0 + timedelta(hours=20), LIMITS, "ops", _describe) == []
    assert _row(db)["health"] == "silent"
    _set(db, feed_id, last_new_entry_at=T0 + timedelta(hours=21))
    assert [n.kind for n in update_health(db, ["wire"], T0 + timedelta(hours=21), LIMITS, "ops", _describe)] == [
        "recovered"]


def test_notices_go_to_the_configured_slack_destination_escaped_and_once(
        db: Database, tmp_path: Path, slack: object) -> None:
    from support.fakeslack import FakeSlack

    assert isinstance(slack, FakeSlack)
    path = tmp_path / "destinations.yaml"
    path.write_text("destinations:\n  - {name: ops, kind: slack, webhook_url: '" + slack.base + "/hook'}\n")
    destinations = load_destinations(path)
    settings = Settings(_env_file=None, health_destination="ops", health_failing_after="1s")  # type: ignore[call-arg]
    printed: list[str] = []
    notifier = HealthNotifier(db, settings, destinations, SlackNotifier(db, destinations), timedelta(minutes=2))
    feed_id = queries.sync_feeds(db, [FeedSource(name="<!channel> *wire*", url="https://w.test/")])[
        "<!channel> *wire*"].id
    for n in range(3):
        _fail(db, feed_id, datetime.now(UTC) - timedelta(minutes=10 - n))
    for _ in range(3):
        notifier.run(["<!channel> *wire*"], printed.append)
    posts = slack.to("/hook")
    assert len(posts) == 1 and not printed
    text = posts[0][2]["blocks"][0]["text"]["text"]
    assert "is failing" in text and "paused after 3 failures" in text and "monitor feeds resume" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    _ok(db, feed_id, datetime.now(UTC))
    notifier.run(["<!channel> *wire*"], printed.append)
    notifier.run(["<!channel> *wire*"], printed.append)
    assert len(slack.to("/hook")) == 2 and "recovered" in slack.to("/hook")[1][2]["text"]
    assert _sql(db, "SELECT kind, status FROM feed_notices ORDER BY id") == [("failing", "sent"), ("recovered", "sent")]


def test_a_notice_whose_send_fails_is_retried_not_lost(db: Database, tmp_path: Path, slack: object) -> None:
    from support.fakeslack import Answer, FakeSlack

    assert isinstance(slack, FakeSlack)
    path = tmp_path / "destinations.yaml"
    path.write_text("destinations:\n  - {name: ops, kind: slack, webhook_url: '" + slack.base + "/hook'}\n")
    destinations = load_destinations(path)
    settings = Settings(_env_file=None, health_destination="ops")  # type: ignore[call-arg]
    notifier = HealthNotifier(db, settings, destinations, SlackNotifier(db, destinations), timedelta(minutes=2))
    slack.script["/hook"] = [Answer(500, "oops")]
    feed_id = _feed(db)
    for n in range(3):
        _fail(db, feed_id, datetime.now(UTC) - timedelta(minutes=10 - n))
    assert notifier.run(["wire"]).retrying == 1
    _sql(db, "UPDATE feed_notices SET next_attempt_at = '2000-01-01 00:00:00'")  # its retry time has come
    assert notifier.run(["wire"]).sent == 1
    assert len(slack.to("/hook")) == 2


def test_unknown_health_destination_is_a_configuration_error(db: Database) -> None:
    from monitor.notify.destinations import EMBEDDED
    from monitor.notify.health import health_destination

    with pytest.raises(ConfigError, match="MONITOR_HEALTH_DESTINATION: no destination named 'ops'"):
        health_destination(Settings(_env_file=None, health_destination="ops"), EMBEDDED)  # type: ignore[call-arg]


def test_retention_deletes_old_unmatched_entries_and_articles_and_keeps_matches(db: Database) -> None:
    feed_id = _feed(db)
    old, new = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC)
    with db.write() as session:
        for n, (when, matched) in enumerate([(old, False), (old, True), (new, False)]):
            session.add(ArticleRow(id=n + 1, key=f"k{n}", title="t", text_source="summary", created_at=when))
            session.flush()
            session.add(EntryRow(feed_id=feed_id, article_id=n + 1, entry_key=f"e{n}", key_kind="guid",
                                 first_seen_at=when))
            if matched:
                session.add(MatchRow(article_id=n + 1, rule_id="tariff", rule_title="Tariffs", severity="alert",
                                     explanation="{}", matched_at=when))
    pruned = prune(db, datetime(2026, 9, 1, tzinfo=UTC), batch=1)  # batch of one: the loop is exercised
    assert (pruned.entries, pruned.articles) == (1, 1)
    assert [r[0] for r in _sql(db, "SELECT entry_key FROM entries ORDER BY id")] == ["e1", "e2"]
    assert [r[0] for r in _sql(db, "SELECT key FROM articles ORDER BY id")] == ["k1", "k2"]
    assert _sql(db, "SELECT COUNT(*) FROM matches") == [(1,)]
    assert prune(db, datetime(2026, 9, 1, tzinfo=UTC)).entries == 0  # idempotent


def test_feed_claims_are_exclusive_expire_and_can_be_released(db: Database) -> None:
    from monitor.store.feedstate import release_all_leases, release_feeds

    names = [f"feed{n}" for n in range(5)]
    queries.sync_feeds(db, [FeedSource(name=name, url=f"https://{name}.test/") for name in names])
    lease = timedelta(minutes=10)
    now = datetime.now(UTC)
    first = claim_feeds(db, names, "a:1", now, lease, 3)
    second = claim_feeds(db, names, "b:2", now, lease, 3)
    assert len(first) == 3 and len(second) == 2 and not set(first) & set(second)
    assert claim_feeds(db, names, "c:3", now, lease, 3) == []  # all leased
    release_feeds(db, first[:1], "b:2")  # not b's lease: nothing happens
    assert claim_feeds(db, names, "c:3", now, lease, 3) == []
    release_feeds(db, first[:1], "a:1")
    assert claim_feeds(db, names, "c:3", now, lease, 3) == first[:1]
    later = now + lease + timedelta(minutes=1)  # the workers died: their leases ran out
    assert sorted(claim_feeds(db, names, "d:4", later, lease, 10)) == names
    assert release_all_leases(db) == 5 and len(claim_feeds(db, names, "e:5", later, lease, 10)) == 5
    _fail(db, queries.sync_feeds(db, [FeedSource(name="feed0", url="https://feed0.test/")])["feed0"].id, later,
          pause_after=1)
    assert "feed0" not in claim_feeds(db, names, "f:6", later + 2 * lease, lease, 10)  # paused: never claimed
