"""Database engine: SQLite pragmas (WAL, busy_timeout), BEGIN IMMEDIATE for writes, migrations; PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, insert, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine

from monitor.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 15000
MIGRATION_LOCK = 0x6D6F6E69746F72  # pg_advisory_lock key held while migrating ("monitor")


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def lease_end(now: datetime, lease: timedelta) -> datetime:
    """When a claim made at ``now`` runs out, counted from the real clock if that is later: a sender whose
    round started long ago (Slack's pace, a slow server) must not hand out claims already expired, which
    another worker would take as abandoned."""
    return max(now, datetime.now(UTC)) + lease


def insert_ignoring_conflicts(session: Session, table: Any) -> Any:
    """INSERT … ON CONFLICT DO NOTHING in the session's dialect: rows another writer inserted first (a unique
    key) are skipped instead of failing the transaction — how concurrent workers on PostgreSQL share tables."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite_insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    return insert(table)


class Database:
    """Owns the engine. ``write()`` opens a transaction that takes the write lock up front."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine = create_engine(url, **kwargs)
        except Exception as exc:  # bad URL or missing driver: a configuration problem
            raise ConfigError(f"MONITOR_DATABASE_URL: cannot use {parsed.render_as_string()}: {exc}") from exc
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        self._writer = self.engine.execution_options(sqlite_immediate=True)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction committed on success, rolled back on error (BEGIN IMMEDIATE on SQLite)."""
        with Session(self._writer) as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision. On PostgreSQL an advisory lock makes processes
        that start together (several workers) migrate one after the other: the first upgrades, the
        others find the schema current."""
        if self.is_sqlite:
            command.upgrade(alembic_config(self.url), "head")
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                command.upgrade(alembic_config(self.url), "head")
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config
