"""`monitor deliver` and `monitor deliveries`: send what the outbox holds, and show it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from monitor.cli_common import err, fail, out, settings_or_exit
from monitor.errors import ConfigError
from monitor.notify.console import ConsoleNotifier
from monitor.notify.destinations import load_destinations
from monitor.notify.email import EmailNotifier
from monitor.notify.sender import Notifier, deliver_due
from monitor.notify.slack import SlackNotifier
from monitor.store.db import Database
from monitor.store.outbox import list_deliveries

STATUSES = ("pending", "sending", "sent", "failed", "dead")


def deliver(
    once: Annotated[bool, typer.Option("--once", help="Send what is due once and exit.")] = False,
) -> None:
    """Send the alerts that are due from the outbox (new matches, and retries whose time has come), once.

    The console destination prints them on standard output; Slack destinations get one message a second;
    e-mail destinations one message per alert.
    `monitor run` does this continuously (every few seconds, one job per destination).
    Exit status 1 if an alert failed for good in this round.
    """
    if not once:
        err.print("[red]error:[/red] use --once (`monitor run` delivers continuously)")
        raise typer.Exit(2)
    settings = settings_or_exit()
    try:
        destinations = load_destinations(settings.destinations_file)
    except ConfigError as exc:
        raise fail(exc) from exc
    db = Database(settings.database_url)
    try:
        db.migrate()
        console = ConsoleNotifier(db, lambda text: print(text, flush=True))
        notifiers: dict[str, Notifier] = {"console": console, "slack": SlackNotifier(db, destinations),
                                          "email": EmailNotifier(db, destinations)}
        summary = deliver_due(db, destinations, notifiers, lease=timedelta(seconds=settings.delivery_lease))
        waiting = [d for d in list_deliveries(db, "pending", limit=1000) if d.kind == "digest"]
    finally:
        db.dispose()
    err.print(f"sent: {summary.sent}  retrying: {summary.retrying}  failed: {summary.failed}  dead: {summary.dead}")
    if waiting:
        err.print(f"[yellow]not sent:[/yellow] {len(waiting)} matches for digest destinations wait in the "
                  "outbox (digests are not built yet)")
    for problem in summary.errors:
        err.print(f"  {escape(problem)}")
    if summary.failed or summary.dead:
        raise typer.Exit(1)


def deliveries(
    status: Annotated[str | None, typer.Option(help=f"Only rows in this state: {', '.join(STATUSES)}.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many rows, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one row per line.")] = False,
) -> None:
    """The outbox: one row per (article, destination) with its state, attempts and last error."""
    if status is not None and status not in STATUSES:
        err.print(f"[red]error:[/red] --status must be one of {', '.join(STATUSES)}")
        raise typer.Exit(2)
    settings = settings_or_exit()
    db = Database(settings.database_url)
    try:
        db.migrate()
        rows = list_deliveries(db, status, limit)
    finally:
        db.dispose()
    if as_json:
        for row in rows:
            line = row.model_dump(mode="json")
            line["rules"] = json.loads(row.rules)
            out.print(json.dumps(line, ensure_ascii=False), markup=False)
        return
    table = Table("id", "status", "destination", "kind", "article", "rules", "attempts", "next attempt",
                  "sent", "note")
    for row in rows:
        note = "possible duplicate" if row.possible_duplicate else (row.last_error or "")[:80]
        table.add_row(str(row.id), row.status, row.destination, row.kind, str(row.article_id),
                      ", ".join(json.loads(row.rules)), str(row.attempts), f"{row.next_attempt_at:%Y-%m-%d %H:%M}",
                      f"{row.sent_at:%Y-%m-%d %H:%M}" if row.sent_at else "", escape(note))
    out.print(table)
