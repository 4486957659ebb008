"""Run every rule's inline examples (`monitor rules check`, and a warning at service start)."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.models import Article
from monitor.rules.document import Document
from monitor.rules.engine import CompiledRule, RuleSet


@dataclass(frozen=True)
class ExampleFailure:
    where: str  # file:line of the example
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: rule {self.rule!r}: {self.message}"


def check_examples(rules: RuleSet) -> tuple[int, list[ExampleFailure]]:
    """(examples run, failures): a ``match`` example that does not match, a ``no_match`` one that does."""
    failures: list[ExampleFailure] = []
    count = 0
    for rule in rules.rules:
        for example in rule.examples:
            count += 1
            failure = _run(rules, rule, example.article, example.expect)
            if failure:
                failures.append(ExampleFailure(example.where, rule.id, failure))
    return count, failures


def _run(rules: RuleSet, rule: CompiledRule, article: Article, expect: bool) -> str | None:
    matched = rule.match(Document.of(article, rules.prefilter))
    if expect and matched is None:
        return "example should match but does not"
    if not expect and matched is not None:
        terms = ", ".join(sorted({h.term for h in matched.explanation.hits})) or "no terms"
        return f"example should not match but does (clauses {'; '.join(matched.explanation.clauses)}; terms {terms})"
    return None
