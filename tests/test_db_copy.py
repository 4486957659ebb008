"""`monitor db copy`: an SQLite install moved to another database (PostgreSQL, or another SQLite file) keeps
its state — nothing seen before alerts again, validators still give 304s, new rows get new ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_feeds
from support.httpserver import LocalServer, Route
from support.site import article_page, load_articles, rss
from test_cli import base_env

from monitor.service import Service
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.outbox import list_deliveries


@pytest.mark.both_databases
def test_copy_carries_everything_and_the_copy_goes_on_where_the_original_stopped(
        server: LocalServer, tmp_path: Path, database_url: str, make_settings) -> None:  # type: ignore[no-untyped-def]
    articles = load_articles()[:6]
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles[:5], server.base), etag='"v1"')
    old_url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Service(make_settings([{"name": "wire", "url": server.url("/feed.xml")}], database_url=old_url),
                  inline_workers=True)
    try:
        old.poll_all()
        counts = queries.count_rows(old.db)
        deliveries = len(list_deliveries(old.db, limit=1000))
    finally:
        old.close()
    assert counts["matches"] and deliveries

    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}])
    env = base_env(tmp_path, feeds, MONITOR_DATABASE_URL=database_url)
    run = subprocess.run([sys.executable, "-m", "monitor", "db", "copy", old_url], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "feeds: 1 rows" in run.stdout and "copied" in run.stdout
    again = subprocess.run([sys.executable, "-m", "monitor", "db", "copy", old_url], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already holds rows" in again.stderr  # never into a filled database
    typo = subprocess.run([sys.executable, "-m", "monitor", "db", "copy", f"sqlite:///{tmp_path / 'nope' / 'x.db'}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert typo.returncode == 2 and "no such SQLite file" in typo.stderr and not (tmp_path / "nope").exists()

    new = Service(make_settings([{"name": "wire", "url": server.url("/feed.xml")}]), inline_workers=True)
    try:
        assert new.db.url == database_url
        assert queries.count_rows(new.db) == counts
        assert len(list_deliveries(new.db, limit=1000)) == deliveries
        repoll = new.poll_all()
        assert repoll.feeds_not_modified == 1 and repoll.new_entries == 0  # the validators came along
        server.routes["/feed.xml"] = Route(rss(articles, server.base), etag='"v2"')
        more = new.poll_all()
        assert more.new_entries == 1  # only the entry the old install never saw; it gets a fresh id
        assert queries.count_rows(new.db)["entries"] == counts["entries"] + 1
    finally:
        new.close()
    Database(old_url).dispose()
