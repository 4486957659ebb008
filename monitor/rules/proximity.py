"""Proximity clauses: ``near`` (hits within N words of each other, in one field) and ``sentence`` (every
child holds inside one sentence)."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from operator import itemgetter

from monitor.models import TermHit
from monitor.rules.document import FIELDS, Document
from monitor.rules.nodes import FAILED, AnyNode, Node, Outcome, Predicate, all_gates, held_children
from monitor.rules.prefilter import Key


class Together:
    """A clause whose children must all hold, close together: it needs every child's anchors, and its hits
    are made of its term-finding children's hits."""

    children: tuple[Node, ...]

    def gates(self) -> list[frozenset[Key]]:
        return all_gates(self.children)

    def possible(self, doc: Document) -> bool:
        return all(child.possible(doc) for child in self.children)

    def superset(self, doc: Document) -> list[TermHit]:
        found: list[TermHit] = []
        for child in self.children:
            if not isinstance(child, Predicate):
                hits = child.superset(doc)
                if not hits:
                    return []
                found += hits
        return found


@dataclass(frozen=True)
class NearNode(Together):
    """Every child has a hit, and one hit of each lies within ``within`` words, in the same field."""

    children: tuple[Node, ...]
    within: int
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        if not self.possible(doc):
            return FAILED
        outcomes = held_children(self.children, doc)
        if outcomes is None:
            return FAILED
        tagged = sorted((((h.field, h.start, h.end, i), h) for i, o in enumerate(outcomes) for h in o.hits),
                        key=itemgetter(0))
        window = self._window(doc, tagged, len(outcomes))
        if window is None:
            return FAILED
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


@dataclass(frozen=True)
class SentenceNode(Together):
    """Every child holds within one and the same sentence (``not`` children: does not hold there). Children are
    evaluated again on each candidate sentence — one holding a possible hit of every child that finds terms —
    so nesting is exact: a ``near`` child must have its whole window in that sentence."""

    children: tuple[Node, ...]
    path: str

    def evaluate(self, doc: Document) -> Outcome:
        if not self.possible(doc):
            return FAILED
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
        return FAILED

    def _places(self, doc: Document) -> list[tuple[int, tuple[int, int]]]:
        """Sentences (field index, span) that hold a possible hit of every child that finds terms, in order.
        The child with the fewest hits names the candidate sentences; another child's hit is looked up only
        if it lies inside one of them (the sentence around a hit always holds the hit)."""
        supersets = sorted((_sentence_anchors(child, doc) for child in self.children
                            if not isinstance(child, Predicate)), key=len)
        if not supersets or not supersets[0]:
            return []
        places = {(FIELDS.index(h.field), doc.fields[h.field].layout.sentence_span(h.start)) for h in supersets[0]}
        for hits in supersets[1:]:
            inside = _Spans(places)
            places = {place for h in hits if inside.holds(FIELDS.index(h.field), h.start)
                      and (place := (FIELDS.index(h.field), doc.fields[h.field].layout.sentence_span(h.start)))
                      in places}
            if not places:
                return []
        return sorted(places)


def _sentence_anchors(node: Node, doc: Document) -> list[TermHit]:
    """Hits of which a sentence holding ``node`` holds at least one: for a clause whose children must all hold
    in it (near, sentence), those of its child with the fewest; for ``any``, those of every child; else the
    node's possible hits. Fewer hits, fewer sentences to look up and to try."""
    if isinstance(node, Together):
        options = [_sentence_anchors(child, doc) for child in node.children if not isinstance(child, Predicate)]
        return min(options, key=len) if options and all(options) else []
    if isinstance(node, AnyNode):
        return [h for child in node.children for h in _sentence_anchors(child, doc)]
    return node.superset(doc)


class _Spans:
    """Candidate sentences by field, to ask cheaply whether an offset lies inside any of them."""

    def __init__(self, places: set[tuple[int, tuple[int, int]]]) -> None:
        self._by_field: dict[int, tuple[list[int], list[int]]] = {}
        for field_index, (left, right) in sorted(places):
            starts, reach = self._by_field.setdefault(field_index, ([], []))
            starts.append(left)
            reach.append(max(right, reach[-1]) if reach else right)  # the furthest end of any span so far

    def holds(self, field_index: int, offset: int) -> bool:
        found = self._by_field.get(field_index)
        if found is None:
            return False
        starts, reach = found
        at = bisect_right(starts, offset) - 1
        return at >= 0 and reach[at] > offset
