"""Conditional-GET cost of HTTP client configurations against nginx on loopback (all answers 304).

Usage: python bench/http_clients.py [--feeds 1000] [--runs 5]

Serves N small feed files with nginx on 127.0.0.1 (ETag on), records each validator once, then
times N conditional GETs per configuration, alternating configurations within each run, and
prints the median feeds/s of each. This is the measurement behind the fetch stage's transport.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline_throughput import build_site, free_port, start_server  # noqa: E402

from monitor.models import Validators  # noqa: E402
from monitor.pipeline.fetch import Fetcher  # noqa: E402


def configurations(urls: list[str], etags: dict[str, str]) -> dict[str, Callable[[], None]]:
    def plain_urllib() -> None:
        for url in urls:
            try:
                urllib.request.urlopen(urllib.request.Request(url, headers={"If-None-Match": etags[url]})).read()
            except urllib.error.HTTPError as exc:
                assert exc.code == 304

    client = httpx.Client()

    def httpx_sync() -> None:
        for url in urls:
            assert client.get(url, headers={"If-None-Match": etags[url]}).status_code == 304

    def httpx_async_50() -> None:
        async def go() -> None:
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(limits=limits) as aclient:
                sem = asyncio.Semaphore(50)

                async def one(url: str) -> None:
                    async with sem:
                        response = await aclient.get(url, headers={"If-None-Match": etags[url]})
                        assert response.status_code == 304

                await asyncio.gather(*(one(u) for u in urls))

        asyncio.run(go())

    fetcher = Fetcher(user_agent="bench", connect_timeout=5, total_timeout=10, max_redirects=5, per_host=2)
    validators = {url: Validators(etags[url]) for url in urls}

    def monitor_fetcher() -> None:
        for url in urls:
            assert fetcher.fetch_feed(url, validators[url], 1 << 20).not_modified

    def monitor_fetcher_2_threads() -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda u: fetcher.fetch_feed(u, validators[u], 1 << 20), urls))

    return {
        "urllib, sequential, new connection each": plain_urllib,
        "httpx.Client (httpcore), sequential": httpx_sync,
        "httpx.AsyncClient, 50 connections": httpx_async_50,
        "monitor Fetcher (httpx + http.client transport)": monitor_fetcher,
        "monitor Fetcher, 2 threads (per-host cap)": monitor_fetcher_2_threads,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        tmp.chmod(0o755)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        build_site(tmp / "site", base, [], 0, 0, args.feeds)
        server, kind = start_server(tmp / "site", port)
        try:
            urls = [f"{base}/r/{i}.xml" for i in range(args.feeds)]
            etags = {}
            for url in urls:
                with urllib.request.urlopen(url) as response:
                    response.read()
                    etags[url] = response.headers["ETag"]
            configs = configurations(urls, etags)
            rates: dict[str, list[float]] = {name: [] for name in configs}
            for _ in range(args.runs):
                for label, run in configs.items():
                    started = time.perf_counter()
                    run()
                    rates[label].append(len(urls) / (time.perf_counter() - started))
        finally:
            server.terminate()
            server.wait(10)
    print(f"server: {kind}; {args.feeds} conditional GETs per run; median of {args.runs} runs")
    for label, values in rates.items():
        print(f"{label:50s} {statistics.median(values):8.0f} feeds/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
