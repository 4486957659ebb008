"""Precision and recall of rules against labelled documents (`monitor rules eval`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.models import Match
from monitor.rules.corpus import CorpusDocument, Labels
from monitor.rules.diagnose import explain_miss
from monitor.rules.document import Document
from monitor.rules.engine import CompiledRule, RuleSet


@dataclass
class RuleScore:
    rule: str
    true_positives: int = 0
    false_positives: list[tuple[str, str]] = field(default_factory=list)  # (document id, the clause that held)
    false_negatives: list[tuple[str, str]] = field(default_factory=list)  # (document id, what was missing)
    true_negatives: int = 0
    left_out: int = 0  # unsure or unlabelled for this rule

    @property
    def positives(self) -> int:
        return self.true_positives + len(self.false_negatives)

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


    def count(self, label: bool, matched: bool, doc_id: str, why: str) -> None:
        if label and matched:
            self.true_positives += 1
        elif label:
            self.false_negatives.append((doc_id, why))
        elif matched:
            self.false_positives.append((doc_id, why))
        else:
            self.true_negatives += 1


@dataclass
class Evaluation:
    scores: dict[str, RuleScore]
    by_lang: dict[tuple[str, str], RuleScore] = field(default_factory=dict)  # (rule, language) → its score
    documents: int = 0
    unlabelled: list[str] = field(default_factory=list)  # documents with no label line
    missing: list[str] = field(default_factory=list)  # label lines with no document


def _why_matched(match: Match) -> str:
    """The clause that decided, the terms it found and the sentence around them."""
    clauses = [c for c in match.explanation.clauses if not c.endswith("(absent)")]
    terms = sorted({h.term for h in match.explanation.hits})
    return " ".join(f"{clauses[0] if clauses else 'match'} [{', '.join(terms)}] — {match.explanation.snippet}".split())


def _why_missed(rule: CompiledRule, doc: CorpusDocument, rules: RuleSet) -> str:
    title = " ".join(doc.article.title.split())[:120]
    return f"{title} — {explain_miss(rule.root, Document.of(doc.article, rules.prefilter))}"


def language(doc: CorpusDocument) -> str:
    """The language a document is reported under: its ``lang`` (en, ko, ja, zh-Hant, zh-Hans…) or ``?``."""
    return doc.article.lang or "?"


def evaluate(rules: RuleSet, documents: Iterable[CorpusDocument], labels: dict[str, Labels]) -> Evaluation:
    """Score every loaded rule that the labels know, overall and per language, leaving out each document's
    ``unsure`` rules. A false positive carries the clause that held, a false negative what the closest
    alternative of the rule was missing."""
    labelled_rules = {rule for entry in labels.values() for rule in entry.values}
    compiled = {rule.id: rule for rule in rules.rules}
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
        lang = language(doc)
        for rule, score in result.scores.items():
            per_lang = result.by_lang.setdefault((rule, lang), RuleScore(rule))
            if rule in entry.unsure or rule not in entry.values:
                score.left_out += 1
                per_lang.left_out += 1
                continue
            label, hit = entry.values[rule], rule in matched
            why = ""
            if label != hit:
                why = _why_matched(matched[rule]) if hit else _why_missed(compiled[rule], doc, rules)
            score.count(label, hit, doc.id, why)
            per_lang.count(label, hit, doc.id, why)
    result.missing = sorted(set(labels) - seen)
    return result
