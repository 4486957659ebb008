"""Matcher engine: compiled rule trees evaluated over an article's folded fields, with explanations.

Cost grows with the text, not with rules × terms: one RE2-Set pass per field (and script) finds which
term anchors occur; only rules that need one of those anchors are evaluated, and inside a rule only the
terms whose anchor occurs run their pattern.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Protocol

import re2

from monitor.models import Article, Explanation, Match, TermHit
from monitor.rules.terms import Term
from monitor.rules.text import FieldText

FIELDS = ("title", "summary", "text", "url", "feed")
CONTENT_FIELDS = ("title", "summary", "text")
MAX_HITS_PER_TERM = 20
SNIPPET_CHARS = 320
PREFILTER_MAX_MEM = 64 << 20  # RE2's budget for the anchor sets' automata (per process)
Key = tuple[bool, str]


# Scripts whose anchors get their own RE2 Set. One automaton over anchors of several scripts has a
# state space near the product of theirs (measured: 300 mixed Latin/Han/Hangul rules ran 4x slower as
# one Set than as three); split, each Set stays small, and a Set runs only on text that may hold its script.
# An anchor that contains a character of a script can only occur in text that contains one too. Whether a
# text may hold a script is read from the lead bytes of its UTF-8 form (memchr speed; a regex character
# class would step through every character of an English article to find no Han in it): every character
# of the script starts with one of them (a superset: E3 also starts kana and CJK punctuation, EF full-width
# forms, which only costs a Set pass that finds nothing).
_SCRIPTS: tuple[tuple[str, re.Pattern[str], tuple[bytes, ...]], ...] = (
    # U+3400–4DBF, U+4E00–9FFF, U+F900–FAFF
    ("han", re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"),
     (b"\xe3", b"\xe4", b"\xe5", b"\xe6", b"\xe7", b"\xe8", b"\xe9", b"\xef")),
    # U+1100–11FF, U+3130–318F, U+AC00–D7AF
    ("hangul", re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]"),
     (b"\xe1", b"\xe3", b"\xea", b"\xeb", b"\xec", b"\xed")),
    # U+3040–30FF, U+31F0–31FF
    ("kana", re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]"), (b"\xe3",)),
)


def _script(anchor: str) -> str | None:
    return next((name for name, chars, _ in _SCRIPTS if chars.search(anchor)), None)


def _may_hold(encoded: bytes, lead_bytes: tuple[bytes, ...] | None) -> bool:
    return lead_bytes is None or any(lead in encoded for lead in lead_bytes)


class _AnchorSet:
    """Anchors (google-re2 patterns) of one case group and script in one google-re2 Set."""

    def __init__(self, anchors: Sequence[str]) -> None:
        self.anchors = tuple(anchors)
        options = re2.Options()
        options.log_errors = False
        options.max_mem = PREFILTER_MAX_MEM
        self._set = re2.Set.SearchSet(options)
        for anchor in self.anchors:
            self._set.Add(anchor)
        self._set.Compile()

    def found(self, text: bytes) -> Iterable[str]:
        return map(self.anchors.__getitem__, self._set.Match(text) or ())


class Prefilter:
    """Every term's anchors (patterns over the lower-case or cased fold) in google-re2 Sets, one per case
    group and script: one linear, DFA-speed pass per field and script present says which anchors occur
    in it (without reporting every occurrence)."""

    def __init__(self, anchors: dict[bool, Iterable[str]]) -> None:
        self._anchors = {lower: tuple(sorted(set(items))) for lower, items in anchors.items()}
        self._sets: dict[bool, list[tuple[tuple[bytes, ...] | None, _AnchorSet]]] = {}
        leads = {name: lead_bytes for name, _, lead_bytes in _SCRIPTS}
        for lower, items in self._anchors.items():
            groups: dict[str | None, list[str]] = {}
            for anchor in items:
                groups.setdefault(_script(anchor), []).append(anchor)
            self._sets[lower] = [(leads[script] if script else None, _AnchorSet(group))
                                 for script, group in sorted(groups.items(), key=lambda kv: kv[0] or "")]

    @property
    def has_cased(self) -> bool:
        return bool(self._sets.get(False))

    @classmethod
    def of(cls, terms: Iterable[Term]) -> Prefilter:
        keys = [key for term in terms for key in term.keys]
        return cls({lower: [anchor for is_lower, anchor in keys if is_lower is lower] for lower in (True, False)})

    def present(self, folded_text: str, lower: bool) -> frozenset[str]:
        sets = self._sets.get(lower)
        if not sets or not folded_text:
            return frozenset()
        encoded = folded_text.encode()  # once for every Set (re2 would encode a str on each call)
        found: set[str] = set()
        for lead_bytes, anchor_set in sets:
            if _may_hold(encoded, lead_bytes):
                found.update(anchor_set.found(encoded))
        return frozenset(found)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its anchors (a compiled re2.Set does not pickle), rebuilt where it is loaded."""
        return (Prefilter, (self._anchors,))


class Document:
    """The fields of one article, folded once and shared by every rule. Without a prefilter every term
    runs its pattern (the reference behaviour the prefilter must never change)."""

    def __init__(self, fields: dict[str, str], prefilter: Prefilter | None = None, lang: str | None = None,
                 tags: Iterable[str] = ()) -> None:
        self.fields = {name: FieldText(fields.get(name) or "") for name in FIELDS}
        self.lang = (lang or "").lower()
        self.tags = frozenset(tags)
        self._hits: dict[tuple[int, str], list[TermHit]] = {}
        self._prefilter = prefilter
        self._present: dict[bool, frozenset[str]] = {}
        self._present_in: dict[bool, dict[str, frozenset[str]]] = {}
        self._span: tuple[str, int, int] | None = None

    def within(self, name: str, left: int, right: int) -> Document:
        """The same document seen through one span of one field (a sentence): hits elsewhere are invisible.
        Shares the folds and the hit cache."""
        view = copy.copy(self)
        view._span = (name, left, right)
        return view

    @classmethod
    def of(cls, article: Article, prefilter: Prefilter | None = None) -> Document:
        fields = {"title": article.title, "summary": article.summary, "text": article.text,
                  "url": article.url or "", "feed": article.feed}
        return cls(fields, prefilter, article.lang, article.tags)

    def present(self, lower: bool) -> frozenset[str] | None:
        """Anchors that occur in some field (None: no prefilter, assume every anchor does)."""
        if self._prefilter is None:
            return None
        found = self._present.get(lower)
        if found is None:
            by_field = self._present_in[lower] = {
                name: self._prefilter.present(f.folded(lower).text, lower) if f.original else frozenset()
                for name, f in self.fields.items()}
            found = self._present[lower] = frozenset().union(*by_field.values())
        return found

    def present_in(self, name: str, lower: bool) -> frozenset[str] | None:
        """Anchors that occur in one field (None: no prefilter)."""
        if self.present(lower) is None:
            return None
        return self._present_in[lower][name]

    def field_hits(self, term: Term, name: str) -> list[TermHit]:
        """The term's hits in one field (cached; within the span when this is a sentence view)."""
        found = self._hits.get((id(term), name))
        if found is None:
            found = self._hits[(id(term), name)] = self._find(term, name)
        if self._span is not None and found:
            span_field, left, right = self._span
            return [h for h in found if h.field == span_field and left <= h.start < right]
        return found

    def _find(self, term: Term, name: str) -> list[TermHit]:
        field_text = self.fields[name]
        if not field_text.original:
            return []
        folded = field_text.folded(term.lower)
        size = len(field_text.original)
        found: list[TermHit] = []
        for m in term.pattern.finditer(folded.text):
            if m.end() == m.start():  # an empty regex match marks no text
                continue
            start = folded.to_original(m.start(), size)
            end = folded.to_original(m.end() - 1, size) + 1
            found.append(TermHit(term.source, name, start, end, field_text.original[start:end]))
            if len(found) >= MAX_HITS_PER_TERM:
                break
        return found


@dataclass
class Outcome:
    """Whether a node held; if so its term hits and the clause paths (built at compile time) that held."""

    held: bool
    hits: list[TermHit] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)


_FAILED = Outcome(False)


class Node(Protocol):
    def evaluate(self, doc: Document) -> Outcome: ...

    def gates(self) -> list[frozenset[Key]]:
        """Necessary conditions: for this node to hold, one anchor of every gate must occur somewhere."""
        ...

    def possible(self, doc: Document) -> bool:
        """False when the anchors present in the document show this node cannot hold (cheap set checks)."""
        ...

    def superset(self, doc: Document) -> list[TermHit]:
        """Every hit this node could use (its own hits when it reports them all); empty if it cannot hold."""
        ...


def _distinct(hits: Iterable[TermHit]) -> int:
    return len({(h.field, h.start) for h in hits})


class TermsNode:
    """Any of a list of terms (a list, ``any`` of terms, a ``$list``), searched in ``fields``; holds when
    the terms have at least ``minimum`` distinct occurrences. Only terms whose anchor occurs run."""

    __slots__ = ("_always", "_by_key", "_cased", "_lower", "entries", "fields", "minimum")

    def __init__(self, entries: Sequence[tuple[str, Term]], fields: Sequence[str] = CONTENT_FIELDS,
                 minimum: int = 1) -> None:
        self.entries = tuple(entries)
        self.fields = tuple(fields)
        self.minimum = minimum
        self._by_key: dict[Key, list[int]] = {}
        always: list[int] = []
        for index, (_, term) in enumerate(self.entries):
            for key in term.keys:
                self._by_key.setdefault(key, []).append(index)
            if not term.anchors:
                always.append(index)
        self._always = tuple(always)
        self._lower = frozenset(anchor for lower, anchor in self._by_key if lower)
        self._cased = frozenset(anchor for lower, anchor in self._by_key if not lower)

    def _candidates(self, doc: Document, name: str) -> Sequence[int]:
        """Entries whose anchors occur in the field (all of them without a prefilter)."""
        lower = doc.present_in(name, True)
        if lower is None:
            return range(len(self.entries))
        indices = list(self._always)
        for anchor in lower & self._lower:
            indices += self._by_key[(True, anchor)]
        if self._cased:
            for anchor in (doc.present_in(name, False) or frozenset()) & self._cased:
                indices += self._by_key[(False, anchor)]
        return sorted(set(indices)) if len(indices) > 1 else indices

    def evaluate(self, doc: Document) -> Outcome:
        hits: list[TermHit] = []
        held: set[int] = set()
        for name in self.fields:
            if not doc.fields[name].original:
                continue
            for index in self._candidates(doc, name):
                found = doc.field_hits(self.entries[index][1], name)
                if found:
                    hits += found
                    held.add(index)
        if not hits or (self.minimum > 1 and _distinct(hits) < self.minimum):
            return _FAILED
        return Outcome(True, hits, [self.entries[i][0] for i in sorted(held)])

    def gates(self) -> list[frozenset[Key]]:
        return [] if self._always else [frozenset(self._by_key)]

    def possible(self, doc: Document) -> bool:
        lower = doc.present(True)
        if self._always or lower is None or not self._lower.isdisjoint(lower):
            return True
        return bool(self._cased) and not self._cased.isdisjoint(doc.present(False) or ())

    def superset(self, doc: Document) -> list[TermHit]:
        return _own_hits(self, doc)


def _own_hits(node: Node, doc: Document) -> list[TermHit]:
    outcome = node.evaluate(doc)
    return outcome.hits if outcome.held else []


def _all_gates(children: Iterable[Node]) -> list[frozenset[Key]]:
    """For nodes that need every child: every child's gates."""
    return [gate for child in children for gate in child.gates()]


@dataclass(frozen=True)
class AnyNode:
    children: tuple[Node, ...]

    def evaluate(self, doc: Document) -> Outcome:
        result: Outcome | None = None
        for child in self.children:
            if not child.possible(doc):
                continue
            sub = child.evaluate(doc)
            if sub.held:
                result = result or Outcome(True)
                result.hits += sub.hits
                result.clauses += sub.clauses
        return result or _FAILED

    def gates(self) -> list[frozenset[Key]]:
        """One gate: some anchor of some child (a child without gates makes the whole unconstrained)."""
        union: set[Key] = set()
        for child in self.children:
            gates = child.gates()
            if not gates:
                return []
            union |= min(gates, key=len)
        return [frozenset(union)]

    def possible(self, doc: Document) -> bool:
        return any(child.possible(doc) for child in self.children)

    def superset(self, doc: Document) -> list[TermHit]:
        return [h for child in self.children for h in child.superset(doc)]


@dataclass(frozen=True)
class AllNode:
    children: tuple[Node, ...]

    def evaluate(self, doc: Document) -> Outcome:
        if not self.possible(doc):
            return _FAILED
        result = Outcome(True)
        for child in self.children:
            sub = child.evaluate(doc)
            if not sub.held:
                return _FAILED
            result.hits += sub.hits
            result.clauses += sub.clauses
        return result

    def gates(self) -> list[frozenset[Key]]:
        return _all_gates(self.children)

    def possible(self, doc: Document) -> bool:
        return all(child.possible(doc) for child in self.children)

    def superset(self, doc: Document) -> list[TermHit]:
        return _own_hits(self, doc)


@dataclass(frozen=True)
class NotNode:
    child: Node
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        if self.child.evaluate(doc).held:
            return _FAILED
        return Outcome(True, [], [f"{self.path} (absent)"])

    def gates(self) -> list[frozenset[Key]]:
        return []

    def possible(self, doc: Document) -> bool:
        return True

    def superset(self, doc: Document) -> list[TermHit]:
        return []


@dataclass(frozen=True)
class ExceptNode:
    """Term hits of ``child`` that lie inside a hit of ``mask`` do not count ("tariff" inside "non-tariff" or
    "General Agreement on Tariffs and Trade"); the clause holds if any hit is left."""

    child: TermsNode
    mask: Node

    def evaluate(self, doc: Document) -> Outcome:
        sub = self.child.evaluate(doc)
        if not sub.held:
            return _FAILED
        masks = self.mask.evaluate(doc).hits
        if not masks:
            return sub
        kept = [h for h in sub.hits
                if not any(m.field == h.field and m.start <= h.start and h.end <= m.end for m in masks)]
        if not kept:
            return _FAILED
        terms = {h.term for h in kept}
        clauses = [c for c in sub.clauses if any(c.endswith(f" {t!r}") for t in terms)]
        return Outcome(True, kept, clauses)

    def gates(self) -> list[frozenset[Key]]:
        return self.child.gates()

    def possible(self, doc: Document) -> bool:
        return self.child.possible(doc)

    def superset(self, doc: Document) -> list[TermHit]:
        return _own_hits(self, doc)


@dataclass(frozen=True)
class MinNode:
    """A clause that must also have at least ``minimum`` distinct term occurrences."""

    child: Node
    minimum: int

    def evaluate(self, doc: Document) -> Outcome:
        sub = self.child.evaluate(doc)
        return sub if sub.held and _distinct(sub.hits) >= self.minimum else _FAILED

    def gates(self) -> list[frozenset[Key]]:
        return self.child.gates()

    def possible(self, doc: Document) -> bool:
        return self.child.possible(doc)

    def superset(self, doc: Document) -> list[TermHit]:
        return _own_hits(self, doc)


def _held_children(children: tuple[Node, ...], doc: Document) -> list[Outcome] | None:
    outcomes = []
    for child in children:
        sub = child.evaluate(doc)
        if not sub.held or not sub.hits:
            return None
        outcomes.append(sub)
    return outcomes


@dataclass(frozen=True)
class NearNode:
    """Every child has a hit, and one hit of each lies within ``within`` words, in the same field."""

    children: tuple[Node, ...]
    within: int
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        if not self.possible(doc):
            return _FAILED
        outcomes = _held_children(self.children, doc)
        if outcomes is None:
            return _FAILED
        tagged = sorted((((h.field, h.start, h.end, i), h) for i, o in enumerate(outcomes) for h in o.hits),
                        key=itemgetter(0))
        window = self._window(doc, tagged, len(outcomes))
        if window is None:
            return _FAILED
        clauses = [c for o in outcomes for c in o.clauses] + [f"{self.path} within {self.within} words"]
        return Outcome(True, window, clauses)

    def _window(self, doc: Document, tagged: list[tuple[tuple[str, int, int, int], TermHit]],
                needed: int) -> list[TermHit] | None:
        """The shortest run of hits (in one field, by position) holding one hit of every child, if its
        first and last hits are within the distance."""
        counts: dict[int, int] = {}
        left = 0
        for right, ((name, start, _, child), _) in enumerate(tagged):
            if tagged[left][0][0] != name:  # a new field: restart the window
                counts.clear()
                left = right
            counts[child] = counts.get(child, 0) + 1
            while counts[tagged[left][0][3]] > 1:  # drop a leading hit its child has again later
                counts[tagged[left][0][3]] -= 1
                left += 1
            if len(counts) == needed:
                first_end = min(k[2] for k, _ in tagged[left:right + 1])
                if doc.fields[name].layout.words_between(first_end, start) <= self.within:
                    return self._one_per_child(tagged[left:right + 1])
        return None

    @staticmethod
    def _one_per_child(run: list[tuple[tuple[str, int, int, int], TermHit]]) -> list[TermHit]:
        chosen: dict[int, TermHit] = {}
        for (_, _, _, child), hit in reversed(run):
            chosen[child] = hit
        return sorted(chosen.values(), key=lambda h: h.start)

    def gates(self) -> list[frozenset[Key]]:
        return _all_gates(self.children)

    def possible(self, doc: Document) -> bool:
        return all(child.possible(doc) for child in self.children)

    def superset(self, doc: Document) -> list[TermHit]:
        """Its windows are made of its children's hits."""
        found: list[TermHit] = []
        for child in self.children:
            hits = child.superset(doc)
            if not hits:
                return []
            found += hits
        return found


@dataclass(frozen=True)
class SentenceNode:
    """Every child holds within one and the same sentence (``not`` children: does not hold there). Children are
    evaluated again on each candidate sentence — one holding a possible hit of every child that finds terms —
    so nesting is exact: a ``near`` child must have its whole window in that sentence."""

    children: tuple[Node, ...]
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        if not self.possible(doc):
            return _FAILED
        for field_index, (left, right) in self._places(doc):
            view = doc.within(FIELDS[field_index], left, right)
            outcomes = []
            for child in self.children:
                sub = child.evaluate(view)
                if not sub.held:
                    break
                outcomes.append(sub)
            else:
                hits = sorted((h for o in outcomes for h in o.hits), key=lambda h: h.start)
                clauses = [c for o in outcomes for c in o.clauses] + [f"{self.path} (same sentence)"]
                return Outcome(True, hits, clauses)
        return _FAILED

    def _places(self, doc: Document) -> list[tuple[int, tuple[int, int]]]:
        """Sentences (field index, span) that hold a possible hit of every child that finds terms, in order."""
        places: set[tuple[int, tuple[int, int]]] | None = None
        for child in self.children:
            if isinstance(child, NotNode | LangNode | TagsNode):
                continue
            hits = child.superset(doc)
            found = {(FIELDS.index(h.field), doc.fields[h.field].layout.sentence_span(h.start)) for h in hits}
            places = found if places is None else places & found
            if not places:
                return []
        return sorted(places or ())

    def gates(self) -> list[frozenset[Key]]:
        return _all_gates(self.children)

    def possible(self, doc: Document) -> bool:
        return all(child.possible(doc) for child in self.children)

    def superset(self, doc: Document) -> list[TermHit]:
        found: list[TermHit] = []
        for child in self.children:
            if not isinstance(child, NotNode | LangNode | TagsNode):
                hits = child.superset(doc)
                if not hits:
                    return []
                found += hits
        return found


@dataclass(frozen=True)
class LangNode:
    """The article's language is one of ``langs`` (``zh`` also covers zh-TW, zh-Hant...)."""

    langs: frozenset[str]
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        if doc.lang in self.langs or doc.lang.split("-")[0] in self.langs:
            return Outcome(True, [], [f"{self.path} {doc.lang!r}"])
        return _FAILED

    def gates(self) -> list[frozenset[Key]]:
        return []

    def possible(self, doc: Document) -> bool:
        return True

    def superset(self, doc: Document) -> list[TermHit]:
        return []


@dataclass(frozen=True)
class TagsNode:
    """The article's feed carries one of ``tags`` (feeds.yaml ``tags:``)."""

    tags: frozenset[str]
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        common = sorted(doc.tags & self.tags)
        return Outcome(True, [], [f"{self.path} {common[0]!r}"]) if common else _FAILED

    def gates(self) -> list[frozenset[Key]]:
        return []

    def possible(self, doc: Document) -> bool:
        return True

    def superset(self, doc: Document) -> list[TermHit]:
        return []


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
        return Match(self.id, self.title, self.severity, explanation)


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
    """The sentence holding the most distinct matched terms (content fields first, earliest field wins
    ties); long sentences are cut around their first hit."""
    best: tuple[int, int, int, int, str] | None = None
    for hit in hits:
        if hit.field not in CONTENT_FIELDS:
            continue
        left, right = doc.fields[hit.field].layout.sentence_span(hit.start)
        terms = {h.term for h in hits if h.field == hit.field and left <= h.start < right}
        score = (len(terms), -CONTENT_FIELDS.index(hit.field))
        if best is None or score > (best[0], best[1]):
            best = (len(terms), -CONTENT_FIELDS.index(hit.field), left, right, hit.field)
    if best is None:
        return "", ""
    *_, left, right, name = best
    text = doc.fields[name].original
    sentence = text[left:right].strip()
    if len(sentence) > SNIPPET_CHARS:
        anchor = next(h for h in hits if h.field == name and left <= h.start < right)
        begin = max(left, anchor.start - SNIPPET_CHARS // 2)
        sentence = "…" + text[begin : begin + SNIPPET_CHARS].strip() + "…"
    return sentence, name
