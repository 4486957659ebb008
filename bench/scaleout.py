"""Scale-out throughput: `monitor worker` processes against one database, new articles/s and re-poll feeds/s.

Usage:
    python bench/scaleout.py --corpus ../shared/corpus --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
                             [--feeds 400] [--per-feed 10] [--runs 3] [--json out.json]

Serves F feeds × M items on 127.0.0.1 with nginx (static files: conditional GET answered with 304s; a
Python server without it, said in the output). Each item's description is a real article's text from the
corpus (articles/bulk: Reuters, Naver, Citizen News), matched as feed text (fetch_articles: false), so the
figures measure what scale-out changes: claiming, parsing, matching and storing, not page extraction.

For each configuration — SQLite with 1 worker; PostgreSQL with 1, 2 and 3 workers — in every run:

1. new articles/s: W `monitor worker` processes start on an empty database (a fresh PostgreSQL schema);
   the clock runs from the first stored entry to the last (F × M entries);
2. re-poll feeds/s: every feed is made due at once; the clock runs until every feed was checked again
   (all answer 304).

Medians over --runs; configurations interleave within each run (this machine drifts ±25% in minutes).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from html import escape
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_throughput import free_port, start_server  # noqa: E402

CONFIGS = (("sqlite", 1), ("postgresql", 1), ("postgresql", 2), ("postgresql", 3))


def corpus_texts(corpus: Path, count: int) -> list[tuple[str, str]]:
    """(title, text) of real articles from the bulk samples, as many as asked, round-robin over the files."""
    texts: list[tuple[str, str]] = []
    files = sorted((corpus / "articles" / "bulk").glob("*.jsonl.gz"))
    readers = [gzip.open(path, "rt", encoding="utf-8") for path in files]
    try:
        while len(texts) < count and readers:
            for reader in list(readers):
                line = reader.readline()
                if not line:
                    readers.remove(reader)
                    continue
                record = json.loads(line)
                texts.append((record.get("title") or record["id"], record["text"][:2000]))
    finally:
        for reader in readers:
            reader.close()
    return texts[:count]


def build_site(root: Path, base: str, feeds: int, per_feed: int, texts: list[tuple[str, str]]) -> None:
    (root / "f").mkdir(parents=True)
    for n in range(feeds):
        items = "".join(
            f"<item><title>{escape(title)}</title><link>https://news.invalid/{n}/{k}</link><guid>f{n}-{k}</guid>"
            f"<description>{escape(body)}</description></item>"
            for k, (title, body) in enumerate(texts[n * per_feed:(n + 1) * per_feed]))
        (root / "f" / f"{n}.xml").write_text(
            f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>f{n}</title>{items}"
            "</channel></rss>", encoding="utf-8")


def fresh_database(kind: str, postgres: str, tmp: Path) -> tuple[str, object]:
    """(URL, clean-up) of an empty database."""
    if kind == "sqlite":
        path = tmp / f"bench-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", lambda: [p.unlink() for p in tmp.glob(path.name + "*")]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))

    separator = "&" if "?" in postgres else "?"
    return f"{postgres}{separator}options={quote(f'-csearch_path={schema}')}", drop


def scalar(url: str, sql: str) -> int:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    except Exception:  # the workers have not created the schema yet
        return 0
    finally:
        engine.dispose()


def wait_for(url: str, sql: str, target: int, timeout: float = 600) -> tuple[float, int]:
    """Poll until ``sql`` reaches ``target``; (when it first moved off zero, its value then)."""
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = scalar(url, sql)
        if value and first is None:
            first = (time.monotonic(), value)
        if value >= target:
            return first or (time.monotonic(), value)
        time.sleep(0.05)
    raise RuntimeError(f"timed out: {sql} stayed below {target}")


def one_config(kind: str, workers: int, args: argparse.Namespace, feeds_file: Path, tmp: Path) -> dict[str, float]:
    url, clean = fresh_database(kind, args.postgres, tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update(PYTHONPATH=str(ROOT), MONITOR_DATABASE_URL=url, MONITOR_FEEDS_FILE=str(feeds_file),
               MONITOR_RULES_DIR=str(ROOT / "rules"), MONITOR_ALLOW_PRIVATE_NETWORKS="127.0.0.1/32",
               MONITOR_POLL_TICK="0.2", MONITOR_WORKERS="1", MONITOR_PER_HOST_DELAY="0",
               MONITOR_PER_HOST_CONCURRENCY="16", MONITOR_LOG_LEVEL="WARNING")
    errors = (tmp / "worker.err").open("ab")
    procs = [subprocess.Popen([sys.executable, "-m", "monitor", "worker"], env=env, cwd=tmp,
                              stdout=subprocess.DEVNULL, stderr=errors) for _ in range(workers)]
    total = args.feeds * args.per_feed
    try:
        started, at_start = wait_for(url, "SELECT COUNT(*) FROM entries", total)
        new_rate = (total - at_start) / (time.monotonic() - started)
        mark = scalar(url, "SELECT COUNT(*) FROM feeds")  # all there; now make every feed due at once
        engine = create_engine(url, poolclass=NullPool)
        locked = " ORDER BY id FOR UPDATE" if kind == "postgresql" else ""  # in id order, as the workers lock
        with engine.begin() as conn:
            conn.execute(text("UPDATE feeds SET next_check_at = NULL, last_checked_at = NULL WHERE id IN "
                              f"(SELECT id FROM feeds{locked})"))
        engine.dispose()
        begun = time.monotonic()
        wait_for(url, "SELECT COUNT(*) FROM feeds WHERE last_checked_at IS NOT NULL", mark)
        repoll_rate = mark / (time.monotonic() - begun)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=120)
        clean()  # type: ignore[operator]
        errors.close()
    return {"new_articles_per_s": new_rate, "repoll_feeds_per_s": repoll_rate}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--postgres", required=True, help="server URL; each run uses a schema of its own")
    parser.add_argument("--feeds", type=int, default=400)
    parser.add_argument("--per-feed", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (worker.err)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="monitor-scale-"))
    tmp.chmod(0o755)  # nginx's worker (an unprivileged user when started as root) must read the site
    try:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        build_site(tmp / "site", base, args.feeds, args.per_feed, corpus_texts(args.corpus, args.feeds * args.per_feed))
        feeds_file = tmp / "feeds.yaml"
        feeds_file.write_text("feeds:\n" + "".join(
            f"  - {{name: f{n}, url: '{base}/f/{n}.xml', interval: 1h, fetch_articles: false}}\n"
            for n in range(args.feeds)))
        server, kind = start_server(tmp / "site", port)
        results: dict[str, list[dict[str, float]]] = {f"{k}x{w}": [] for k, w in CONFIGS}
        try:
            for run in range(args.runs):
                for db_kind, workers in CONFIGS:
                    figures = one_config(db_kind, workers, args, feeds_file, tmp)
                    results[f"{db_kind}x{workers}"].append(figures)
                    print(f"run {run + 1} {db_kind} × {workers}: {figures['new_articles_per_s']:.0f} new articles/s, "
                          f"{figures['repoll_feeds_per_s']:.0f} re-poll feeds/s", flush=True)
        finally:
            server.terminate()
            server.wait()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = {"server": kind, "cores": os.cpu_count(), "feeds": args.feeds, "per_feed": args.per_feed,
               "runs": args.runs}
    for name, runs in results.items():
        for metric in ("new_articles_per_s", "repoll_feeds_per_s"):
            summary[f"{name}_{metric}"] = round(statistics.median(r[metric] for r in runs), 1)
    for name in results:
        if name != "postgresqlx1":
            for metric in ("new_articles_per_s", "repoll_feeds_per_s"):
                ratios = [r[metric] / p[metric] for r, p in zip(results[name], results["postgresqlx1"], strict=True)]
                summary[f"{name}_vs_postgresqlx1_{metric}"] = round(statistics.median(ratios), 2)
    for key, value in summary.items():
        print(f"{key:55} {value}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
