"""`monitor demo`: see the whole service work offline, with bundled real feeds and no credentials."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from monitor.cli_common import fail, out, settings_or_exit
from monitor.errors import ConfigError
from monitor.logs import setup_logging


def demo(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port of the web page (0: any free port).")] = 0,
    serve: Annotated[bool, typer.Option("--serve/--no-serve",
                                        help="Serve the web page after printing the alerts (until Ctrl-C).")] = True,
) -> None:
    """Run the whole pipeline offline on bundled real news (English, Korean, Chinese; see
    monitor/demo/data/PROVENANCE.md): feeds and article pages served on 127.0.0.1, polled, extracted and
    matched with the shipped rules (./rules, or MONITOR_RULES_DIR) into a temporary database; each alert is
    printed with why it matched, then the web page is served until Ctrl-C. Needs no network, no
    credentials, and leaves nothing behind."""
    from monitor.demo import run_demo

    settings = settings_or_exit()  # a clear error for a broken setting
    if "log_level" not in settings.model_fields_set:  # the alerts are the show: only warnings from the log
        setup_logging("WARNING")
    stop = threading.Event()

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        run_demo(port, serve, lambda text: out.print(text, markup=False, highlight=False), stop)
    except ConfigError as exc:
        raise fail(exc) from exc
