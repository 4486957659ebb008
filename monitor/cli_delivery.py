"""`monitor deliver`, `monitor digest` and `monitor deliveries`: send what the outbox holds, and show it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from monitor.cli_common import err, fail, out, settings_or_exit
from monitor.errors import ConfigError
from monitor.notify.destinations import DestinationModel, Destinations, load_destinations
from monitor.notify.digest import digest_destinations, digest_now, preview, send_due_digests
from monitor.notify.notifiers import Notifiers, notifiers
from monitor.notify.sender import DeliverySummary, deliver_due
from monitor.settings import Settings
from monitor.store.db import Database
from monitor.store.digests import count_waiting, list_digests
from monitor.store.outbox import list_deliveries
from monitor.store.tables import DeliveryRow, DigestRow

STATUSES = ("pending", "sending", "sent", "failed", "dead")


def _print(text: str) -> None:
    print(text, flush=True)


@contextmanager
def _outbox() -> Iterator[tuple[Settings, Destinations, Database, Notifiers]]:
    settings = settings_or_exit()
    try:
        destinations = load_destinations(settings.destinations_file)
    except ConfigError as exc:
        raise fail(exc) from exc
    db = Database(settings.database_url)
    try:
        db.migrate()
        yield settings, destinations, db, notifiers(db, destinations, _print)
    finally:
        db.dispose()


def _report(summary: DeliverySummary) -> None:
    err.print(f"sent: {summary.sent}  retrying: {summary.retrying}  failed: {summary.failed}  dead: {summary.dead}")
    for problem in summary.errors:
        err.print(f"  {escape(problem)}")
    if summary.failed or summary.dead:
        raise typer.Exit(1)


def _add(total: DeliverySummary, part: DeliverySummary) -> DeliverySummary:
    return DeliverySummary(total.sent + part.sent, total.retrying + part.retrying, total.failed + part.failed,
                           total.dead + part.dead, total.errors + part.errors)


def deliver(
    once: Annotated[bool, typer.Option("--once", help="Send what is due once and exit.")] = False,
) -> None:
    """Send what is due from the outbox once: alerts (new matches, and retries whose time has come) and the
    digests whose time has come.

    The console destination prints them on standard output; Slack destinations get one message a second;
    e-mail destinations one message per alert and one per digest. A digest destination's digest is due at
    its schedule's last fire time (cron in its time zone) and is sent once per period, however often this
    runs. `monitor run` does all this continuously (every few seconds, one job per destination).
    Exit status 1 if an alert or a digest failed for good in this round.
    """
    if not once:
        err.print("[red]error:[/red] use --once (`monitor run` delivers continuously)")
        raise typer.Exit(2)
    with _outbox() as (settings, destinations, db, kinds):
        lease = timedelta(seconds=settings.delivery_lease)
        summary = _add(deliver_due(db, destinations, kinds, lease=lease),
                       send_due_digests(db, destinations, kinds, lease=lease))
        waiting = count_waiting(db, [d.name for d in digest_destinations(destinations)], datetime.now(UTC))
    if waiting:
        err.print(f"waiting for their digest: {waiting} (`monitor digest --now` sends them at once)")
    _report(summary)


def digest(
    now: Annotated[bool, typer.Option("--now", help="Make the digest now instead of at its scheduled time.")] = False,
    destination: Annotated[str | None, typer.Option(
        help="Only this digest destination (default: every one).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the digest as it would be sent; send nothing and change nothing.")] = False,
) -> None:
    """Send each digest destination a digest of everything waiting for it, now.

    The articles it holds will not be in the next scheduled digest. With --dry-run the digest is printed
    (e-mail: subject and text part; Slack: the JSON of each message; console: its text) and nothing changes.
    Exit status 1 if a digest failed for good.
    """
    if not now:
        err.print("[red]error:[/red] use --now (scheduled digests are sent by `monitor run` and "
                  "`monitor deliver --once`)")
        raise typer.Exit(2)
    with _outbox() as (settings, destinations, db, kinds):
        try:
            chosen = digest_destinations(destinations, destination)
        except ConfigError as exc:
            raise fail(exc) from exc
        if not chosen:
            err.print(f"no digest destination in {destinations.source} (mode: digest)")
            return
        if dry_run:
            _preview(db, chosen, kinds)
            return
        summary = digest_now(db, destinations, kinds, destination, timedelta(seconds=settings.delivery_lease))
    if not summary.sent and not summary.errors:
        err.print("nothing waits for a digest")
    _report(summary)


def _preview(db: Database, chosen: list[DestinationModel], kinds: Notifiers) -> None:
    for item in chosen:
        text = preview(db, item, kinds[item.kind])
        out.rule(f"{item.name} ({item.kind})")
        out.print(text if text is not None else "(nothing waits for this digest)", markup=False)


def deliveries(
    status: Annotated[str | None, typer.Option(help=f"Only rows in this state: {', '.join(STATUSES)}.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many rows, newest first.")] = 50,
    digests: Annotated[bool, typer.Option("--digests", help="List the digests instead of the outbox rows.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one row per line.")] = False,
) -> None:
    """The outbox: one row per (article, destination) with its state, attempts and last error; with
    --digests, one row per digest sent or to send."""
    if status is not None and status not in STATUSES:
        err.print(f"[red]error:[/red] --status must be one of {', '.join(STATUSES)}")
        raise typer.Exit(2)
    settings = settings_or_exit()
    db = Database(settings.database_url)
    try:
        db.migrate()
        rows: Sequence[DeliveryRow | DigestRow] = (list_digests(db, status, limit) if digests
                                                   else list_deliveries(db, status, limit))
    finally:
        db.dispose()
    if as_json:
        for row in rows:
            line = row.model_dump(mode="json")
            if "rules" in line:
                line["rules"] = json.loads(line["rules"])
            out.print(json.dumps(line, ensure_ascii=False), markup=False)
        return
    if digests:
        _digest_table([r for r in rows if isinstance(r, DigestRow)], out.print)
    else:
        _delivery_table([r for r in rows if isinstance(r, DeliveryRow)], out.print)


def _note(row: object) -> str:
    error = getattr(row, "last_error", None) or ""
    return escape(("possible duplicate; " if getattr(row, "possible_duplicate", False) else "") + error[:80])


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else ""


def _delivery_table(rows: Sequence[DeliveryRow], show: Callable[[Table], None]) -> None:
    table = Table("id", "status", "destination", "kind", "article", "rules", "attempts", "next attempt",
                  "sent", "digest", "note")
    for row in rows:
        table.add_row(str(row.id), row.status, row.destination, row.kind, str(row.article_id),
                      ", ".join(json.loads(row.rules)), str(row.attempts), _when(row.next_attempt_at),
                      _when(row.sent_at), str(row.digest_id or ""), _note(row))
    show(table)


def _digest_table(rows: Sequence[DigestRow], show: Callable[[Table], None]) -> None:
    table = Table("id", "status", "destination", "kind", "period end (UTC)", "articles", "attempts", "parts sent",
                  "next attempt", "sent", "note")
    for row in rows:
        kind = row.kind + (" (alerts only)" if row.alerts_only else "")
        table.add_row(str(row.id), row.status, row.destination, kind, _when(row.period_end), str(row.items),
                      str(row.attempts), str(row.parts_sent), _when(row.next_attempt_at), _when(row.sent_at),
                      _note(row))
    show(table)
