"""The `monitor` command line: run, demo, serve, poll, deliver, digest, matches, deliveries, feeds, rules, db…"""

from __future__ import annotations

import json
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor import __version__
from monitor.cli_common import err, fail, out, parse_since, settings_or_exit
from monitor.cli_delivery import deliver, deliveries, digest
from monitor.cli_demo import demo
from monitor.cli_destinations import destinations_app
from monitor.cli_feeds import feeds_app
from monitor.cli_labels import labels_app
from monitor.cli_rules import rules_app
from monitor.console import format_match
from monitor.errors import ConfigError
from monitor.logs import redact
from monitor.models import PollSummary
from monitor.rules.engine import RuleSet
from monitor.settings import Settings
from monitor.store import queries
from monitor.store.db import Database

if TYPE_CHECKING:
    from monitor.service import Service

app = typer.Typer(
    help="Event-monitoring alerts for East Asian trade diplomacy: poll feeds, extract, match, store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(rules_app, name="rules")
app.add_typer(destinations_app, name="destinations")
app.add_typer(feeds_app, name="feeds")
app.add_typer(labels_app, name="labels")
app.command("deliver")(deliver)
app.command("digest")(digest)
app.command("deliveries")(deliveries)
app.command("demo")(demo)
_settings = settings_or_exit


def main() -> None:
    """The `monitor` command. A crash prints its traceback with every configured secret shown as ****."""
    try:
        app()
    except Exception:  # the last boundary: nothing left to handle it, only to report it safely
        sys.stderr.write(redact(traceback.format_exc()))
        sys.exit(1)


def _service(settings: Settings) -> Service:
    try:
        from monitor.service import Service

        return Service(settings)
    except ConfigError as exc:
        raise fail(exc) from exc


@app.callback(invoke_without_command=True)
def _main(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False) -> None:
    if version:
        out.print(f"monitor {__version__}")
        raise typer.Exit()


@app.command()
def run() -> None:
    """Run the service until SIGTERM or Ctrl-C: poll each feed when it is due, deliver alerts and digests,
    send feed-health notices, prune old unmatched entries, and serve the API and web page
    (MONITOR_API_SERVE). On SIGTERM running work gets MONITOR_SHUTDOWN_GRACE to finish; SIGHUP reloads the
    rules."""
    from monitor.scheduler import run_service

    service = _service(_settings())
    try:
        run_service(service)
    finally:
        service.close()


@app.command()
def worker() -> None:
    """Run the scheduler's jobs without the API, until SIGTERM or Ctrl-C: poll due feeds, deliver alerts and
    digests, feed-health notices, housekeeping. Start any number of workers (and `monitor serve` for the
    API) against one PostgreSQL database: due feeds, alerts, digests and notices are claimed with leases,
    so each is handled by one worker, and a worker that dies leaves its claims to the others when the
    leases run out (MONITOR_FEED_LEASE, MONITOR_DELIVERY_LEASE). With SQLite run one process."""
    from monitor.scheduler import run_service

    service = _service(_settings())
    try:
        run_service(service, serve_api=False)
    finally:
        service.close()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: MONITOR_API_HOST, 127.0.0.1). "
                                                  "Anything but loopback needs MONITOR_API_TOKEN.")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="Port (default: MONITOR_API_PORT, 8080; "
                                                                      "0: any free port).")] = None,
) -> None:
    """Serve the API and the web page only (no polling, no delivery) until SIGTERM or Ctrl-C.

    `monitor run` serves them too. Every route but /healthz needs the token (MONITOR_API_TOKEN; without
    it, on a loopback address only, a token is made for this run and printed).
    """
    from monitor.api.context import ApiContext
    from monitor.api.server import ApiServer
    from monitor.rules.reload import RulesWatcher

    settings = _settings()
    db = Database(settings.database_url)
    try:
        db.migrate()
        watcher = RulesWatcher(settings.rules_dir)
        current = [watcher.load()]

        def rules() -> RuleSet:
            fresh = watcher.check()
            if fresh is not None:
                current[0] = fresh
            return current[0]

        server = ApiServer(ApiContext(settings, db, rules), host or settings.api_host,
                           settings.api_port if port is None else port)
        server.start()
    except ConfigError as exc:
        db.dispose()
        raise fail(exc) from exc
    print(server.announce(), flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    while not stopped.wait(0.5):
        pass
    server.stop()
    db.dispose()


@app.command()
def poll(
    once: Annotated[bool, typer.Option("--once", help="Poll every feed once, print a summary and exit.")] = False,
) -> None:
    """Poll feeds, extract and match new articles, store the matches.

    With --once every feed is polled one time (a progress bar shows on a terminal), except paused feeds
    (`monitor feeds resume NAME`); without it this behaves like `monitor run`.
    """
    if not once:
        run()
        return
    service = _service(_settings())
    try:
        paused = service.paused()
        summary = _poll_with_progress(service)
    finally:
        service.close()
    _print_summary(summary)
    for name in paused:
        out.print(f"  paused, not polled: {escape(name)} (monitor feeds resume {escape(name)})")
    if summary.feeds_failed and not (summary.feeds_ok or summary.feeds_not_modified):
        raise typer.Exit(1)


def _poll_with_progress(service: Service) -> PollSummary:
    if not sys.stderr.isatty():
        return service.poll_all()
    columns = (TextColumn("polling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("", total=len(service.feeds) - len(service.paused()))
        return service.poll_all(lambda name, _s: progress.update(task, advance=1, description=name))


def _print_summary(summary: PollSummary) -> None:
    out.print(
        f"feeds ok: {summary.feeds_ok}  not modified: {summary.feeds_not_modified}  failed: {summary.feeds_failed}"
        f"  new entries: {summary.new_entries}  new matches: {summary.new_matches}"
    )
    for name, reason in sorted(summary.failures):
        out.print(f"  failed: {escape(name)}: {escape(reason)}")


@app.command()
def matches(
    rule: Annotated[str | None, typer.Option(help="Only matches of this rule id.")] = None,
    since: Annotated[str | None, typer.Option(help="ISO date/time, or a duration back from now (24h, 7d).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many (newest first).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one match per line.")] = False,
) -> None:
    """List stored matches, newest first, each with the reason it matched."""
    settings = _settings()
    when = parse_since(since)
    db = Database(settings.database_url)
    db.migrate()
    rows = queries.list_matches(db, rule=rule, since=when, limit=limit)
    db.dispose()
    if as_json:
        for row in rows:
            out.print(json.dumps(row.as_dict(), ensure_ascii=False), markup=False)
        return
    if not rows:
        out.print("no matches")
        return
    for row in rows:
        out.print(format_match(row), markup=False)


@db_app.command("copy")
def db_copy(
    source: Annotated[str, typer.Argument(help="Database URL to copy from, e.g. sqlite:///data/monitor.db.")],
) -> None:
    """Copy every row of another monitor database into MONITOR_DATABASE_URL, which must be empty — how an
    SQLite install moves to PostgreSQL: feeds keep their validators and health, entries already seen do not
    alert again, matches, the outbox and digests come along. Stop the service first; the source is
    brought to the newest schema (back it up first)."""
    from monitor.store.copy import copy_database

    settings = _settings()
    if source == settings.database_url:
        raise fail(ConfigError("the source is MONITOR_DATABASE_URL itself: give the other database"))
    try:
        origin_url = make_url(source)
    except ArgumentError as exc:
        raise fail(ConfigError(f"{source!r} is not a database URL (e.g. sqlite:///data/monitor.db)")) from exc
    if origin_url.get_backend_name() == "sqlite" and not Path(origin_url.database or "").is_file():
        raise fail(ConfigError(f"{origin_url.database}: no such SQLite file to copy from"))
    try:
        origin, target = Database(source), Database(settings.database_url)
        copied = copy_database(origin, target, lambda table, rows: out.print(f"{table}: {rows} rows", markup=False))
    except ConfigError as exc:
        raise fail(exc) from exc
    origin.dispose()
    target.dispose()
    out.print(f"copied {sum(copied.values())} rows into {target.engine.url.render_as_string()}", markup=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending schema migrations (the service also does this at start)."""
    settings = _settings()
    Database(settings.database_url).migrate()
    out.print("database schema is up to date")


if __name__ == "__main__":
    app()
