"""A fresh PostgreSQL schema per test on the server MONITOR_TEST_POSTGRES_URL names (`.ci/run` sets it to the
PostgreSQL of this machine); without it the PostgreSQL variants of the tests skip, saying why."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

VARIABLE = "MONITOR_TEST_POSTGRES_URL"
SKIP_REASON = f"{VARIABLE} is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); .ci/run sets it"


def server_url() -> str:
    url = os.environ.get(VARIABLE, "").strip()
    if not url:
        pytest.skip(SKIP_REASON)
    return url


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A database URL whose every connection works in a new, empty schema (dropped afterwards)."""
    from sqlalchemy import create_engine, text

    base = server_url()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in base else "?"
        yield f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
