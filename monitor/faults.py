"""Named kill points for crash tests (reliability cases 20-22): with MONITOR_KILL_AT=<name> in the
environment the process SIGKILLs itself when it reaches that point, exactly as a power cut would stop it.

after_outbox_commit  a feed's entries, matches and outbox rows are committed; nothing sent yet
after_provider_200   a provider accepted an alert or a digest; the outbox row is not yet marked sent

Not a setting: no running service should have it; tests set it on the process they kill.
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_outbox_commit", "after_provider_200")


def checkpoint(name: str) -> None:
    assert name in POINTS, name
    if os.environ.get("MONITOR_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
