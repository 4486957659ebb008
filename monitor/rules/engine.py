"""Matcher engine: compiled rule trees evaluated over an article's folded fields, with explanations."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Protocol

import ahocorasick

from monitor.models import Article, Explanation, Match, TermHit
from monitor.rules.terms import Term
from monitor.rules.text import FieldText

FIELDS = ("title", "summary", "text")
MAX_HITS_PER_TERM = 20
SNIPPET_CHARS = 320
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
_second = itemgetter(1)


class Prefilter:
    """Aho-Corasick automata over every term's anchor (one for lower-case, one for cased text): one
    linear pass per field finds which anchors occur, so a term's pattern runs only where it can match
    and the cost grows with the text, not with rules × terms."""

    def __init__(self, terms: Iterable[Term]) -> None:
        self._automata: dict[bool, ahocorasick.Automaton] = {}
        for lower in (True, False):
            anchors = {t.anchor for t in terms if t.lower is lower and t.anchor}
            if anchors:
                automaton = ahocorasick.Automaton()
                for anchor in anchors:
                    automaton.add_word(anchor, anchor)
                automaton.make_automaton()
                self._automata[lower] = automaton

    def present(self, folded_texts: Iterable[str], lower: bool) -> frozenset[str]:
        automaton = self._automata.get(lower)
        if automaton is None:
            return frozenset()
        found: set[str] = set()
        for text in folded_texts:
            found.update(map(_second, automaton.iter(text)))
        return frozenset(found)


class Document:
    """The fields of one article, folded once and shared by every rule."""

    def __init__(self, fields: dict[str, str], prefilter: Prefilter | None = None) -> None:
        self.fields = {name: FieldText(fields.get(name, "") or "") for name in FIELDS}
        self._hits: dict[int, tuple[TermHit, ...]] = {}
        self._prefilter = prefilter
        self._present: dict[bool, frozenset[str]] = {}

    @classmethod
    def of(cls, article: Article, prefilter: Prefilter | None = None) -> Document:
        return cls({"title": article.title, "summary": article.summary, "text": article.text}, prefilter)

    def hits(self, term: Term) -> tuple[TermHit, ...]:
        cached = self._hits.get(id(term))
        if cached is None:
            cached = self._hits[id(term)] = tuple(self._find(term)) if self._may_match(term) else ()
        return cached

    def _may_match(self, term: Term) -> bool:
        if self._prefilter is None or not term.anchor:
            return True
        present = self._present.get(term.lower)
        if present is None:
            texts = (f.folded(term.lower).text for f in self.fields.values())
            present = self._present[term.lower] = self._prefilter.present(texts, term.lower)
        return term.anchor in present

    def _find(self, term: Term) -> list[TermHit]:
        found: list[TermHit] = []
        for name, field_text in self.fields.items():
            folded = field_text.folded(term.lower)
            size = len(field_text.original)
            for count, m in enumerate(term.pattern.finditer(folded.text)):
                if count >= MAX_HITS_PER_TERM:
                    break
                start = folded.to_original(m.start(), size)
                end = folded.to_original(m.end() - 1, size) + 1
                found.append(TermHit(term.source, name, start, end, field_text.original[start:end]))
        return found


@dataclass
class Outcome:
    """Whether a node held; if so its term hits and its clause paths, relative to the node (each parent
    prefixes its own step, so paths are built only along branches that held)."""

    held: bool
    hits: list[TermHit] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)


_FAILED = Outcome(False)


class Node(Protocol):
    def evaluate(self, doc: Document) -> Outcome: ...


@dataclass(frozen=True)
class TermNode:
    term: Term

    def evaluate(self, doc: Document) -> Outcome:
        hits = doc.hits(self.term)
        if not hits:
            return _FAILED
        return Outcome(True, list(hits), [f" {self.term.source!r}"])


@dataclass(frozen=True)
class AnyNode:
    children: tuple[Node, ...]

    def evaluate(self, doc: Document) -> Outcome:
        result: Outcome | None = None
        for index, child in enumerate(self.children):
            sub = child.evaluate(doc)
            if sub.held:
                result = result or Outcome(True)
                result.hits += sub.hits
                result.clauses += [f"/any[{index}]{clause}" for clause in sub.clauses]
        return result or _FAILED


@dataclass(frozen=True)
class AllNode:
    children: tuple[Node, ...]

    def evaluate(self, doc: Document) -> Outcome:
        result = Outcome(True)
        for index, child in enumerate(self.children):
            sub = child.evaluate(doc)
            if not sub.held:
                return _FAILED
            result.hits += sub.hits
            result.clauses += [f"/all[{index}]{clause}" for clause in sub.clauses]
        return result


@dataclass(frozen=True)
class NotNode:
    child: Node

    def evaluate(self, doc: Document) -> Outcome:
        if self.child.evaluate(doc).held:
            return _FAILED
        return Outcome(True, [], ["/not (absent)"])


@dataclass(frozen=True)
class CompiledRule:
    id: str
    title: str
    description: str
    severity: str
    routes: tuple[str, ...]
    root: Node
    source: str

    def match(self, doc: Document) -> Match | None:
        outcome = self.root.evaluate(doc)
        if not outcome.held:
            return None
        hits = tuple(outcome.hits)
        snippet, snippet_field = best_snippet(doc, hits)
        explanation = Explanation(self.id, tuple("match" + c for c in outcome.clauses), hits, snippet, snippet_field)
        return Match(self.id, self.title, self.severity, explanation)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]
    prefilter: Prefilter

    def match(self, article: Article) -> tuple[Match, ...]:
        doc = Document.of(article, self.prefilter)
        return tuple(m for rule in self.rules if (m := rule.match(doc)) is not None)

    def ids(self) -> list[str]:
        return [rule.id for rule in self.rules]


def _sentence(text: str, start: int, end: int) -> tuple[int, int]:
    left = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
    right_match = _SENTENCE_END.search(text, end)
    right = right_match.end() if right_match else len(text)
    return left, right


def best_snippet(doc: Document, hits: tuple[TermHit, ...]) -> tuple[str, str]:
    """The sentence holding the most distinct matched terms (earliest field wins ties)."""
    if not hits:
        return "", ""
    best: tuple[int, int, int, str] | None = None
    for hit in hits:
        text = doc.fields[hit.field].original
        left, right = _sentence(text, hit.start, hit.end)
        terms = {h.term for h in hits if h.field == hit.field and left <= h.start < right}
        score = (len(terms), -FIELDS.index(hit.field))
        if best is None or score > (best[0], -FIELDS.index(best[3])):
            best = (len(terms), left, right, hit.field)
    assert best is not None
    _, left, right, name = best
    text = doc.fields[name].original
    sentence = text[left:right].strip()
    if len(sentence) > SNIPPET_CHARS:
        anchor = next(h for h in hits if h.field == name and left <= h.start < right)
        begin = max(left, anchor.start - SNIPPET_CHARS // 2)
        sentence = "…" + text[begin : begin + SNIPPET_CHARS].strip() + "…"
    return sentence, name
