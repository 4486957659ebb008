"""Functions run inside worker processes by tests (importable by the spawned interpreter)."""

from __future__ import annotations

import os
import time


def pid() -> int:
    return os.getpid()


def die() -> None:
    os._exit(3)


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"


def with_context(context: dict[str, int], key: str) -> int:
    return context[key]


def boom() -> None:
    raise ZeroDivisionError("bug in untrusted-input code")
