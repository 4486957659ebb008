"""Match stage: an Article against the compiled rules → Match values with explanations."""

from __future__ import annotations

from monitor.models import Article, Match
from monitor.rules.engine import RuleSet


def match_rules(article: Article, rules: RuleSet) -> tuple[Match, ...]:
    return rules.match(article)
