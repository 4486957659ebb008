"""Structured logging: one line per event, `key=value` fields with fixed names (feed, rule, event...)."""

from __future__ import annotations

import logging
import sys

_SECRETS: list[str] = []


class _Redacting(logging.Formatter):
    """Every secret registered with ``redact_secrets`` shown as **** (messages and tracebacks alike)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def redact(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "****")
    return text


def redact_secrets(values: list[str]) -> None:
    """Never show these strings in a log line (webhook URLs, tokens, passwords: destinations.secrets())."""
    _SECRETS[:] = sorted({v for v in [*_SECRETS, *values] if len(v) >= 6}, key=len, reverse=True)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # slack_sdk logs every request's URL and headers at DEBUG: the webhook URL and the bot token are secrets
    for noisy in ("httpx", "httpcore", "trafilatura", "htmldate", "courlan", "apscheduler.executors",
                  "alembic.runtime.migration", "slack_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
