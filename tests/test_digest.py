"""Digests: when they are due (cron in an IANA time zone, quiet hours), once per (destination, period), what
they hold (every waiting item exactly once, grouped by rule), Slack digests split within the limits and
resumed after the last accepted part."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text as sql_text
from support.fakeslack import Answer, FakeSlack
from support.httpserver import LocalServer
from support.outbox import Item, at, seed

from monitor.notify.destinations import QuietHours, load_destinations
from monitor.notify.digest import send_due_digests
from monitor.notify.digest_content import build_digest
from monitor.notify.notifiers import notifiers
from monitor.notify.periods import Period, due_period, in_quiet_hours, last_fire
from monitor.notify.slack_blocks import MAX_BLOCKS, MAX_MESSAGE_CHARS, MAX_SECTION_CHARS, render_digest, text_of
from monitor.store.db import Database
from monitor.store.digests import list_digests
from monitor.store.queries import MatchView

SEOUL = ZoneInfo("Asia/Seoul")
NEW_YORK = ZoneInfo("America/New_York")


def test_last_fire_time_in_the_destination_time_zone() -> None:
    # 08:00 in Seoul is 23:00 UTC the day before
    assert last_fire("0 8 * * *", SEOUL, at("2026-11-29 00:30")) == at("2026-11-28 23:00")
    assert last_fire("0 8 * * *", SEOUL, at("2026-11-28 22:59")) == at("2026-11-27 23:00")
    assert last_fire("0 8 * * *", SEOUL, at("2026-11-28 23:00")) == at("2026-11-28 23:00")  # on the dot
    # a daylight-saving zone: 08:00 New York is 12:00 UTC in summer time, 13:00 UTC after it ended (Nov 1)
    assert last_fire("0 8 * * *", NEW_YORK, at("2026-10-30 14:00")) == at("2026-10-30 12:00")
    assert last_fire("0 8 * * *", NEW_YORK, at("2026-11-02 14:00")) == at("2026-11-02 13:00")
    assert last_fire("*/5 * * * *", ZoneInfo("UTC"), at("2026-11-29 12:07:30")) == at("2026-11-29 12:05")
    assert last_fire("0 9 * * 1", SEOUL, at("2026-11-29 00:00")) == at("2026-11-23 00:00")  # weekly: Monday
    assert last_fire("0 0 1 1 *", ZoneInfo("UTC"), at("2026-11-29 00:00")) == at("2026-01-01 00:00")  # yearly


def test_quiet_hours_window() -> None:
    night, office = QuietHours(start="22:00", end="07:00"), QuietHours(start="09:00", end="17:00")
    utc = ZoneInfo("UTC")
    assert [in_quiet_hours(night, at(f"2026-11-29 {t}"), utc) for t in ("21:59", "22:00", "03:00", "06:59", "07:00")] \
        == [False, True, True, True, False]
    assert [in_quiet_hours(office, at(f"2026-11-29 {t}"), utc) for t in ("08:59", "09:00", "16:59", "17:00")] \
        == [False, True, True, False]
    assert in_quiet_hours(night, at("2026-11-29 14:00"), SEOUL)  # 23:00 in Seoul
    assert not in_quiet_hours(None, at("2026-11-29 03:00"), utc)


def _destinations(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "destinations.yaml"
    path.write_text(f"destinations:\n{body}")
    return path


def test_due_period_with_quiet_hours(tmp_path: Path) -> None:
    hourly = load_destinations(_destinations(tmp_path, (
        "  - {name: digest, kind: console, mode: digest, schedule: '0 * * * *', timezone: UTC,\n"
        "     quiet_hours: {start: '22:00', end: '07:00'}}\n")), {}).items[0]
    assert due_period(hourly, at("2026-11-20 21:00:10")) == Period(at("2026-11-20 21:00"), "scheduled", False)
    assert due_period(hourly, at("2026-11-20 23:00:10")) == Period(at("2026-11-20 23:00"), "scheduled", True)
    # the end of the quiet hours is also a fire time: the scheduled digest, with everything
    assert due_period(hourly, at("2026-11-21 07:00:10")) == Period(at("2026-11-21 07:00"), "scheduled", False)
    half = load_destinations(_destinations(tmp_path, (
        "  - {name: digest, kind: console, mode: digest, schedule: '30 * * * *', timezone: UTC,\n"
        "     quiet_hours: {start: '22:00', end: '07:00'}}\n")), {}).items[0]
    assert due_period(half, at("2026-11-21 07:10")) == Period(at("2026-11-21 07:00"), "quiet", False)
    assert due_period(half, at("2026-11-21 07:40")) == Period(at("2026-11-21 07:30"), "scheduled", False)
    # no fire time inside the quiet hours: nothing was held, no release when they end
    morning = load_destinations(_destinations(tmp_path, (
        "  - {name: digest, kind: console, mode: digest, schedule: '0 8 * * *', timezone: Asia/Seoul,\n"
        "     quiet_hours: {start: '22:00', end: '07:00'}}\n")), {}).items[0]
    assert due_period(morning, at("2026-11-29 22:30")) == Period(at("2026-11-28 23:00"), "scheduled", False)


def test_quiet_hours_on_an_immediate_destination_are_refused(tmp_path: Path) -> None:
    from monitor.errors import ConfigError

    path = _destinations(tmp_path, "  - {name: desk, kind: console, quiet_hours: {start: '22:00', end: '07:00'}}\n")
    with pytest.raises(ConfigError, match=r"destinations.yaml:2: .*'desk'.*give quiet_hours to a digest destination"):
        load_destinations(path, {})


class Screen:
    def __init__(self) -> None:
        self.printed: list[str] = []

    def __call__(self, text: str) -> None:
        self.printed.append(text)


def _console_digest(tmp_path: Path, schedule: str, quiet: str = "") -> tuple[Path, Screen]:
    path = _destinations(tmp_path, f"  - {{name: digest, kind: console, mode: digest, schedule: '{schedule}', "
                                   f"timezone: UTC{quiet}}}\n")
    return path, Screen()


def _statuses(db: Database) -> list[tuple[int, str, int | None]]:
    with db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(  # type: ignore[misc]
            sql_text("SELECT article_id, status, digest_id FROM deliveries ORDER BY article_id"))]


@pytest.mark.both_databases
def test_one_digest_per_period_however_often_the_job_runs_and_catch_up_sends_one(tmp_path: Path,
                                                                                 database_url: str) -> None:
    path, screen = _console_digest(tmp_path, "0 8 * * *")
    destinations = load_destinations(path, {})
    items = [Item(f"Story {n}", f"https://news.test/{n}", [("tariff", "alert"), ("fta-round", "digest")][: 1 + n % 2],
                  at("2026-11-20 06:00") + timedelta(minutes=n)) for n in range(6)]
    # queued after that first digest, over three days the service is down
    items += [Item(f"Later {n}", f"https://news.test/later{n}", [("tariff", "alert")],
                   at("2026-11-21 09:00") + timedelta(days=n)) for n in range(3)]
    db = seed(database_url, items)
    kinds = notifiers(db, destinations, screen)
    # before 08:00 nothing is due; at 08:00 and after, one digest, however often the job runs
    assert send_due_digests(db, destinations, kinds, at("2026-11-20 07:59")).sent == 0
    for minute in range(0, 50, 7):
        send_due_digests(db, destinations, kinds, at("2026-11-20 08:00") + timedelta(minutes=minute))
    assert len(screen.printed) == 1
    text = screen.printed[0]
    assert "digest digest: 6 articles, 2 rules" in text
    assert "== Fta Round (fta-round): 3 articles" in text and "== Tariff (tariff): 6 articles" in text
    assert all(text.count(f"https://news.test/{n}\n") == (2 if n % 2 else 1) for n in range(6))
    assert {(s, d) for _, s, d in _statuses(db)[:6]} == {("sent", 1)}
    assert {(s, d) for _, s, d in _statuses(db)[6:]} == {("pending", None)}

    # back after three days down: one digest for everything that waited, at the first look
    send_due_digests(db, destinations, kinds, at("2026-11-24 10:00"))
    send_due_digests(db, destinations, kinds, at("2026-11-24 10:05"))
    assert len(screen.printed) == 2 and "3 articles" in screen.printed[1]
    assert [(d.period_end, d.kind, d.items) for d in list_digests(db)] == [
        (at("2026-11-24 08:00"), "scheduled", 3), (at("2026-11-20 08:00"), "scheduled", 6)]
    db.dispose()


@pytest.mark.both_databases
@pytest.mark.parametrize(("schedule", "release"), [("0 * * * *", "scheduled"), ("30 * * * *", "quiet")])
def test_quiet_hours_hold_non_alert_items_and_release_them_in_one_digest(tmp_path: Path, schedule: str,
                                                                         release: str, database_url: str) -> None:
    path, screen = _console_digest(tmp_path, schedule, ", quiet_hours: {start: '22:00', end: '07:00'}")
    destinations = load_destinations(path, {})
    items = [Item(f"Alert {n}", f"https://news.test/a{n}", [("export-control", "alert")], at("2026-11-20 21:40"))
             for n in range(2)]
    items += [Item(f"Digest {n}", f"https://news.test/d{n}", [("fta-round", "digest")], at("2026-11-20 21:40"))
              for n in range(3)]
    items += [Item("Late alert", "https://news.test/late", [("tariff", "alert")], at("2026-11-21 01:10"))]
    db = seed(database_url, items)
    kinds = notifiers(db, destinations, screen)
    night = [at("2026-11-20 22:00:05"), at("2026-11-20 22:30:05"), at("2026-11-20 23:00:05"),
             at("2026-11-21 01:30:05"), at("2026-11-21 02:00:05"), at("2026-11-21 06:59:59")]
    for moment in night:
        send_due_digests(db, destinations, kinds, moment)
    # at night only the alert items went out, at the fire times (inside the quiet hours)
    assert len(screen.printed) == 2
    assert "alerts during quiet hours: 2 articles" in screen.printed[0] and "Digest" not in screen.printed[0]
    assert "Late alert" in screen.printed[1] and "Digest" not in screen.printed[1]
    for moment in (at("2026-11-21 07:00:05"), at("2026-11-21 07:00:30"), at("2026-11-21 07:05")):
        send_due_digests(db, destinations, kinds, moment)
    assert len(screen.printed) == 3  # one release when the quiet hours end, with what was held
    released = screen.printed[2]
    assert "3 articles" in released and all(f"https://news.test/d{n}" in released for n in range(3))
    assert "Alert" not in released
    assert list_digests(db)[0].kind == release and list_digests(db)[0].period_end == at("2026-11-21 07:00")
    assert {s for _, s, _ in _statuses(db)} == {"sent"}
    db.dispose()


def _view(n: int, title: str, snippet: str) -> MatchView:
    return MatchView(id=n, rule=f"rule-{n % 3}", rule_title=f"Rule {n % 3}", severity="alert", title=title,
                     url=f"https://news.test/{n}", feed="wire", feeds=("wire",), lang="en",
                     published=datetime(2026, 11, 20, 8, 0, tzinfo=UTC), matched_at=datetime(2026, 11, 20, tzinfo=UTC),
                     text_source="extracted", explanation={"snippet": snippet, "hits": [{"term": "x", "text": "x"}]},
                     article_id=n)


def _check_limits(messages: list[tuple[str, list[dict[str, object]]]]) -> None:
    for text, blocks in messages:
        assert len(blocks) <= MAX_BLOCKS and len(text) <= 300
        assert all(len(text_of(b)) <= MAX_SECTION_CHARS for b in blocks)
        assert sum(len(text_of(b)) for b in blocks) <= MAX_MESSAGE_CHARS


def test_slack_digest_is_split_within_the_limits_and_escaped() -> None:
    """Reliability case 27 for digests: 200 matches, 100 KB of text each, hostile titles."""
    from monitor.notify.digest_content import Digest, RuleGroup

    evil = "<!channel> <https://evil.test|bank> & *x* " * 30
    views = [_view(n, evil, ("x &lt;!here&gt; " + "word " * 20_000)) for n in range(200)]
    groups = tuple(RuleGroup(f"rule-{r}", f"Rule {r}", tuple(v for v in views if v.rule == f"rule-{r}"))
                   for r in range(3))
    digest = Digest("desk", at("2026-11-20 08:00"), "Asia/Seoul", "scheduled", False, 200, groups)
    messages = render_digest(digest)
    _check_limits(messages)
    shown = json.dumps(messages, ensure_ascii=False)
    assert "<!channel>" not in shown and "<https://evil.test|bank>" not in shown and "<!here>" not in shown
    assert "&amp;lt;!here&amp;gt;" in shown  # text that was entity-encoded stays inert
    linked = sum(shown.count(f"<https://news.test/{n}|") for n in range(200))
    assert 1 < len(messages) <= 20
    omitted = int(shown.split("…and ")[1].split(" more articles")[0]) if "more articles not shown" in shown else 0
    assert linked + omitted == 200  # every article either shown once or counted
    assert "(part 1/" in messages[0][0]

    small = Digest("desk", at("2026-11-20 08:00"), "UTC", "scheduled", False, 7,
                   (RuleGroup("rule-0", "Rule 0", tuple(_view(n, f"T{n}", "short x") for n in range(7))),))
    assert len(render_digest(small)) == 1 and "part" not in render_digest(small)[0][0]


@pytest.mark.both_databases
def test_a_split_slack_digest_resumes_after_the_last_accepted_part(tmp_path: Path, slack: FakeSlack,
                                                                  database_url: str) -> None:
    path = _destinations(tmp_path, f"  - {{name: digest, kind: slack, webhook_url: '{slack.base}/hook', "
                                   "mode: digest, schedule: '0 8 * * *', timezone: UTC}\n")
    destinations = load_destinations(path, {})
    db = seed(database_url, [Item(f"Story {n} " + "long title " * 20, f"https://news.test/{n}",
                                       [("tariff", "alert")], at("2026-11-20 06:00"), snippet="x " * 400)
                                  for n in range(40)])
    kinds = notifiers(db, destinations, print)
    slack.script["/hook"] = [Answer(), Answer(500, "server_error")]
    summary = send_due_digests(db, destinations, kinds, at("2026-11-20 08:00:05"))
    assert (summary.sent, summary.retrying) == (0, 1) and len(slack.posts) == 2
    digest = list_digests(db)[0]
    assert (digest.status, digest.parts_sent, digest.attempts) == ("pending", 1, 1)

    # a later round sends the rest only; the sender dies during the next part (lease over) → that part once more
    with db.write() as session:
        digest.status, digest.next_attempt_at = "sending", at("2026-11-20 08:10")
        session.add(digest)
    summary = send_due_digests(db, destinations, kinds, at("2026-11-20 09:00"))
    assert summary.sent == 1
    accepted = [slack.posts[0], *slack.posts[2:]]
    parts = build_digest(db, [(n + 1, ("tariff",)) for n in range(40)], "digest", "UTC", at("2026-11-20 08:00"),
                         "scheduled")
    total = len(render_digest(parts))
    assert total >= 3 and len(accepted) == total  # part 1, then parts 2..n (part 2 had failed)
    assert all(f"(part {n}/{total})" in body["text"] for n, (_, _, body) in enumerate(accepted, 1))
    flagged = [n for n, (_, _, body) in enumerate(accepted, 1) if "possible duplicate" in json.dumps(body)]
    assert flagged == [2]
    shown = json.dumps([body for _, _, body in accepted])
    assert all(shown.count(f"<https://news.test/{n}|") == 1 for n in range(40))
    assert list_digests(db)[0].status == "sent" and {s for _, s, _ in _statuses(db)} == {"sent"}
    db.dispose()


@pytest.mark.parametrize(("field", "names"), [
    ("*", "*"), ("0", "sun"), ("7", "sun"), ("1", "mon"), ("1-5", "mon,tue,wed,thu,fri"), ("0-2", "sun,mon,tue"),
    ("5-7", "sun,fri,sat"), ("fri-sun", "sun,fri,sat"), ("*/2", "sun,tue,thu,sat"), ("1/2", "mon,wed,fri"),
    ("sat,SUN", "sun,sat")])
def test_cron_weekdays_count_from_sunday_as_crontab_does(field: str, names: str) -> None:
    from monitor.notify.cron import weekdays

    assert weekdays(field) == names


@pytest.mark.parametrize(("schedule", "error"), [
    ("0 8 * *", "expected five fields"), ("0 8 1 * 1", "not both"), ("0 8 * * 8", "not 0-7"),
    ("0 8 * * 5-1", "runs backwards"), ("0 25 * * *", "hour")])
def test_bad_cron_schedules_are_refused(schedule: str, error: str) -> None:
    from monitor.notify.cron import cron_trigger

    with pytest.raises(ValueError, match=error):
        cron_trigger(schedule, ZoneInfo("UTC"))


def test_rows_queued_before_a_destination_changed_mode_are_still_sent(tmp_path: Path) -> None:
    from monitor.notify.sender import deliver_due

    path = _destinations(tmp_path, "  - {name: digest, kind: console, mode: digest, schedule: '0 8 * * *'}\n"
                                   "  - {name: screen, kind: console}\n")
    destinations = load_destinations(path, {})
    # queued while 'digest' was immediate (alert rows) and 'screen' a digest destination (digest rows)
    items = [Item(f"Story {n}", f"https://news.test/{n}", [("tariff", "alert")], at("2026-11-20 06:00"),
                  destinations=["digest" if n < 2 else "screen"]) for n in range(4)]
    db = seed(tmp_path / "m.db", items[:2], kind="alert")
    db.dispose()
    with sqlite3.connect(tmp_path / "m.db") as conn:  # the other two as digest rows, for 'screen'
        conn.execute("INSERT INTO deliveries (article_id, destination, kind, rules, status, alert, attempts, "
                     "next_attempt_at, created_at, possible_duplicate) SELECT article_id, 'screen', 'digest', rules, "
                     "'pending', 1, 0, next_attempt_at, created_at, 0 FROM deliveries")
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    screen = Screen()
    kinds = notifiers(db, destinations, screen)
    assert deliver_due(db, destinations, kinds, at("2026-11-20 07:00")).sent == 2  # 'screen': one by one
    assert send_due_digests(db, destinations, kinds, at("2026-11-20 08:00:01")).sent == 1  # 'digest': one digest
    assert len(screen.printed) == 3 and "digest digest: 2 articles" in screen.printed[2]
    assert {s for _, s, _ in _statuses(db)} == {"sent"}
    db.dispose()


def test_monitor_run_sends_a_due_digest_once(server: LocalServer, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from conftest import write_feeds
    from support.httpserver import Route
    from support.site import rss
    from test_cli import base_env

    server.routes["/feed.xml"] = Route(rss([], server.base))
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
    path, _ = _console_digest(tmp_path, "0 8 * * *")
    (tmp_path / "data").mkdir()
    seed(tmp_path / "data" / "monitor.db", [Item(f"Story {n}", f"https://news.test/{n}", [("tariff", "alert")],
                                                 at("2026-11-20 06:00")) for n in range(3)]).dispose()
    env = base_env(tmp_path, feeds, MONITOR_DESTINATIONS_FILE=str(path), MONITOR_POLL_TICK="0.5")
    out = tmp_path / "out.txt"
    with out.open("wb") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, cwd=tmp_path, stdout=handle,
                                stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while "3 articles" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # several more rounds of the digest job
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert out.read_text().count("digest digest: 3 articles, 1 rule") == 1
    with sqlite3.connect(tmp_path / "data" / "monitor.db") as conn:
        assert conn.execute("SELECT status, items FROM digests").fetchall() == [("sent", 3)]
