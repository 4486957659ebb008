"""What the API reads from: the database, the rules in force, and whether the scheduler is alive."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.rules.engine import RuleSet
from monitor.settings import Settings
from monitor.store.db import Database


@dataclass
class Heartbeat:
    """Beaten by a scheduler job; /readyz calls the scheduler dead when it is older than ``stale`` seconds."""

    stale: float
    last: float = field(default_factory=time.monotonic)

    def beat(self) -> None:
        self.last = time.monotonic()

    def alive(self) -> bool:
        return time.monotonic() - self.last < self.stale


@dataclass
class ApiContext:
    settings: Settings
    db: Database
    rules: Callable[[], RuleSet]  # the rules in force now (a reload swaps them)
    heartbeat: Heartbeat | None = None  # None: no scheduler in this process (`monitor serve`)
