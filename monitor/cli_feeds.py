"""`monitor feeds`: each feed's fetch state and health; `monitor feeds resume NAME` un-pauses a feed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from monitor.cli_common import err, fail, out, settings_or_exit
from monitor.errors import ConfigError
from monitor.feeds_file import load_feeds
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.feedstate import feed_health, resume_feed

feeds_app = typer.Typer(help="Each feed's fetch state and health; resume a paused feed.")


@feeds_app.callback(invoke_without_command=True)
def feeds(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one feed per line.")] = False,
) -> None:
    """Show each feed's fetch state and health (ok, warning, failing, paused, silent, never polled): last
    result, error or warning, next check. A paused feed is not polled until `monitor feeds resume NAME`."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_or_exit()
    db = Database(settings.database_url)
    db.migrate()
    rows = [feed_health(row) for row in queries.list_feed_rows(db)]
    db.dispose()
    try:
        configured = {feed.name for feed in load_feeds(settings.feeds_file)}
    except ConfigError as exc:
        err.print(f"[yellow]warning:[/yellow] {escape(str(exc))}")
        configured = {str(h["name"]) for h in rows}
    for health in rows:
        if health["name"] not in configured:
            health["health"] = "not in feeds file"
    if as_json:
        for health in rows:
            out.print(json.dumps(health, ensure_ascii=False, default=str), markup=False)
        return
    if not rows:
        out.print("no feeds polled yet")
        return
    table = Table("feed", "health", "last", "errors", "entries", "checked", "next", "reason")
    table.columns[-1].overflow = "fold"
    for h in rows:
        table.add_row(
            escape(str(h["name"])), str(h["health"]), f"{h['last_outcome'] or '-'} {h['last_status'] or ''}".strip(),
            str(h["consecutive_errors"]), str(h["entries_seen"]), _when(h["last_checked_at"]),
            "paused" if h["paused_at"] else _when(h["next_check_at"]), escape(str(h["reason"] or "")[:300]),
        )
    out.print(table)
    paused = [str(h["name"]) for h in rows if h["paused_at"]]
    if paused:
        err.print(f"{len(paused)} paused feed(s): after fixing the cause, `monitor feeds resume NAME` polls one "
                  "again at once")


@feeds_app.command("resume")
def resume(name: Annotated[str, typer.Argument(help="The feed's name, as in feeds.yaml.")]) -> None:
    """Poll a paused feed again: it is un-paused, its failure count restarts and it is due at once (a
    running `monitor run` picks it up at its next tick). The recovery notice goes out after it succeeds."""
    settings = settings_or_exit()
    db = Database(settings.database_url)
    db.migrate()
    try:
        was_paused = resume_feed(db, name, datetime.now(UTC))
    except ConfigError as exc:
        raise fail(exc) from exc
    finally:
        db.dispose()
    out.print(f"{name}: resumed, due now" if was_paused else f"{name}: was not paused; due now", markup=False)


def _when(value: object) -> str:
    return f"{value:%m-%d %H:%M:%S}" if isinstance(value, datetime) else "-"
