"""The notifier of each destination kind, for alert rows and digests alike."""

from __future__ import annotations

from collections.abc import Callable

from monitor.notify.console import ConsoleNotifier
from monitor.notify.destinations import Destinations
from monitor.notify.email import EmailNotifier
from monitor.notify.slack import SlackNotifier
from monitor.store.db import Database

Notifiers = dict[str, ConsoleNotifier | SlackNotifier | EmailNotifier]


def notifiers(db: Database, destinations: Destinations, write: Callable[[str], None],
              slack: SlackNotifier | None = None) -> Notifiers:
    """By kind name; ``write`` prints the console destination's messages; ``slack``: a notifier kept across
    rounds (it holds the one-message-a-second pace per destination)."""
    return {"console": ConsoleNotifier(db, write), "slack": slack or SlackNotifier(db, destinations),
            "email": EmailNotifier(db, destinations)}
