"""Pipeline throughput on loopback: new articles/s against trafilatura alone, and all-304 re-poll feeds/s.

Usage:
    python bench/pipeline_throughput.py --corpus ../shared/corpus [--feeds 40] [--per-feed 10]
                                        [--repoll-feeds 1000] [--runs 3]

Serves N feeds × M real article pages (gunzipped from the corpus: the Zyte benchmark pages and
trafilatura's test pages) with nginx on 127.0.0.1 (a Python server if nginx is absent, said in
the output), then in one run:

1. baseline: trafilatura alone (same options as the service) over the same pages with one
   process per core (multiprocessing.Pool), pages/s;
2. the pipeline: one full `poll` into a fresh SQLite database (fetch feeds, parse, fetch pages,
   extract, match, store), new articles/s and peak RSS of the main process and of a worker;
3. re-poll of R feeds that all answer 304, feeds/s, against a plain sequential loop of
   conditional urllib requests to the same server.

Medians over --runs. Each run measures both sides back to back; the ratios reported are the
medians of the per-run ratios, which this noisy shared machine needs (absolute rates drift by
±25% within minutes).
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path

import trafilatura

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def corpus_pages(corpus: Path) -> list[bytes]:
    files = sorted((corpus / "extraction/zyte-article-extraction-benchmark/html").glob("*.html.gz"))
    files += sorted((corpus / "html/trafilatura-tests").glob("*.html.gz"))
    return [gzip.decompress(f.read_bytes()) for f in files]


def feed_xml(base: str, name: str, links: list[str]) -> bytes:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    items = "".join(
        f"<item><title>{escape(name)} story {i}</title><link>{escape(link)}</link><guid>{escape(link)}</guid>"
        f"<pubDate>{format_datetime(now - timedelta(minutes=i))}</pubDate>"
        f"<description>Story {i} of {escape(name)}</description></item>"
        for i, link in enumerate(links)
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(name)}</title>'
            f"<link>{base}/</link><description>bench</description>{items}</channel></rss>").encode()


def build_site(root: Path, base: str, pages: list[bytes], feeds: int, per_feed: int, repoll: int) -> list[str]:
    (root / "a").mkdir(parents=True)
    (root / "f").mkdir()
    (root / "r").mkdir()
    page_paths: list[str] = []
    for n in range(feeds * per_feed):
        path = f"/a/{n}.html"
        (root / path[1:]).write_bytes(pages[n % len(pages)])
        page_paths.append(path)
    for f in range(feeds):
        links = [base + p for p in page_paths[f * per_feed:(f + 1) * per_feed]]
        (root / f"f/{f}.xml").write_bytes(feed_xml(base, f"feed-{f}", links))
    for r in range(repoll):
        (root / f"r/{r}.xml").write_bytes(feed_xml(base, f"repoll-{r}", [f"{base}/none/{r}"]))
    return page_paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx:
        conf = root.parent / "nginx.conf"
        conf.write_text(f"""
worker_processes 1; daemon off; pid {root.parent}/nginx.pid; error_log {root.parent}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 100000; types {{ application/rss+xml xml; text/html html; }}
  client_body_temp_path {root.parent}/tmp; proxy_temp_path {root.parent}/tmp; fastcgi_temp_path {root.parent}/tmp;
  uwsgi_temp_path {root.parent}/tmp; scgi_temp_path {root.parent}/tmp;
  server {{ listen 127.0.0.1:{port}; root {root}; }} }}
""")
        (root.parent / "tmp").mkdir(exist_ok=True)
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(root.parent)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kind = "nginx"
    else:
        proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                 "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kind = "python http.server (no nginx found: conditional GET unsupported, re-poll figures invalid)"
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, kind
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def _extract(html: bytes) -> int:
    text = trafilatura.extract(html, fast=True, include_comments=False, include_tables=True,
                               with_metadata=False, deduplicate=False)
    return len(text or "")


def baseline_trafilatura(pages: list[bytes], processes: int) -> float:
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(_extract, pages[: processes * 2])  # warm the workers (imports) before timing
        started = time.perf_counter()
        pool.map(_extract, pages, chunksize=1)
        return len(pages) / (time.perf_counter() - started)


def bench_settings(tmp: Path, feeds_file: Path, workers: int, **extra: object):  # type: ignore[no-untyped-def]
    from monitor.settings import Settings

    values: dict[str, object] = dict(
        database_url=f"sqlite:///{tmp / 'bench.db'}", feeds_file=feeds_file, rules_dir=ROOT / "rules",
        allow_private_networks="127.0.0.1/32", workers=workers, log_level="WARNING", per_host_delay=0,
    )
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def write_feeds(path: Path, base: str, folder: str, count: int, fetch_articles: bool) -> Path:
    import yaml

    feeds = [{"name": f"{folder}-{i}", "url": f"{base}/{folder}/{i}.xml", "fetch_articles": fetch_articles}
             for i in range(count)]
    path.write_text(yaml.safe_dump({"feeds": feeds}))
    return path


def pipeline_run(tmp: Path, feeds_file: Path, workers: int) -> dict[str, float]:
    from monitor.service import Service

    db = tmp / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    service = Service(bench_settings(tmp, feeds_file, workers))
    try:
        started = time.perf_counter()
        summary = service.poll_all()
        elapsed = time.perf_counter() - started
    finally:
        service.close()
    return {"articles": summary.new_entries, "seconds": elapsed, "articles_per_s": summary.new_entries / elapsed,
            "failed": summary.feeds_failed}


def repoll_run(tmp: Path, feeds_file: Path, workers: int, runs: int) -> Iterator[float]:
    """Yield the all-304 re-poll rate run by run (so the caller can interleave its baseline)."""
    from monitor.service import Service

    service = Service(bench_settings(tmp, feeds_file, workers, database_url=f"sqlite:///{tmp / 'repoll.db'}"))
    try:
        first = service.poll_all()
        assert first.feeds_failed == 0, first.failures[:3]
        for _ in range(runs):
            started = time.perf_counter()
            summary = service.poll_all()
            elapsed = time.perf_counter() - started
            assert summary.feeds_not_modified == len(service.feeds), summary
            yield len(service.feeds) / elapsed
    finally:
        service.close()


def urllib_repoll(base: str, count: int) -> float:
    validators: list[tuple[str, str | None, str | None]] = []
    for i in range(count):
        with urllib.request.urlopen(f"{base}/r/{i}.xml") as response:
            response.read()
            validators.append((f"{base}/r/{i}.xml", response.headers.get("ETag"),
                               response.headers.get("Last-Modified")))
    started = time.perf_counter()
    for url, etag, modified in validators:
        request = urllib.request.Request(url, headers={k: v for k, v in (("If-None-Match", etag),
                                                                         ("If-Modified-Since", modified)) if v})
        try:
            with urllib.request.urlopen(request) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            assert exc.code == 304
    return count / (time.perf_counter() - started)


def rss_mib(usage: int) -> float:
    return usage / 1024  # ru_maxrss is KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the shared corpus folder")
    parser.add_argument("--feeds", type=int, default=40)
    parser.add_argument("--per-feed", type=int, default=10)
    parser.add_argument("--repoll-feeds", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--repoll-only", action="store_true", help="measure only the all-304 re-poll")
    args = parser.parse_args()

    pages = corpus_pages(args.corpus)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        tmp.chmod(0o755)  # nginx workers run as an unprivileged user
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        page_paths = build_site(tmp / "site", base, pages, args.feeds, args.per_feed, args.repoll_feeds)
        server, kind = start_server(tmp / "site", port)
        try:
            site_pages = [(tmp / "site" / p[1:]).read_bytes() for p in page_paths]
            new_feeds = write_feeds(tmp / "feeds.yaml", base, "f", args.feeds, True)
            repoll_feeds = write_feeds(tmp / "repoll.yaml", base, "r", args.repoll_feeds, False)
            baseline, ours, repoll, plain = [], [], [], []
            for _ in range(0 if args.repoll_only else args.runs):  # paired: both sides back to back
                baseline.append(baseline_trafilatura(site_pages, args.workers))
                ours.append(pipeline_run(tmp, new_feeds, args.workers))
            main_rss = rss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            child_rss = rss_mib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            for rate in repoll_run(tmp, repoll_feeds, args.workers, args.runs):
                repoll.append(rate)
                plain.append(urllib_repoll(base, args.repoll_feeds))
        finally:
            server.terminate()
            server.wait(10)
    if args.repoll_only:
        ratio = statistics.median(r / p for r, p in zip(repoll, plain, strict=True))
        print(f"repoll {statistics.median(repoll):.0f} feeds/s, urllib {statistics.median(plain):.0f} feeds/s, "
              f"per-run ratio median {ratio:.3f}")
        return 0
    result = {
        "server": kind, "cores": os.cpu_count(), "workers": args.workers, "pages": len(site_pages),
        "trafilatura_alone_pages_per_s": statistics.median(baseline),
        "pipeline_articles_per_s": statistics.median(r["articles_per_s"] for r in ours),
        "pipeline_articles": ours[-1]["articles"], "pipeline_failed_feeds": ours[-1]["failed"],
        "peak_rss_main_mib": main_rss, "peak_rss_largest_child_mib": child_rss,
        "repoll_feeds": args.repoll_feeds, "repoll_feeds_per_s": statistics.median(repoll),
        "urllib_sequential_feeds_per_s": statistics.median(plain),
        "runs": args.runs,
    }
    result["throughput_ratio"] = statistics.median(
        o["articles_per_s"] / b for o, b in zip(ours, baseline, strict=True))
    result["repoll_ratio"] = statistics.median(r / p for r, p in zip(repoll, plain, strict=True))
    for key, value in result.items():
        print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
