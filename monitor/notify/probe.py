"""`monitor destinations check --send-test`: one test message to each destination, through the same code
that sends alerts (rendering, escaping, TLS, error classification), without touching the outbox."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from monitor.errors import MonitorError
from monitor.notify.destinations import DestinationModel, Destinations
from monitor.notify.email import compose, deliver_message
from monitor.notify.slack import SlackNotifier
from monitor.notify.slack_blocks import render
from monitor.store.db import Database
from monitor.store.queries import MatchView


def _sample() -> MatchView:
    now = datetime.now(UTC)
    return MatchView(id=0, rule="test", rule_title="Test message from monitor", severity="alert",
                     title="monitor: test message (no action needed)", url=None, feed="monitor", feeds=("monitor",),
                     lang="en", published=now, matched_at=now, text_source="summary",
                     explanation={"snippet": "If you can read this, alerts reach this destination.", "hits": []})


def send_test(destination: DestinationModel, db: Database, write: Callable[[str], None] = print) -> str | None:
    """Send one test message; None when it went out, else the reason it did not."""
    sample = _sample()
    try:
        if destination.kind == "console":
            write(f"monitor: test message for destination {destination.name!r}")
        elif destination.kind == "slack":
            SlackNotifier(db, _single(destination)).post(destination, *render([sample]))
        else:
            refused = deliver_message(destination, compose([sample], destination))
            if refused:
                return "refused recipients: " + ", ".join(sorted(refused))
    except (MonitorError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _single(destination: DestinationModel) -> Destinations:
    return Destinations((destination,), (destination.name,), "test")
