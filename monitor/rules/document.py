"""An article as the matcher sees it: its fields folded once, the anchors present in each, and every term's
hits (found once, cached; a sentence view sees only the hits inside one sentence)."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from monitor.models import Article, TermHit
from monitor.rules.prefilter import ALL_FIELDS, Prefilter
from monitor.rules.terms import Term
from monitor.rules.text import FieldText

FIELDS = ALL_FIELDS
CONTENT_FIELDS = ("title", "summary", "text")
MAX_HITS_PER_TERM = 500  # a term's hits kept per field: enough for every mention in a long speech, still bounded


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
            by_field = self._present_in[lower] = dict.fromkeys(self.fields, frozenset())
            for name in self._prefilter.fields:  # fields no term is searched in are not read
                if self.fields[name].original:
                    by_field[name] = self._prefilter.present(self.fields[name].folded(lower).text, lower)
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
        original = field_text.original
        size = len(original)
        same = len(folded.text) == size  # offsets need no mapping back
        found: list[TermHit] = []
        for m in term.pattern.finditer(folded.text):
            start, end = m.span()
            if end == start:  # an empty regex match marks no text
                continue
            if not same:
                start, end = folded.to_original(start, size), folded.to_original(end - 1, size) + 1
            found.append(TermHit(term.source, name, start, end, original[start:end]))
            if len(found) >= MAX_HITS_PER_TERM:
                break
        return found
