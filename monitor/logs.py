"""Structured logging: one line per event, `key=value` fields with fixed names (feed, rule, event...)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "trafilatura", "htmldate", "courlan", "apscheduler.executors",
                  "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
