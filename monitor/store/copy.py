"""Copy every row of one monitor database into another (an SQLite install moving to PostgreSQL): feeds with
their validators and health, entries (so nothing already seen alerts again), articles, matches, the outbox,
digests and notices — ids kept, in foreign-key order, a batch at a time, in one transaction."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, insert, select, text
from sqlmodel import SQLModel

from monitor.errors import ConfigError
from monitor.store import tables  # noqa: F401 (registers the tables on SQLModel.metadata)
from monitor.store.db import Database

BATCH = 1000


def copy_database(source: Database, target: Database, progress: Callable[[str, int], None] | None = None
                  ) -> dict[str, int]:
    """Copy ``source`` into ``target`` (both brought to the newest schema first); the target must hold no
    rows yet. Returns rows copied per table."""
    source.migrate()
    target.migrate()
    ordered = SQLModel.metadata.sorted_tables
    with target.engine.connect() as conn:
        filled = [t.name for t in ordered if conn.execute(select(func.count()).select_from(t)).scalar()]
    if filled:
        raise ConfigError(f"the target database already holds rows ({', '.join(filled)}): copy into an empty one")
    copied: dict[str, int] = {}
    with source.engine.connect() as reading, target.engine.begin() as writing:
        for table in ordered:
            rows = reading.execution_options(stream_results=True).execute(select(table).order_by(table.c.id))
            copied[table.name] = 0
            for chunk in rows.partitions(BATCH):
                writing.execute(insert(table), [dict(row._mapping) for row in chunk])
                copied[table.name] += len(chunk)
            if progress:
                progress(table.name, copied[table.name])
            if not target.is_sqlite and copied[table.name]:  # new rows must not reuse a copied id
                writing.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608
                                     f"(SELECT MAX(id) FROM {table.name}))"))
    return copied
