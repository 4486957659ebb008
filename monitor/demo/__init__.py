"""`monitor demo`: the whole pipeline offline, with no credentials — bundled real feeds and pages served on
127.0.0.1, polled, extracted and matched with the shipped rules into a temporary database, the alerts
printed (with why each matched) by the console destination, then the web page served until interrupted."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from monitor.demo.site import DemoSite
from monitor.errors import ConfigError
from monitor.settings import Settings, load_settings

if TYPE_CHECKING:
    from monitor.service import Service

log = logging.getLogger(__name__)

DESTINATIONS = "destinations:\n  - name: console\n    kind: console\ndefault_routes: [console]\n"


def demo_settings(workdir: Path, site: DemoSite, port: int, **overrides: Any) -> Settings:
    """The user's settings (rules, workers, log level…) with everything the demo owns replaced: a database,
    feeds and destinations of its own in ``workdir``, the site's loopback address allowed, no spacing."""
    feeds = workdir / "feeds.yaml"
    feeds.write_text(yaml.safe_dump({"feeds": site.feeds}), encoding="utf-8")
    destinations = workdir / "destinations.yaml"
    destinations.write_text(DESTINATIONS, encoding="utf-8")
    settings = load_settings(
        database_url=f"sqlite:///{workdir / 'demo.db'}", feeds_file=feeds, destinations_file=destinations,
        allow_private_networks="127.0.0.1/32", per_host_delay=0, api_host="127.0.0.1", api_port=port,
        health_destination="", **overrides)
    if not settings.rules_dir.is_dir():
        raise ConfigError(f"{settings.rules_dir}: no rules directory — run the demo from the repository root "
                          "(it matches with the shipped rules in ./rules) or set MONITOR_RULES_DIR")
    return settings


def run_demo(port: int = 0, serve: bool = True, write: Callable[[str], None] = print,
             stop: threading.Event | None = None) -> int:
    """Run the demo; returns the number of alerts printed. With ``serve`` the web page stays up until
    ``stop`` is set (the command sets it on Ctrl-C/SIGTERM)."""
    from monitor.service import Service

    started = time.monotonic()
    site = DemoSite().start()
    with tempfile.TemporaryDirectory(prefix="monitor-demo-") as folder:
        try:
            settings = demo_settings(Path(folder), site, port)
            write(f"monitor demo: serving {len(site.feeds)} bundled feeds on {site.base} (offline; a temporary "
                  f"database in {folder})")
            service = Service(settings)
            try:
                alerts = _poll_and_alert(service, write)
                write(f"monitor demo: {alerts} alerts in {time.monotonic() - started:.1f}s — each with the "
                      "terms that matched and the sentence around them ('why:')")
                if serve:
                    _serve(service, write, stop or threading.Event())
            finally:
                service.close()
        finally:
            site.stop()
    return alerts


def _poll_and_alert(service: Service, write: Callable[[str], None]) -> int:
    summary = service.poll_all()
    write(f"monitor demo: polled {summary.feeds_ok + summary.feeds_not_modified} feeds, "
          f"{summary.new_entries} entries, {summary.new_matches} matches")
    for name, reason in summary.failures:
        write(f"monitor demo: feed {name} failed: {reason}")
    sent = 0
    while (delivered := service.deliver(write)).sent:  # the console destination prints each alert
        sent += delivered.sent
    return sent


def _serve(service: Service, write: Callable[[str], None], stop: threading.Event) -> None:
    api = service.start_api(None)
    try:
        write(api.announce())
        write("monitor demo: the web page shows the matches with their explanations; Ctrl-C stops the demo "
              "and deletes its database")
        stop.wait()
    finally:
        api.stop()
