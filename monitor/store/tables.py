"""SQLModel tables. Dedupe is enforced here by unique constraints, not by memory."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class FeedRow(SQLModel, table=True):
    __tablename__ = "feeds"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    url: str = Field(max_length=2000)
    etag: str | None = Field(default=None, max_length=1000)
    last_modified: str | None = Field(default=None, max_length=200)
    last_status: int | None = None
    last_outcome: str | None = Field(default=None, max_length=20)
    last_error: str | None = Field(default=None, max_length=2000)
    last_error_class: str | None = Field(default=None, max_length=40)
    last_warning: str | None = Field(default=None, max_length=1000)
    consecutive_errors: int = 0
    guid_churn: int = 0
    last_checked_at: datetime | None = None
    last_success_at: datetime | None = None
    next_check_at: datetime | None = Field(default=None, index=True)
    entries_seen: int = 0
    paused_at: datetime | None = None  # set after MONITOR_FEED_PAUSE_AFTER failures in a row; not polled until resumed
    failing_since: datetime | None = None  # the first failure of the current run of failures
    cadence: float | None = None  # learned seconds between two entries (median of the recent gaps)
    ttl: float | None = None  # the feed's own <ttl>, in seconds
    last_new_entry_at: datetime | None = None  # when the feed last brought an entry not seen before
    health: str | None = Field(default=None, max_length=10)  # failing | silent: an unhealthy notice is open
    lease_owner: str | None = Field(default=None, max_length=200)  # the worker polling it now (host:pid)
    lease_until: datetime | None = None  # its claim ends then (a worker that died: the feed is free again)


class ArticleRow(SQLModel, table=True):
    __tablename__ = "articles"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=1100)
    url: str | None = Field(default=None, max_length=2000)
    title: str = Field(default="", max_length=2000)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    text_source: str = Field(max_length=20)
    extract_error: str | None = Field(default=None, max_length=1000)
    lang: str | None = Field(default=None, max_length=10)
    published_at: datetime | None = Field(default=None, index=True)
    created_at: datetime


class EntryRow(SQLModel, table=True):
    __tablename__ = "entries"
    __table_args__ = (UniqueConstraint("feed_id", "entry_key", name="uq_entries_feed_key"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(foreign_key="feeds.id", index=True)
    article_id: int = Field(foreign_key="articles.id", index=True)
    entry_key: str = Field(max_length=1100)
    key_kind: str = Field(max_length=20)
    url_key: str | None = Field(default=None, max_length=1100, index=True)
    guid: str | None = Field(default=None, max_length=1000)
    title: str = Field(default="", max_length=2000)
    published_at: datetime | None = None
    first_seen_at: datetime


class MatchRow(SQLModel, table=True):
    __tablename__ = "matches"
    __table_args__ = (UniqueConstraint("article_id", "rule_id", name="uq_matches_article_rule"),
                      Index("ix_matches_rule_id_matched_at", "rule_id", "matched_at"))  # a rule's newest matches

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="articles.id", index=True)
    rule_id: str = Field(max_length=64, index=True)
    rule_title: str = Field(max_length=200)
    severity: str = Field(max_length=20)
    explanation: str = Field(sa_column=Column(Text, nullable=False))
    matched_at: datetime = Field(index=True)


class DeliveryRow(SQLModel, table=True):
    """The outbox: one row per (article, destination), written in the transaction that stores the
    article's matches. ``sending`` marks a row handed to the provider; a row still ``sending`` when a
    sender starts is the ambiguous window (sent or not?), sent again and flagged ``possible_duplicate``."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("article_id", "destination", name="uq_deliveries_article_destination"),)

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="articles.id", index=True)
    destination: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=10)  # alert (sent at once) | digest (collected by the digest job)
    rules: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of the rule ids routed here
    status: str = Field(max_length=10, index=True)  # pending | sending | sent | failed | dead
    alert: bool = False  # a rule routed here has severity alert (a digest's quiet hours never hold it)
    digest_id: int | None = Field(default=None, foreign_key="digests.id", index=True)  # the digest it went into
    attempts: int = 0
    next_attempt_at: datetime = Field(index=True)
    created_at: datetime
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    possible_duplicate: bool = False


class DigestRow(SQLModel, table=True):
    """One digest of a destination: the pending digest rows it took are frozen into it (deliveries.digest_id)
    in the transaction that creates it, so a retried or interrupted digest sends the same content. One per
    (destination, period_end): running the digest job twice sends one digest."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("destination", "period_end", name="uq_digests_destination_period"),)

    id: int | None = Field(default=None, primary_key=True)
    destination: str = Field(max_length=64, index=True)
    period_end: datetime  # the schedule's fire time (or quiet hours' end, or the moment of `digest --now`)
    kind: str = Field(max_length=10)  # scheduled | quiet (the mini-digest at quiet hours' end) | manual
    alerts_only: bool = False  # a scheduled time inside quiet hours: only alert items went out
    items: int = 0  # outbox rows (articles) it holds
    status: str = Field(max_length=10, index=True)  # pending | sending | sent | failed | dead
    attempts: int = 0
    parts_sent: int = 0  # messages of a split (Slack) digest already accepted: a retry sends only the rest
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    possible_duplicate: bool = False


class FeedNoticeRow(SQLModel, table=True):
    """A health notice (a feed or a rule went unhealthy, or recovered), written in the transaction that changes
    the feed's ``health`` (or the rule's RuleHealthRow): one notice per change, sent to the health destination
    like an outbox row. A feed's notice has feed_id and feed_name, a rule's (since migration 0007) rule_id."""

    __tablename__ = "feed_notices"

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int | None = Field(default=None, foreign_key="feeds.id", index=True)
    feed_name: str | None = Field(default=None, max_length=200)
    rule_id: str | None = Field(default=None, max_length=64, index=True)
    kind: str = Field(max_length=10)  # failing | silent | recovered
    message: str = Field(sa_column=Column(Text, nullable=False))
    destination: str = Field(max_length=64)
    status: str = Field(max_length=10, index=True)  # pending | sending | sent | dead
    attempts: int = 0
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class RuleHealthRow(SQLModel, table=True):
    """A rule's health: ``silent`` while a notice says it has matched nothing for too long. Written (with the
    notice, in one transaction) only when it changes; a rule without a row has never been silent."""

    __tablename__ = "rule_health"

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(max_length=64, unique=True, index=True)
    health: str | None = Field(default=None, max_length=10)  # None | silent
    last_match_at: datetime | None = None  # its newest match when the health last changed
    changed_at: datetime | None = None


class JudgementRow(SQLModel, table=True):
    """An analyst's judgement of a rule on an article: a match marked relevant or not relevant, or an article
    the rule missed. Kept as history (the newest judgement of a (article, rule) pair is the one in force)."""

    __tablename__ = "judgements"

    id: int | None = Field(default=None, primary_key=True)
    article_id: int = Field(foreign_key="articles.id", index=True)
    rule_id: str = Field(max_length=64, index=True)
    match_id: int | None = Field(default=None, foreign_key="matches.id", index=True)  # None: a missed article
    verdict: str = Field(max_length=12)  # relevant | not_relevant | missed
    comment: str | None = Field(default=None, max_length=500)
    author: str = Field(max_length=64)  # the name of the API token that sent it
    created_at: datetime = Field(index=True)
