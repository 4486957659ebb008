"""What the API answers, apart from the tables: pydantic response models built from the store's views."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.store.judgements import MAX_COMMENT, Judgement
from monitor.store.queries import MatchView


class JudgementOut(BaseModel):
    id: int
    article_id: int
    rule: str
    match_id: int | None = Field(description="The judged match; null for an article the rule missed.")
    verdict: Literal["relevant", "not_relevant", "missed"]
    comment: str | None
    author: str = Field(description="The name of the token that sent it.")
    created_at: datetime
    title: str = ""
    url: str | None = None

    @classmethod
    def of(cls, judgement: Judgement) -> JudgementOut:
        return cls(id=judgement.id, article_id=judgement.article_id, rule=judgement.rule,
                   match_id=judgement.match_id, verdict=judgement.verdict,  # type: ignore[arg-type]
                   comment=judgement.comment, author=judgement.author, created_at=judgement.created_at,
                   title=judgement.title, url=judgement.url)


class JudgementIn(BaseModel):
    verdict: Literal["relevant", "not_relevant"] = Field(description="Whether the match was worth an alert.")
    comment: str | None = Field(None, max_length=MAX_COMMENT, description="Why, in a few words (optional).")


class MissedById(BaseModel):
    """A stored article, by its id, that a rule should have matched."""

    model_config = ConfigDict(extra="forbid")
    rule: str = Field(min_length=1, max_length=64, description="The rule that should have matched.")
    article_id: int = Field(ge=1, le=2**53 - 1, description="The stored article's id (a JSON-safe integer).")
    comment: str | None = Field(None, max_length=MAX_COMMENT, description="Why it should match (optional).")


class MissedByUrl(BaseModel):
    """A stored article, by its link, that a rule should have matched."""

    model_config = ConfigDict(extra="forbid")
    rule: str = Field(min_length=1, max_length=64, description="The rule that should have matched.")
    url: str = Field(min_length=1, max_length=2000, description="The stored article's link.")
    comment: str | None = Field(None, max_length=MAX_COMMENT, description="Why it should match (optional).")


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
    judgements: list[JudgementOut] = Field(default_factory=list, description="Analysts' judgements of this match "
                                           "(oldest first; the newest is in force).")

    @classmethod
    def of(cls, view: MatchView, judgements: list[Judgement] | None = None) -> MatchOut:
        return cls(id=view.id, rule=view.rule, rule_title=view.rule_title, severity=view.severity, title=view.title,
                   url=view.url, feed=view.feed, feeds=list(view.feeds), lang=view.lang, published=view.published,
                   matched_at=view.matched_at, text_source=view.text_source, explanation=view.explanation,
                   judgements=[JudgementOut.of(j) for j in judgements or () if j.rule == view.rule])


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
