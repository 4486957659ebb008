"""Worker side of a page: extracted text → Article → matches, plus the worker warm-up.

Imported by the worker processes, so it stays free of the database and HTTP layers: a worker
loads only what parsing, extraction and matching need.
"""

from __future__ import annotations

from monitor.models import Article, Entry, FeedSource, ProcessedEntry
from monitor.pipeline.extract import extract_text
from monitor.pipeline.lang import choose_lang
from monitor.pipeline.match import match_rules
from monitor.pipeline.parse import FieldCaps, parse_entries
from monitor.rules.engine import RuleSet
from monitor.rules.text import fold

_WARM_UP_FEED = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>warm up</title>
<item><title>Trilateral summit</title><link>https://example.org/a</link><guid>a</guid>
<pubDate>Mon, 02 Nov 2026 10:00:00 GMT</pubDate><description>&lt;p&gt;text&lt;/p&gt;</description></item>
</channel></rss>"""

_WARM_UP_PAGE = ("<html lang='en'><head><title>Warm up</title></head><body><nav><a href='/'>Home</a></nav>"
                 "<article><h1>Leaders meet</h1>" + "<p>The leaders of China, Japan and South Korea met. " * 30
                 + "</p><p>中日韩领导人会议。한중일 정상회의。日中韓首脳会議。</p><table><tr><td>1</td></tr></table>"
                 "</article><footer>© warm up</footer></body></html>").encode()


def build_article(feed: FeedSource, entry: Entry, feed_lang: str | None, text: str, page_lang: str | None,
                  error: str | None) -> Article:
    """The article to match: extracted text when there is some, the feed summary otherwise."""
    return Article(
        title=entry.title,
        summary=entry.summary,
        text=text,
        text_source="extracted" if text else "summary",
        lang=choose_lang(feed.lang or feed_lang, page_lang, text or entry.summary or entry.title),
        url=entry.url,
        feed=feed.name,
        tags=feed.tags,
        extract_error=error,
    )


def extract_and_match(rules: RuleSet, html: bytes, url: str, feed: FeedSource, entry: Entry,
                      feed_lang: str | None, max_chars: int) -> ProcessedEntry:
    """Worker side (pure): page → text → article → matches, so the CPU work stays off the fetching core."""
    extracted = extract_text(html, url, max_chars)
    article = build_article(feed, entry, feed_lang, extracted.text, extracted.lang, None)
    return ProcessedEntry(entry, article, match_rules(article, rules))


def warm_up() -> None:
    """Run once in each new worker: import and exercise parsing, extraction and CJK folding, so the
    first real feed and page do not pay for lazy imports and dictionary loads."""
    parse_entries(_WARM_UP_FEED, FieldCaps())
    extracted = extract_text(_WARM_UP_PAGE, "https://example.org/a", 10_000)
    fold(extracted.text)
    fold("全角，標點：（）")  # builds the table of characters NFKC changes (once per process)
