"""Precision and recall of rules against labelled documents (`monitor rules eval`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.models import Match
from monitor.rules.corpus import CorpusDocument, Labels
from monitor.rules.engine import RuleSet


@dataclass
class RuleScore:
    rule: str
    true_positives: int = 0
    false_positives: list[tuple[str, str]] = field(default_factory=list)  # (document id, why it matched)
    false_negatives: list[tuple[str, str]] = field(default_factory=list)  # (document id, title)
    true_negatives: int = 0
    left_out: int = 0  # unsure or unlabelled for this rule

    @property
    def precision(self) -> float | None:
        predicted = self.true_positives + len(self.false_positives)
        return self.true_positives / predicted if predicted else None

    @property
    def recall(self) -> float | None:
        actual = self.true_positives + len(self.false_negatives)
        return self.true_positives / actual if actual else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None
        return 2 * p * r / (p + r)


@dataclass
class Evaluation:
    scores: dict[str, RuleScore]
    documents: int = 0
    unlabelled: list[str] = field(default_factory=list)  # documents with no label line
    missing: list[str] = field(default_factory=list)  # label lines with no document


def _why(match: Match) -> str:
    terms = sorted({h.term for h in match.explanation.hits})
    return f"{', '.join(terms)} — {match.explanation.snippet}"


def evaluate(rules: RuleSet, documents: Iterable[CorpusDocument], labels: dict[str, Labels]) -> Evaluation:
    """Score every loaded rule that the labels know, leaving out each document's ``unsure`` rules."""
    labelled_rules = {rule for entry in labels.values() for rule in entry.values}
    result = Evaluation({rule: RuleScore(rule) for rule in rules.ids() if rule in labelled_rules})
    seen: set[str] = set()
    for doc in documents:
        seen.add(doc.id)
        result.documents += 1
        entry = labels.get(doc.id)
        if entry is None:
            result.unlabelled.append(doc.id)
            continue
        matched = {m.rule_id: m for m in rules.match(doc.article)}
        for rule, score in result.scores.items():
            if rule in entry.unsure or rule not in entry.values:
                score.left_out += 1
            elif entry.values[rule] and rule in matched:
                score.true_positives += 1
            elif entry.values[rule]:
                score.false_negatives.append((doc.id, doc.article.title))
            elif rule in matched:
                score.false_positives.append((doc.id, _why(matched[rule])))
            else:
                score.true_negatives += 1
    result.missing = sorted(set(labels) - seen)
    return result
