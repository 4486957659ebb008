"""The rule silence watchdog: a rule that has been matching at a learned cadence and then matches nothing for
MONITOR_RULE_SILENT_FACTOR x that cadence (at least MONITOR_RULE_SILENT_MIN) gets one notice, and one more when
it matches again — the state machine, the store on SQLite and PostgreSQL, the notifier, and `monitor run`."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from monitor.notify.destinations import load_destinations
from monitor.notify.health import HealthNotifier, describe_rule
from monitor.notify.slack import SlackNotifier
from monitor.settings import Settings
from monitor.store.db import Database
from monitor.store.rule_health import (
    LEARN_AFTER,
    RuleLimits,
    RuleState,
    learn_rule_cadence,
    rule_health,
    update_rule_health,
    wanted_health,
)
from monitor.store.tables import ArticleRow, MatchRow

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
LIMITS = RuleLimits(10.0, timedelta(hours=6))


def _hourly(count: int, last: datetime = T0) -> list[datetime]:
    return [last - n * HOUR for n in range(count)]


# ---- the state machine (pure) ----

def test_the_cadence_is_the_median_gap_of_distinct_match_times_once_enough_are_known() -> None:
    assert learn_rule_cadence(_hourly(LEARN_AFTER - 1)) is None  # not learned yet
    assert learn_rule_cadence(_hourly(LEARN_AFTER)) == 3600
    burst = [T0] * 40 + _hourly(LEARN_AFTER - 1, T0 - HOUR)  # one poll's 40 matches share one time
    assert learn_rule_cadence(burst) == 3600
    assert learn_rule_cadence([*_hourly(4), T0 - timedelta(days=30), T0 - timedelta(days=31)]) == 3600  # median


def test_silent_past_factor_times_cadence_and_back_only_on_a_newer_match() -> None:
    fine = RuleState("tariff", None, 3600.0, T0)
    assert wanted_health(fine, T0 + 9 * HOUR, LIMITS) is None
    assert wanted_health(fine, T0 + 10 * HOUR, LIMITS) == "silent"
    silent = RuleState("tariff", "silent", 3600.0, T0, T0 + 10 * HOUR, T0)
    assert wanted_health(silent, T0 + 100 * HOUR, LIMITS) == "silent"  # still no new match
    assert wanted_health(silent, T0 + 100 * HOUR, RuleLimits(1000.0, timedelta(days=99))) == "silent"  # not by settings
    assert wanted_health(RuleState("tariff", "silent", 3600.0, T0 + 20 * HOUR, T0 + 10 * HOUR, T0),
                         T0 + 20 * HOUR, LIMITS) is None  # matched again


def test_the_floor_holds_a_fast_rule_and_an_unknown_cadence_never_alarms() -> None:
    fast = RuleState("tariff", None, 60.0, T0)  # a match a minute: 10 x 1 min is under the 6 h floor
    assert wanted_health(fast, T0 + 5 * HOUR, LIMITS) is None
    assert wanted_health(fast, T0 + 6 * HOUR, LIMITS) == "silent"
    assert wanted_health(RuleState("tariff", None, None, T0), T0 + timedelta(days=365), LIMITS) is None
    assert wanted_health(RuleState("tariff", None, None, None), T0 + timedelta(days=365), LIMITS) is None


def test_the_settings_take_durations_and_are_validated() -> None:
    settings = Settings(_env_file=None, rule_silent_factor="4", rule_silent_min="2h")  # type: ignore[call-arg,arg-type]
    assert (settings.rule_silent_factor, settings.rule_silent_min) == (4.0, 7200.0)
    assert Settings(_env_file=None).rule_silent_min == 86400.0  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, rule_silent_factor="0.5")  # type: ignore[call-arg,arg-type]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, rule_silent_min="0")  # type: ignore[call-arg,arg-type]


def test_the_notice_texts_say_what_happened() -> None:
    silent = describe_rule(RuleState("tariff", None, 3600.0, T0), "silent", T0 + 11 * HOUR)
    assert "Rule tariff has matched nothing since 2026-12-01 08:00:00 UTC, 11h ago" in silent
    assert "usually matches every 1h" in silent
    back = describe_rule(RuleState("tariff", "silent", 3600.0, T0 + 12 * HOUR, T0 + 11 * HOUR), "recovered",
                         T0 + 12 * HOUR)
    assert back.startswith("Rule tariff matches again") and "silent since 2026-12-01 19:00:00 UTC" in back


# ---- the store, on SQLite and PostgreSQL ----

@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def _match(db: Database, rule_id: str, times: Sequence[datetime]) -> None:
    with db.write() as session:
        for when in times:
            article = ArticleRow(key=f"{rule_id}-{uuid.uuid4().hex}", title="t", text_source="summary",
                                 created_at=when)
            session.add(article)
            session.flush()
            assert article.id is not None
            session.add(MatchRow(article_id=article.id, rule_id=rule_id, rule_title=rule_id, severity="alert",
                                 explanation="{}", matched_at=when))


def _describe(state: RuleState, kind: str, now: datetime) -> str:
    return f"{state.rule_id} {kind}"


def _kinds(db: Database, rules: Sequence[str], now: datetime, limits: RuleLimits = LIMITS) -> list[str]:
    return [n.kind for n in update_rule_health(db, rules, now, limits, "ops", _describe)]


def _sql(db: Database, statement: str) -> list[tuple[Any, ...]]:
    with db.engine.begin() as conn:
        return [tuple(row) for row in conn.execute(text(statement))]


@pytest.mark.both_databases
def test_a_silent_rule_gets_one_notice_and_one_recovery_when_it_matches_again(db: Database) -> None:
    _match(db, "tariff", _hourly(8))
    assert _kinds(db, ["tariff"], T0 + 9 * HOUR) == []
    assert _kinds(db, ["tariff"], T0 + 10 * HOUR) == ["silent"]
    for hours in (11, 20, 50):  # many looks while it stays silent: no second notice
        assert _kinds(db, ["tariff"], T0 + hours * HOUR) == []
    assert rule_health(db, ["tariff", "fta-round"]) == {"tariff": "silent", "fta-round": None}
    _match(db, "tariff", [T0 + 51 * HOUR])
    assert _kinds(db, ["tariff"], T0 + 51 * HOUR) == ["recovered"]
    assert _kinds(db, ["tariff"], T0 + 52 * HOUR) == []
    assert rule_health(db, ["tariff"]) == {"tariff": None}
    assert _sql(db, "SELECT rule_id, feed_id, feed_name, kind, message, status FROM feed_notices ORDER BY id") == [
        ("tariff", None, None, "silent", "tariff silent", "pending"),
        ("tariff", None, None, "recovered", "tariff recovered", "pending")]


@pytest.mark.both_databases
def test_no_notice_while_the_cadence_is_unknown_and_rules_not_asked_about_are_left_alone(db: Database) -> None:
    _match(db, "tariff", _hourly(LEARN_AFTER - 1))  # too few matches to learn a cadence from
    _match(db, "fta-round", _hourly(8))
    assert _kinds(db, ["tariff", "never-matched"], T0 + timedelta(days=30)) == []
    assert _sql(db, "SELECT COUNT(*) FROM rule_health") == [(0,)]  # nothing changed: nothing written
    _match(db, "tariff", [T0 + HOUR])  # the fifth: learned
    assert _kinds(db, ["tariff", "fta-round"], T0 + timedelta(days=30)) == ["silent", "silent"]


@pytest.mark.both_databases
def test_the_floor_holds_a_rule_that_matches_every_minute(db: Database) -> None:
    _match(db, "tariff", [T0 - n * timedelta(minutes=1) for n in range(10)])
    assert _kinds(db, ["tariff"], T0 + 5 * HOUR) == []  # 10 x 1 min passed long ago; the 6 h floor has not
    assert _kinds(db, ["tariff"], T0 + 6 * HOUR) == ["silent"]


@pytest.mark.both_databases
def test_workers_looking_at_once_report_a_change_once(db: Database, database_url: str) -> None:
    _match(db, "tariff", _hourly(8))
    workers = [Database(database_url) for _ in range(4)]
    found: list[str] = []
    start = threading.Barrier(len(workers))

    def look(worker: Database) -> None:
        start.wait()
        found.extend(_kinds(worker, ["tariff"], T0 + 11 * HOUR))

    threads = [threading.Thread(target=look, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for worker in workers:
        worker.dispose()
    assert found == ["silent"]
    assert _sql(db, "SELECT COUNT(*) FROM feed_notices") == [(1,)]


@pytest.mark.both_databases
def test_the_notifier_sends_rule_notices_to_the_console_and_to_slack_once(
        db: Database, tmp_path: Path, slack: Any) -> None:
    now = datetime.now(UTC)
    _match(db, "tariff", _hourly(8, now - 11 * HOUR))
    printed: list[str] = []
    settings = Settings(_env_file=None, rule_silent_min="1h")  # type: ignore[call-arg,arg-type]
    destinations = load_destinations(None)
    console = HealthNotifier(db, settings, destinations, SlackNotifier(db, destinations), timedelta(minutes=2))
    for _ in range(3):
        console.run([], printed.append, rules=["tariff"])
    assert len(printed) == 1 and printed[0].startswith("monitor health: Rule tariff has matched nothing")

    path = tmp_path / "destinations.yaml"
    path.write_text("destinations:\n  - {name: ops, kind: slack, webhook_url: '" + slack.base + "/hook'}\n")
    destinations = load_destinations(path)
    settings = Settings(_env_file=None, health_destination="ops", rule_silent_min="1h")  # type: ignore[call-arg,arg-type]
    notifier = HealthNotifier(db, settings, destinations, SlackNotifier(db, destinations), timedelta(minutes=2))
    _match(db, "tariff", [now])
    for _ in range(3):
        notifier.run([], printed.append, rules=["tariff"])
    posts = slack.to("/hook")
    assert len(posts) == 1 and "Rule tariff matches again" in posts[0][2]["text"] and len(printed) == 1
    assert _sql(db, "SELECT kind, destination, status FROM feed_notices ORDER BY id") == [
        ("silent", "console output", "sent"), ("recovered", "ops", "sent")]


# ---- under `monitor run` ----

def test_under_monitor_run_a_silent_rule_gets_one_notice_and_one_recovery_notice(
        server: Any, tmp_path: Path) -> None:
    """A rule with a learned cadence (matches seeded every 30 min, the last nearly an hour ago) falls silent
    past 2 x 30 min while `monitor run` polls an empty feed: one notice on the console output, however many
    health rounds follow; a matching entry brings one recovery notice."""
    from conftest import write_feeds
    from support.httpserver import Route
    from support.proc import stop
    from support.site import article_page, load_articles, rss
    from test_cli import base_env
    from test_service_run import EMPTY, _query, _start, _wait

    seeded = Database(f"sqlite:///{tmp_path / 'data' / 'monitor.db'}")
    seeded.migrate()
    last = datetime.now(UTC) - HOUR + timedelta(seconds=4)  # silent 4 s from now
    _match(seeded, "tariff", [last - n * timedelta(minutes=30) for n in range(8)])
    seeded.dispose()
    server.routes["/feed.xml"] = Route(EMPTY)
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml"),
                                                    "interval": "1s"}])
    env = base_env(tmp_path, feeds, MONITOR_POLL_TICK="0.3", MONITOR_WORKERS="1", PYTHONUNBUFFERED="1",
                   MONITOR_RULE_SILENT_FACTOR="2", MONITOR_RULE_SILENT_MIN="1m")
    silent, back = "monitor health: Rule tariff has matched nothing", "monitor health: Rule tariff matches again"
    proc, out = _start(env, tmp_path)
    try:
        assert _wait(lambda: silent in out.read_text(), 60), out.read_text()
        time.sleep(2)  # several more health rounds while it stays silent
        assert out.read_text().count(silent) == 1
        assert _query(tmp_path, "SELECT rule_id, health FROM rule_health") == [("tariff", "silent")]

        article = next(a for a in load_articles() if a["id"] == "reuters21578-10530")  # a tariff article
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
        server.routes["/feed.xml"] = Route(rss([article], server.base))
        assert _wait(lambda: back in out.read_text(), 60), out.read_text()
        time.sleep(2)
    finally:
        errors = stop(proc)
    assert proc.returncode == 0, errors
    text_out = out.read_text()
    assert text_out.count(silent) == 1 and text_out.count(back) == 1
    assert text_out.count("monitor health:") == 2  # nothing about the other rules or the feed
    assert _query(tmp_path, "SELECT rule_id, kind, status FROM feed_notices ORDER BY id") == [
        ("tariff", "silent", "sent"), ("tariff", "recovered", "sent")]
    assert _query(tmp_path, "SELECT rule_id, health FROM rule_health") == [("tariff", None)]
    assert "event=rule_health kind=silent" in (tmp_path / "run.err").read_text()
