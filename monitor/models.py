"""Frozen dataclasses that flow between pipeline stages (no I/O, no SQL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple


@dataclass(frozen=True)
class FeedSource:
    """One entry of feeds.yaml."""

    name: str
    url: str
    lang: str | None = None
    interval: float | None = None
    tags: tuple[str, ...] = ()
    fetch_articles: bool = True


@dataclass(frozen=True)
class Validators:
    """HTTP validators remembered from the last successful fetch."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """What one GET produced. ``not_modified`` results carry no body."""

    url: str
    final_url: str
    status: int
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    redirects: int = 0
    elapsed: float = 0.0
    max_age: float | None = None  # Cache-Control max-age: the server asks not to be asked again sooner

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class Entry:
    """One feed item after parsing and key derivation."""

    key: str
    key_kind: Literal["guid", "url", "title_date"]
    title: str
    url: str | None
    canonical_url: str | None
    guid: str | None
    summary: str
    published: datetime | None
    lang: str | None


@dataclass(frozen=True)
class ParsedFeed:
    entries: tuple[Entry, ...]
    warning: str | None = None
    lang: str | None = None
    title: str = ""
    ttl: float | None = None  # RSS <ttl>, in seconds


@dataclass(frozen=True)
class Article:
    """Text to match: extracted from the page, or the feed summary as fallback."""

    title: str
    summary: str
    text: str
    text_source: Literal["extracted", "summary"]
    lang: str | None
    url: str | None
    feed: str
    tags: tuple[str, ...] = ()
    extract_error: str | None = None


class TermHit(NamedTuple):
    """One occurrence of a term: field and character offsets into the original text. Immutable like the
    other models, but a NamedTuple: the matcher builds thousands per article, 2-3x faster than a frozen
    dataclass."""

    term: str
    field: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Explanation:
    """Why a rule matched: the clause path that held, every term hit, the sentence around the best hit."""

    rule_id: str
    clauses: tuple[str, ...]
    hits: tuple[TermHit, ...]
    snippet: str
    snippet_field: str

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule_id,
            "clauses": list(self.clauses),
            "hits": [
                {"term": h.term, "field": h.field, "start": h.start, "end": h.end, "text": h.text}
                for h in self.hits
            ],
            "snippet": self.snippet,
            "snippet_field": self.snippet_field,
        }


@dataclass(frozen=True)
class Match:
    rule_id: str
    rule_title: str
    severity: str
    explanation: Explanation
    routes: tuple[str, ...] = ()  # the rule's destination names (empty: the default routes)


@dataclass(frozen=True)
class ProcessedEntry:
    """An entry ready to store: its new article and the rules it matched, or None when the
    article is already stored (reached earlier through another feed or entry)."""

    entry: Entry
    article: Article | None
    matches: tuple[Match, ...] = ()


@dataclass
class PollSummary:
    feeds_ok: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    new_entries: int = 0
    new_matches: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    unstarted: list[str] = field(default_factory=list)  # claimed but not polled (stopping, or out of lease)

    def add(self, other: PollSummary) -> None:
        self.feeds_ok += other.feeds_ok
        self.feeds_not_modified += other.feeds_not_modified
        self.feeds_failed += other.feeds_failed
        self.new_entries += other.new_entries
        self.new_matches += other.new_matches
        self.failures.extend(other.failures)
        self.unstarted.extend(other.unstarted)
