"""What every `monitor` command shares: the two consoles and settings loading that exits 2 on a bad setting."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console
from rich.markup import escape

from monitor.durations import parse_duration
from monitor.errors import ConfigError
from monitor.logs import setup_logging
from monitor.settings import Settings, load_settings
from monitor.store.db import Database

out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(exc: Exception, code: int = 2) -> typer.Exit:
    """Print ``error: …`` on stderr; the caller raises the returned Exit."""
    err.print(f"[red]error:[/red] {escape(str(exc))}")
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise fail(exc) from exc
    setup_logging(settings.log_level)
    return settings


@contextmanager
def opened_database(settings: Settings) -> Iterator[Database]:
    """The database of MONITOR_DATABASE_URL, migrated, always disposed; a bad URL exits 2 naming it."""
    try:
        db = Database(settings.database_url)
    except ConfigError as exc:
        raise fail(exc) from exc
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()


def parse_since(value: str | None) -> datetime | None:
    """An ISO date/time (UTC when no zone is given) or a duration back from now (24h, 7d)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is neither an ISO date/time nor a duration such as 24h") from exc
