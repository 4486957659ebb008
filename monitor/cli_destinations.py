"""`monitor destinations …`: check the destinations file and the rules' routes against it."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from monitor.cli_common import err, fail, out, settings_or_exit
from monitor.errors import ConfigError
from monitor.notify.destinations import Destinations, load_destinations, redacted, unknown_routes
from monitor.notify.probe import send_test as send_test_message
from monitor.rules.loader import load_rules
from monitor.store.db import Database

destinations_app = typer.Typer(help="Check where alerts and digests go.", no_args_is_help=True)


@destinations_app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one destination per line.")] = False,
    send_test: Annotated[bool, typer.Option("--send-test", help="Also send one test message to each destination "
                                                              "(exit 1 if one does not go out).")] = False,
) -> None:
    """Validate the destinations file (MONITOR_DESTINATIONS_FILE, else ./destinations.yaml, else the embedded
    console default) with every ${VARIABLE} it references, and check that each rule's routes name a
    destination. Secrets are shown as ****.

    Exit status: 0 all good; 2 the file, a variable or a route is wrong (reported as file:line: message);
    1 a test message (--send-test) did not go out.
    """
    settings = settings_or_exit()
    try:
        destinations = load_destinations(settings.destinations_file)
        problems = unknown_routes(load_rules(settings.rules_dir), destinations)
    except ConfigError as exc:
        raise fail(exc) from exc
    for destination in destinations.items:
        shown = redacted(destination)
        if as_json:
            out.print(json.dumps(shown, ensure_ascii=False), markup=False)
        else:
            out.print("  ".join(f"{k}={v}" for k, v in shown.items()), markup=False)
    if not as_json:
        out.print(f"{destinations.source}: {len(destinations.items)} destinations; default routes: "
                  f"{', '.join(destinations.default_routes)}", markup=False)
    for problem in problems:
        err.print(f"[red]error:[/red] {escape(problem)}")
    if problems:
        raise typer.Exit(2)
    if send_test:
        _send_tests(settings.database_url, destinations)


def _send_tests(database_url: str, destinations: Destinations) -> None:
    db = Database(database_url)
    failed = 0
    try:
        for destination in destinations.items:
            problem = send_test_message(destination, db, lambda text: print(text, flush=True))
            if problem is None:
                err.print(f"test message to {destination.name}: sent")
            else:
                failed += 1
                err.print(f"[red]test message to {escape(destination.name)} failed:[/red] {escape(problem)}")
    finally:
        db.dispose()
    if failed:
        raise typer.Exit(1)
