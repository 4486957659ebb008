"""What the API answers, apart from the tables: pydantic response models built from the store's views."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from monitor.store.queries import MatchView


class MatchOut(BaseModel):
    id: int
    rule: str
    rule_title: str
    severity: str
    title: str
    url: str | None
    feed: str
    feeds: list[str]
    lang: str | None
    published: datetime | None
    matched_at: datetime
    text_source: str
    explanation: dict[str, Any]

    @classmethod
    def of(cls, view: MatchView) -> MatchOut:
        return cls(id=view.id, rule=view.rule, rule_title=view.rule_title, severity=view.severity, title=view.title,
                   url=view.url, feed=view.feed, feeds=list(view.feeds), lang=view.lang, published=view.published,
                   matched_at=view.matched_at, text_source=view.text_source, explanation=view.explanation)


class MatchPage(BaseModel):
    items: list[MatchOut]
    next_cursor: str | None  # pass as ?cursor= for the next (older) page; null on the last page


class ArticleOut(BaseModel):
    match_id: int
    article_id: int
    title: str
    url: str | None
    lang: str | None
    published: datetime | None
    summary: str
    text: str
    text_source: str
    matches: list[MatchOut]  # every rule the article matched, with its explanation


class RuleOut(BaseModel):
    id: str
    title: str
    description: str | None
    severity: str
    routes: list[str]
    source: str
    matches: int
    last_match: datetime | None


class FeedOut(BaseModel):
    name: str
    url: str
    health: str
    last_outcome: str | None
    last_status: int | None
    consecutive_errors: int
    entries_seen: int
    last_checked_at: datetime | None
    last_success_at: datetime | None
    next_check_at: datetime | None
    reason: str | None
    paused_at: datetime | None = Field(None, description="Set while the feed is paused after repeated failures "
                                       "(`monitor feeds resume NAME` polls it again).")
    failing_since: datetime | None = Field(None, description="The first failure of the current run of failures.")
    cadence: float | None = Field(None, description="Learned seconds between two of the feed's entries.")
    last_new_entry_at: datetime | None = Field(None, description="When the feed last brought a new entry.")


class DeliveryOut(BaseModel):
    id: int
    article_id: int
    destination: str
    kind: str
    rules: list[str]
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    digest_id: int | None
    last_error: str | None
    possible_duplicate: bool


class Problem(BaseModel):
    detail: str


GUARDED: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "The token is missing or wrong."},
    429: {"model": Problem, "description": "Too many requests from this client: wait for Retry-After."},
}


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


def encode_cursor(matched_at: datetime, ident: int) -> str:
    return base64.urlsafe_b64encode(f"{matched_at.isoformat()}|{ident}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """ValueError when it is not a cursor this API handed out."""
    if len(cursor) > 200:
        raise ValueError("cursor too long")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    when, _, ident = raw.partition("|")
    moment = datetime.fromisoformat(when)
    if moment.tzinfo is None:
        raise ValueError("cursor without a time zone")
    return moment, int(ident)
