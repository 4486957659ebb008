"""Run the current rules over stored articles and compare with the stored matches (`monitor rules replay`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from monitor.models import Article, Match
from monitor.rules.engine import RuleSet
from monitor.store.db import Database
from monitor.store.history import StoredArticle, stored_articles


@dataclass(frozen=True)
class ReplayChange:
    """``new``: the rules match now but no match is stored; ``vanished``: stored, but the rules no longer match
    (or the rule is gone). ``match`` is set for new ones."""

    kind: str
    article: StoredArticle
    rule: str
    match: Match | None = None


def replay(db: Database, rules: RuleSet, since: datetime | None,
           tags_of: Callable[[str], tuple[str, ...]] = lambda _feed: ()) -> Iterator[ReplayChange]:
    """Differences between what ``rules`` match now and what is stored, article by article."""
    for stored in stored_articles(db, since):
        article = Article(title=stored.title, summary=stored.summary, text=stored.text,
                          text_source="extracted" if stored.text_source == "extracted" else "summary",
                          lang=stored.lang, url=stored.url, feed=stored.feed, tags=tags_of(stored.feed))
        now = {m.rule_id: m for m in rules.match(article)}
        for rule_id in sorted(set(now) - stored.rules):
            yield ReplayChange("new", stored, rule_id, now[rule_id])
        for rule_id in sorted(stored.rules - set(now)):
            yield ReplayChange("vanished", stored, rule_id)
