"""Stopping a `monitor` process a test started: SIGTERM, then its standard error (killed if it hangs)."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


def stop(proc: subprocess.Popen[Any]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    if stderr is None:
        return ""
    return stderr.decode(errors="replace") if isinstance(stderr, bytes) else str(stderr)
