"""Prefilter: every term's anchors in google-re2 Sets; one pass per field and script says which occur, so
only rules and terms whose anchors are present run."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import re2

from monitor.rules.terms import Term

PREFILTER_MAX_MEM = 64 << 20  # RE2's budget for the anchor sets' automata (per process)
Key = tuple[bool, str]  # (looked for in the lower-case fold, anchor pattern)
ALL_FIELDS = ("title", "summary", "text", "url", "feed")


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

    def __init__(self, anchors: dict[bool, Iterable[str]], fields: Iterable[str] = ALL_FIELDS) -> None:
        self._anchors = {lower: tuple(sorted(set(items))) for lower, items in anchors.items()}
        self.fields = tuple(f for f in ALL_FIELDS if f in set(fields))  # the fields any term is searched in
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
    def of(cls, terms: Iterable[Term], fields: Iterable[str] = ALL_FIELDS) -> Prefilter:
        keys = [key for term in terms for key in term.keys]
        return cls({lower: [anchor for is_lower, anchor in keys if is_lower is lower] for lower in (True, False)},
                   fields)

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
        return (Prefilter, (self._anchors, self.fields))
