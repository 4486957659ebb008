"""Build a news site from real articles (tests/data/articles.jsonl): an RSS feed and one page each."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"


def load_articles() -> list[dict[str, str]]:
    with (DATA / "articles.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def load_labels() -> dict[str, dict[str, object]]:
    with (DATA / "labels.jsonl").open(encoding="utf-8") as handle:
        return {rec["id"]: rec for rec in map(json.loads, handle)}


def article_page(article: dict[str, str]) -> bytes:
    """A plain news page around the article's real text (paragraph per line), with boilerplate."""
    paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in article["text"].split("\n") if p.strip())
    lang = article.get("lang", "en").split("-")[0]
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(article['title'] or '')}</title></head>
<body><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/business">Business</a></nav>
<article><h1>{html.escape(article['title'] or '')}</h1>
{paragraphs}
</article>
<footer>Subscribe to our newsletter. Copyright notice.</footer></body></html>""".encode()


def rss(items: list[dict[str, str]], base: str, title: str = "Test wire") -> bytes:
    now = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    entries = []
    for index, article in enumerate(items):
        link = f"{base}/a/{article['id']}.html"
        first = article["text"].split("\n")[0][:300]
        entries.append(
            f"<item><title>{html.escape(article['title'] or article['id'])}</title>"
            f"<link>{html.escape(link)}</link><guid>{html.escape(article['id'])}</guid>"
            f"<pubDate>{format_datetime(now - timedelta(minutes=index))}</pubDate>"
            f"<description>{html.escape(first)}</description></item>"
        )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>{base}/</link><description>test</description>{''.join(entries)}</channel></rss>").encode()
