"""Matcher engine: compiled rules evaluated over an article's folded fields, with explanations.

Cost grows with the text, not with rules × terms: one RE2-Set pass per field (and script) finds which
term anchors occur (prefilter.py); only rules that need one of those anchors are evaluated, and inside a
rule only the terms whose anchor occurs run their pattern (nodes.py, proximity.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.models import Article, Explanation, Match, TermHit
from monitor.rules.document import CONTENT_FIELDS, Document
from monitor.rules.nodes import Node
from monitor.rules.prefilter import Key, Prefilter

SNIPPET_CHARS = 320


@dataclass(frozen=True)
class Example:
    """An inline example of a rule file: an article that must (or must not) match, and where it is written."""

    article: Article
    expect: bool
    where: str


@dataclass(frozen=True)
class CompiledRule:
    id: str
    title: str
    description: str
    severity: str
    routes: tuple[str, ...]
    root: Node
    source: str
    examples: tuple[Example, ...] = ()

    def match(self, doc: Document) -> Match | None:
        outcome = self.root.evaluate(doc)
        if not outcome.held:
            return None
        hits = tuple(outcome.hits)
        snippet, snippet_field = best_snippet(doc, hits)
        explanation = Explanation(self.id, tuple(outcome.clauses), hits, snippet, snippet_field)
        return Match(self.id, self.title, self.severity, explanation, self.routes)


class RuleSet:
    """Compiled rules plus the indexes that pick, per document, the rules worth evaluating: each rule is
    indexed under the anchors of its narrowest gate, and the anchors present must make it possible."""

    def __init__(self, rules: Sequence[CompiledRule], prefilter: Prefilter) -> None:
        self.rules = tuple(rules)
        self.prefilter = prefilter
        self._always: list[int] = []
        self._by_key: dict[Key, list[int]] = {}
        for index, rule in enumerate(self.rules):
            gates = sorted(rule.root.gates(), key=len)
            if not gates:
                self._always.append(index)
            for key in gates[0] if gates else ():
                self._by_key.setdefault(key, []).append(index)
        self._lower = frozenset(anchor for lower, anchor in self._by_key if lower)
        self._cased = frozenset(anchor for lower, anchor in self._by_key if not lower)

    def candidates(self, doc: Document) -> list[CompiledRule]:
        lower = doc.present(True) or frozenset()
        cased = doc.present(False) or frozenset() if self.prefilter.has_cased else frozenset()
        indices = set(self._always)
        for anchor in lower & self._lower:
            indices.update(self._by_key[(True, anchor)])
        for anchor in cased & self._cased:
            indices.update(self._by_key[(False, anchor)])
        return [self.rules[i] for i in sorted(indices) if self.rules[i].root.possible(doc)]

    def match(self, article: Article) -> tuple[Match, ...]:
        doc = Document.of(article, self.prefilter)
        return tuple(m for rule in self.candidates(doc) if (m := rule.match(doc)) is not None)

    def ids(self) -> list[str]:
        return [rule.id for rule in self.rules]


def best_snippet(doc: Document, hits: tuple[TermHit, ...]) -> tuple[str, str]:
    """The sentence holding the most distinct matched terms (ties: the earliest field, then the earliest
    sentence); long sentences are cut around their first hit. Each sentence is looked up once: hits are
    taken in order of position and grouped by the sentence of the first one."""
    best: tuple[int, int, int, str] | None = None  # (distinct terms, left, right, field)
    for name in CONTENT_FIELDS:
        ordered = sorted((h.start, h.term) for h in hits if h.field == name)
        layout = doc.fields[name].layout
        index = 0
        while index < len(ordered):
            left, right = layout.sentence_span(ordered[index][0])
            terms = set()
            while index < len(ordered) and ordered[index][0] < right:
                terms.add(ordered[index][1])
                index += 1
            if best is None or len(terms) > best[0]:
                best = (len(terms), left, right, name)
    if best is None:
        return "", ""
    _, left, right, name = best
    text = doc.fields[name].original
    sentence = text[left:right].strip()
    if len(sentence) > SNIPPET_CHARS:
        first = min(h.start for h in hits if h.field == name and left <= h.start < right)
        begin = max(left, first - SNIPPET_CHARS // 2)
        sentence = "…" + text[begin : begin + SNIPPET_CHARS].strip() + "…"
    return sentence, name
