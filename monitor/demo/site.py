"""The offline news site of `monitor demo`: bundled real feed snapshots and article pages (data/, see
data/PROVENANCE.md) served over HTTP on 127.0.0.1."""

from __future__ import annotations

import html
import json
import threading
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
#: Article feeds built from data/articles.jsonl, by the id prefix of their records.
ARTICLE_FEEDS = {"korea-wire": ("naver-",), "greater-china": ("hkcnews-", "sina-"),
                 "world-wire": ("currentevents-", "whitehouse-", "newsgrab-", "seed-")}
#: Archived feed entries of the days of the May 2024 China–Japan–South Korea summit (JSON, made into RSS).
ARCHIVE = ("2024-05-26_japantoday.com_feed_subset.json", "2024-05-27_japantoday.com_feed_subset.json",
           "2024-05-27_apnews.com_index.rss_subset.json")
SNAPSHOT = "whitehouse-briefing-room.xml"  # served byte for byte


def load_articles() -> list[dict[str, Any]]:
    with (DATA / "articles.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def article_page(article: dict[str, Any]) -> bytes:
    """The article's real text, one paragraph per line, in a plain page with a site's usual boilerplate."""
    paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in article["text"].split("\n") if p.strip())
    title = html.escape(article.get("title") or article["id"])
    lang = (article.get("lang") or "en").split("-")[0]
    return (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title></head>'
            f'<body><nav><a href="/">Home</a> <a href="/world">World</a></nav><article><h1>{title}</h1>\n'
            f"{paragraphs}\n</article><footer>monitor demo: the text of a real article, see PROVENANCE.md"
            "</footer></body></html>").encode()


def _rss(title: str, base: str, items: list[tuple[str, str, str, str, str | None]]) -> bytes:
    """(guid, title, link, description, ISO date) items as RSS 2.0."""
    entries = []
    for guid, item_title, link, description, published in items:
        date = ""
        if published:
            when = datetime.fromisoformat(published)
            date = f"<pubDate>{format_datetime(when if when.tzinfo else when.replace(tzinfo=UTC))}</pubDate>"
        entries.append(f"<item><title>{html.escape(item_title)}</title><link>{html.escape(link)}</link>"
                       f"<guid>{html.escape(guid)}</guid>{date}<description>{html.escape(description)}"
                       "</description></item>")
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{html.escape(title)}'
            f"</title><link>{base}/</link><description>monitor demo</description>{''.join(entries)}"
            "</channel></rss>").encode()


def build_site(base: str) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """(path → body, the feeds.yaml entries) of the demo site served at ``base``."""
    routes: dict[str, bytes] = {}
    feeds: list[dict[str, Any]] = []
    articles = load_articles()
    for name, prefixes in ARTICLE_FEEDS.items():
        chosen = [a for a in articles if a["id"].startswith(prefixes)]
        items = []
        for article in chosen:
            routes[f"/a/{article['id']}.html"] = article_page(article)
            first = next((p for p in article["text"].split("\n") if p.strip()), "")[:300]
            items.append((article["id"], article.get("title") or article["id"], f"{base}/a/{article['id']}.html",
                          first, article.get("published")))
        routes[f"/feeds/{name}.xml"] = _rss(name, base, items)
        feeds.append({"name": name, "url": f"{base}/feeds/{name}.xml"})
    archived = [entry for file in ARCHIVE for entry in json.loads((DATA / file).read_text(encoding="utf-8"))]
    routes["/feeds/summit-days-archive.xml"] = _rss("Japan Today and AP, 26-27 May 2024", base, [
        (e["link"], e["title"], e["link"], e.get("description") or "", e.get("date_published")) for e in archived])
    routes["/feeds/whitehouse.xml"] = (DATA / SNAPSHOT).read_bytes()
    # their links lead to the real sites, which the demo never contacts: matched on the feed's own text
    feeds += [{"name": "summit-days-archive", "url": f"{base}/feeds/summit-days-archive.xml", "fetch_articles": False},
              {"name": "whitehouse-briefing-room", "url": f"{base}/feeds/whitehouse.xml", "fetch_articles": False}]
    return routes, feeds


class DemoSite:
    """A threaded HTTP server on 127.0.0.1 (any free port) serving the site; ``hits`` counts requests."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site.routes.get(self.path.split("?", 1)[0])
                kind = "application/rss+xml" if self.path.endswith(".xml") else "text/html; charset=utf-8"
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.routes, self.feeds = build_site(self.base)
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-site", daemon=True)

    def start(self) -> DemoSite:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
