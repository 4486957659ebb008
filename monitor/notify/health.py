"""Health notices: one operational alert when a feed fails for too long, is paused or falls silent, or a
rule that used to match falls silent, and one recovery notice when it is back — to MONITOR_HEALTH_DESTINATION
(else the service's console output), never one per poll."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from functools import partial

from monitor.errors import ConfigError
from monitor.notify.destinations import DestinationModel, Destinations
from monitor.notify.email import deliver_message, envelope, header_text
from monitor.notify.sender import DeliverySummary, attempt, tally
from monitor.notify.slack import SlackNotifier
from monitor.notify.slack_blocks import MAX_SECTION_CHARS, escape
from monitor.settings import Settings
from monitor.store.db import Database
from monitor.store.notices import Notice, Thresholds, claim_notice, mark_notice, update_health
from monitor.store.rule_health import RuleLimits, RuleState, update_rule_health
from monitor.store.tables import FeedRow

log = logging.getLogger(__name__)

CONSOLE = "console output"  # the destination of notices when MONITOR_HEALTH_DESTINATION is not set
MAX_ROUND = 50  # notices sent per round at most (the rest wait for the next round)


def health_destination(settings: Settings, destinations: Destinations) -> DestinationModel | None:
    """The configured destination, or None (console output); ConfigError when it names no destination."""
    name = settings.health_destination
    if name is None:
        return None
    destination = destinations.get(name)
    if destination is None:
        known = ", ".join(d.name for d in destinations.items)
        raise ConfigError(f"MONITOR_HEALTH_DESTINATION: no destination named {name!r} (the destinations are: {known})")
    return destination


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(timedelta(seconds=settings.health_failing_after), settings.health_silent_factor,
                      timedelta(seconds=settings.health_silent_min))


def rule_limits(settings: Settings) -> RuleLimits:
    return RuleLimits(settings.rule_silent_factor, timedelta(seconds=settings.rule_silent_min))


def describe_rule(state: RuleState, kind: str, now: datetime) -> str:
    """The text of a notice about the rule ``state`` (as seen when the change is stored)."""
    if kind == "silent":
        return (f"Rule {state.rule_id} has matched nothing since {_ago(state.last_match_at, now)} although it "
                f"usually matches every {_span(state.cadence or 0)}: check its feeds (`monitor feeds`) and "
                f"the rule file.")
    return (f"Rule {state.rule_id} matches again: newest match {_ago(state.last_match_at, now)} "
            f"(silent since {_ago(state.changed_at, now)}).")


def describe(row: FeedRow, kind: str, now: datetime) -> str:
    """The text of a notice about ``row`` (the feed's state as the change is stored)."""
    if kind == "failing":
        since = _ago(row.failing_since, now)
        paused = (f"; paused after {row.consecutive_errors} failures in a row — after fixing the cause run "
                  f"`monitor feeds resume {row.name}`") if row.paused_at is not None else ""
        return (f"Feed {row.name} is failing (since {since}, {row.consecutive_errors} failures in a row{paused}). "
                f"Last error: {row.last_error_class}: {(row.last_error or '')[:500]}. URL: {row.url}")
    if kind == "silent":
        return (f"Feed {row.name} has brought no new entry for {_ago(row.last_new_entry_at, now)} although it "
                f"usually brings one every {_span(row.cadence or 0)}; it still answers. URL: {row.url}")
    return f"Feed {row.name} recovered: {_state(row)}. URL: {row.url}"


def _state(row: FeedRow) -> str:
    if row.health == "silent":
        return "a new entry arrived"
    return f"polled successfully at {row.last_success_at:%Y-%m-%d %H:%M:%S} UTC" if row.last_success_at else "polled"


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "unknown"
    return f"{when:%Y-%m-%d %H:%M:%S} UTC, {_span((now - when).total_seconds())} ago"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{seconds:.0f}s"


class HealthNotifier:
    """Turns feed- and rule-health changes into notices and sends them."""

    def __init__(self, db: Database, settings: Settings, destinations: Destinations, slack: SlackNotifier,
                 lease: timedelta) -> None:
        self._db = db
        self._destination = health_destination(settings, destinations)  # ConfigError: a name of nothing
        self._limits = thresholds(settings)
        self._rule_limits = rule_limits(settings)
        self._slack = slack
        self._lease = lease

    def run(self, feeds: Collection[str], write: Callable[[str], None] = print, now: datetime | None = None,
            rules: Collection[str] = ()) -> DeliverySummary:
        """Store the health changes of ``feeds`` and ``rules`` (their notices queued in the same transaction)
        and send the notices that are due (console output: ``write``)."""
        now = now or datetime.now(UTC)
        name = self._destination.name if self._destination else CONSOLE
        for notice in update_health(self._db, feeds, now, self._limits, name, describe):
            level = logging.INFO if notice.kind == "recovered" else logging.WARNING
            log.log(level, "feed=%s event=feed_health kind=%s destination=%s", notice.feed_name, notice.kind, name)
        for notice in update_rule_health(self._db, rules, now, self._rule_limits, name, describe_rule):
            level = logging.INFO if notice.kind == "recovered" else logging.WARNING
            log.log(level, "rule=%s event=rule_health kind=%s destination=%s", notice.rule_id, notice.kind, name)
        return self._send_due(now, write)

    def _send_due(self, now: datetime, write: Callable[[str], None]) -> DeliverySummary:
        summary = DeliverySummary()
        for _ in range(MAX_ROUND):
            notice = claim_notice(self._db, now, self._lease)
            if notice is None:
                break
            outcome = attempt(partial(self._send, notice, write), notice.attempts, now)
            if outcome.status == "sent":
                mark_notice(self._db, notice.id, "sent", datetime.now(UTC), outcome.error)
            elif outcome.status == "retry":
                assert outcome.retry_at is not None
                mark_notice(self._db, notice.id, "pending", outcome.retry_at, outcome.error)
            else:
                mark_notice(self._db, notice.id, "dead", now, outcome.error)
            tally(summary, outcome, f"destination={notice.destination} notice={notice.id}", notice.attempts)
        return summary

    def _send(self, notice: Notice, write: Callable[[str], None]) -> None:
        destination, text = self._destination, notice.message
        if destination is None or destination.name != notice.destination or destination.kind == "console":
            write(f"monitor health: {text}")
        elif destination.kind == "slack":
            icon = ":white_check_mark:" if notice.kind == "recovered" else ":warning:"
            safe = escape(text)[: MAX_SECTION_CHARS - 30]
            self._slack.post(destination, safe, [{"type": "section", "text": {"type": "mrkdwn",
                                                                              "text": f"{icon} {safe}"}}])
        else:
            message = envelope(destination, header_text(f"monitor: {text}"))
            message.set_content(text + "\n")
            refused = deliver_message(destination, message)
            if refused:
                log.warning("event=notice_partly_refused destination=%s refused=%s", destination.name,
                            ", ".join(sorted(refused)))
