"""What a digest says: the matches of its articles grouped by rule, with counts, newest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.store import queries
from monitor.store.db import Database
from monitor.store.queries import MatchView

_CHUNK = 500  # articles per query
_TITLES = {"scheduled": "digest", "manual": "digest", "quiet": "quiet-hours digest"}


@dataclass(frozen=True)
class RuleGroup:
    rule: str
    title: str
    matches: tuple[MatchView, ...]  # one per article, newest first


@dataclass(frozen=True)
class Digest:
    destination: str
    period_end: datetime  # UTC
    timezone: str  # the destination's, for showing times
    kind: str  # scheduled | quiet | manual
    alerts_only: bool
    articles: int
    groups: tuple[RuleGroup, ...]
    possible_duplicate: bool = False

    @property
    def heading(self) -> str:
        """One line naming the destination, the period and the counts (plain text: no untrusted content)."""
        local = self.period_end.astimezone(ZoneInfo(self.timezone))
        what = "alerts during quiet hours" if self.alerts_only else _TITLES.get(self.kind, "digest")
        articles = f"{self.articles} article{'s' if self.articles != 1 else ''}"
        rules = f"{len(self.groups)} rule{'s' if len(self.groups) != 1 else ''}"
        return f"{self.destination} {what}: {articles}, {rules} (up to {local:%Y-%m-%d %H:%M} {self.timezone})"


def build_digest(db: Database, items: Sequence[tuple[int, tuple[str, ...]]], destination: str, timezone: str,
                 period_end: datetime, kind: str, alerts_only: bool = False,
                 possible_duplicate: bool = False) -> Digest:
    """The digest of these outbox items ((article id, rules routed) pairs): one group per rule, ordered by
    rule title, its articles newest first."""
    routed = dict(items)
    groups: dict[str, list[MatchView]] = {}
    ids = list(routed)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        for match in queries.list_matches(db, article_ids=chunk, limit=len(chunk) * 64):
            if match.rule in routed.get(match.article_id, ()):
                groups.setdefault(match.rule, []).append(match)
    ordered = sorted(groups.values(), key=lambda ms: (ms[0].rule_title.lower(), ms[0].rule))
    articles = {m.article_id for ms in groups.values() for m in ms}
    return Digest(destination, period_end, timezone, kind, alerts_only, len(articles),
                  tuple(RuleGroup(ms[0].rule, ms[0].rule_title, tuple(ms)) for ms in ordered), possible_duplicate)

