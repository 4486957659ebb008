"""Parse stage: feed bytes → entries (feedparser over a bytes stream only; DTDs removed first).

Pure and CPU-bound: run it through the WorkerPool so the wall-clock limit can kill it.
"""

from __future__ import annotations

import calendar
import html
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import feedparser

from monitor.errors import ParseError
from monitor.models import Entry, ParsedFeed
from monitor.pipeline.dedupe import canonical_url, entry_key
from monitor.pipeline.lang import normalize_lang

# A DOCTYPE (with any internal subset) and stray ENTITY declarations are removed before parsing:
# nothing a news feed needs lives there, and it is where entity expansion and XXE come from.
_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*(?:\[.*?\]\s*)?>", re.I | re.S)
_ENTITY = re.compile(rb"<!ENTITY[^>]*>", re.I)
_TAG = re.compile(r"<[^>]{0,2000}>")
_SPACE = re.compile(r"[ \t\r\f\v]+")
_LINES = re.compile(r"\n\s*\n+")
_TRUNCATED = re.compile(r"no element found|unclosed token|premature end", re.I)


@dataclass(frozen=True)
class FieldCaps:
    title: int = 1000
    summary: int = 64 * 1024
    entries: int = 500


def neutralize_dtd(body: bytes) -> bytes:
    return _ENTITY.sub(b"", _DOCTYPE.sub(b"", body))


def html_to_text(value: str) -> str:
    """Feed summaries are HTML fragments: drop tags, unescape once, tidy whitespace."""
    text = _TAG.sub(" ", value.replace("<br", "\n<br").replace("</p>", "</p>\n"))
    text = html.unescape(text).replace("\x00", "")
    text = _SPACE.sub(" ", text)
    return _LINES.sub("\n\n", "\n".join(line.strip() for line in text.split("\n"))).strip()


def _when(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            try:
                return datetime.fromtimestamp(calendar.timegm(value), UTC)
            except (OverflowError, ValueError, TypeError):
                continue
    return None


def _summary(entry: Any) -> str:
    contents = entry.get("content") or []
    best = max((c.get("value", "") for c in contents), key=len, default="")
    summary = entry.get("summary", "") or ""
    return best if len(best) > len(summary) else summary


def parse_entries(body: bytes, caps: FieldCaps = FieldCaps()) -> ParsedFeed:
    """Parse a feed body. Bozo with entries: used, warning kept; bozo without entries: ParseError."""
    if not body.strip():
        raise ParseError("empty body")
    parsed = feedparser.parse(io.BytesIO(neutralize_dtd(body)))
    warning = None
    if parsed.get("bozo"):
        reason = parsed.get("bozo_exception")
        warning = f"{type(reason).__name__}: {reason}"[:500] if reason else "malformed feed"
        if not parsed.entries:
            raise ParseError(f"not a usable feed ({warning})")
    if not parsed.entries and not parsed.get("version"):
        raise ParseError("not a feed: no RSS/Atom/RDF/JSON structure found")
    raw_entries = list(parsed.entries)
    if warning and _TRUNCATED.search(warning):
        raw_entries = raw_entries[:-1]  # the document was cut: its last entry may be partial
        if not raw_entries:
            raise ParseError(f"truncated feed with no complete entry ({warning})")
    feed_lang = normalize_lang(parsed.feed.get("language"))
    entries: dict[str, Entry] = {}
    for raw in raw_entries[: caps.entries]:
        entry = _entry(raw, caps, feed_lang)
        entries.setdefault(entry.key, entry)  # a GUID repeated inside one feed counts once
    return ParsedFeed(tuple(entries.values()), warning, feed_lang, html_to_text(parsed.feed.get("title", ""))[:200],
                      _ttl(parsed.feed.get("ttl")))


def _ttl(value: Any) -> float | None:
    """RSS <ttl> (minutes a reader may cache the feed) in seconds; None unless a whole number of 1 to 10080
    minutes (a week): anything else is ignored rather than trusted."""
    text = str(value or "").strip()[:8]
    return float(int(text) * 60) if text.isascii() and text.isdigit() and 0 < int(text) <= 10080 else None


def _entry(raw: Any, caps: FieldCaps, feed_lang: str | None) -> Entry:
    title = html_to_text(raw.get("title", "") or "")[: caps.title]
    link = (raw.get("link") or "").strip() or None
    guid = (raw.get("id") or "").strip() or None
    published = _when(raw)
    key, kind = entry_key(guid, link, title, published)
    return Entry(
        key=key,
        key_kind=kind,  # type: ignore[arg-type]
        title=title,
        url=link,
        canonical_url=canonical_url(link),
        guid=guid,
        summary=html_to_text(_summary(raw))[: caps.summary],
        published=published,
        lang=feed_lang,
    )
