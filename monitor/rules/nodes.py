"""Clause nodes of a compiled rule: terms, any/all/not, except, min, lang and tags. Each node says whether it
holds on a document (with its hits and clause paths), which anchors it needs, and whether the anchors
present make it possible at all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from monitor.models import TermHit
from monitor.rules.document import CONTENT_FIELDS, Document
from monitor.rules.prefilter import Key
from monitor.rules.terms import Term


@dataclass
class Outcome:
    """Whether a node held; if so its term hits and the clause paths (built at compile time) that held."""

    held: bool
    hits: list[TermHit] = field(default_factory=list)
    clauses: list[str] = field(default_factory=list)


FAILED = Outcome(False)


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


def distinct(hits: Iterable[TermHit]) -> int:
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
        if not hits or (self.minimum > 1 and distinct(hits) < self.minimum):
            return FAILED
        return Outcome(True, hits, [self.entries[i][0] for i in sorted(held)])

    def gates(self) -> list[frozenset[Key]]:
        return [] if self._always else [frozenset(self._by_key)]

    def possible(self, doc: Document) -> bool:
        lower = doc.present(True)
        if self._always or lower is None or not self._lower.isdisjoint(lower):
            return True
        return bool(self._cased) and not self._cased.isdisjoint(doc.present(False) or ())

    def superset(self, doc: Document) -> list[TermHit]:
        return own_hits(self, doc)


def own_hits(node: Node, doc: Document) -> list[TermHit]:
    outcome = node.evaluate(doc)
    return outcome.hits if outcome.held else []


def all_gates(children: Iterable[Node]) -> list[frozenset[Key]]:
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
        return result or FAILED

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
            return FAILED
        result = Outcome(True)
        for child in self.children:
            sub = child.evaluate(doc)
            if not sub.held:
                return FAILED
            result.hits += sub.hits
            result.clauses += sub.clauses
        return result

    def gates(self) -> list[frozenset[Key]]:
        return all_gates(self.children)

    def possible(self, doc: Document) -> bool:
        return all(child.possible(doc) for child in self.children)

    def superset(self, doc: Document) -> list[TermHit]:
        return own_hits(self, doc)


class Predicate:
    """A clause that finds no terms (not, lang, tags): it needs no anchor, is always possible, and has no
    hits of its own."""

    def gates(self) -> list[frozenset[Key]]:
        return []

    def possible(self, doc: Document) -> bool:
        return True

    def superset(self, doc: Document) -> list[TermHit]:
        return []


@dataclass(frozen=True)
class NotNode(Predicate):
    child: Node
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        if self.child.evaluate(doc).held:
            return FAILED
        return Outcome(True, [], [f"{self.path} (absent)"])


@dataclass(frozen=True)
class ExceptNode:
    """Term hits of ``child`` that lie inside a hit of ``mask`` do not count ("tariff" inside "non-tariff" or
    "General Agreement on Tariffs and Trade"); the clause holds if any hit is left."""

    child: TermsNode
    mask: Node

    def evaluate(self, doc: Document) -> Outcome:
        sub = self.child.evaluate(doc)
        if not sub.held:
            return FAILED
        masks = self.mask.evaluate(doc).hits
        if not masks:
            return sub
        kept = [h for h in sub.hits
                if not any(m.field == h.field and m.start <= h.start and h.end <= m.end for m in masks)]
        if not kept:
            return FAILED
        terms = {h.term for h in kept}
        clauses = [c for c in sub.clauses if any(c.endswith(f" {t!r}") for t in terms)]
        return Outcome(True, kept, clauses)

    def gates(self) -> list[frozenset[Key]]:
        return self.child.gates()

    def possible(self, doc: Document) -> bool:
        return self.child.possible(doc)

    def superset(self, doc: Document) -> list[TermHit]:
        return own_hits(self, doc)


@dataclass(frozen=True)
class MinNode:
    """A clause that must also have at least ``minimum`` distinct term occurrences."""

    child: Node
    minimum: int

    def evaluate(self, doc: Document) -> Outcome:
        sub = self.child.evaluate(doc)
        return sub if sub.held and distinct(sub.hits) >= self.minimum else FAILED

    def gates(self) -> list[frozenset[Key]]:
        return self.child.gates()

    def possible(self, doc: Document) -> bool:
        return self.child.possible(doc)

    def superset(self, doc: Document) -> list[TermHit]:
        return own_hits(self, doc)


def held_children(children: tuple[Node, ...], doc: Document) -> list[Outcome] | None:
    outcomes = []
    for child in children:
        sub = child.evaluate(doc)
        if not sub.held or not sub.hits:
            return None
        outcomes.append(sub)
    return outcomes


@dataclass(frozen=True)
class LangNode(Predicate):
    """The article's language is one of ``langs`` (``zh`` also covers zh-TW, zh-Hant...)."""

    langs: frozenset[str]
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        if doc.lang in self.langs or doc.lang.split("-")[0] in self.langs:
            return Outcome(True, [], [f"{self.path} {doc.lang!r}"])
        return FAILED


@dataclass(frozen=True)
class TagsNode(Predicate):
    """The article's feed carries one of ``tags`` (feeds.yaml ``tags:``)."""

    tags: frozenset[str]
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        common = sorted(doc.tags & self.tags)
        return Outcome(True, [], [f"{self.path} {common[0]!r}"]) if common else FAILED
