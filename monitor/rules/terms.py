"""Compile one written term into a pattern over folded text.

- any CJK character: substring of the folded text (no word boundaries in CJK scripts);
- an all-capitals acronym (FTA, ROK, BIS): case-sensitive, whole word, optional plural ``s``;
- other Latin text: case-insensitive, whole words, spaces or hyphens between words, and simple
  inflections of the last word (tariff/tariffs, curb/curbed/curbing, impose/imposed,
  policy/policies); a trailing ``*`` makes the last word a prefix (``negotiat*``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.rules.text import fold, has_cjk

_LATIN = "0-9a-z\u00c0-\u024f"
_ACRONYM = re.compile(r"[A-Z][A-Z0-9&\-]*[A-Z0-9]")
_CVC = re.compile(r"[^aeiou][aeiou][b-df-hj-np-tv-z]$")


@dataclass(frozen=True)
class Term:
    """``anchor`` is a literal every match contains (in the lower-case or cased fold, as ``lower`` says):
    the prefilter runs the pattern only on documents where the anchor occurs."""

    source: str
    pattern: re.Pattern[str]
    lower: bool
    anchor: str


def _inflected(word: str) -> str:
    if word.endswith("*"):
        return re.escape(word[:-1]) + f"[{_LATIN}]*"
    escaped = re.escape(word)
    if not word.isalpha() or len(word) < 3:
        return escaped
    forms = ["s", "es", "ed", "ing"]
    if word.endswith("e"):
        return re.escape(word[:-1]) + "(?:e|es|ed|ing)"
    if word.endswith("y"):
        return re.escape(word[:-1]) + "(?:y|ies|ied|ying)"
    if _CVC.search(word) and len(word) <= 4:
        forms += [word[-1] + "ed", word[-1] + "ing"]
    return escaped + "(?:" + "|".join(forms) + ")?"


def compile_term(source: str) -> Term:
    """Raise ValueError for an empty term."""
    text = " ".join(source.split())
    if not text or text == "*":
        raise ValueError("empty term")
    if has_cjk(text):
        folded = fold(text)
        return Term(source, re.compile(re.escape(folded)), lower=True, anchor=folded)
    if _ACRONYM.fullmatch(text):
        cased = fold(text, lower=False)
        return Term(source, re.compile(_bounded(cased, "s?", "0-9A-Za-z")), lower=False, anchor=cased)
    words = fold(text).split(" ")
    parts = [re.escape(w) for w in words[:-1]] + [_inflected(words[-1])]
    body = r"[\s\-]+".join(parts)
    anchor = words[0] if len(words) > 1 else _stem(words[0])
    assert body.startswith(re.escape(anchor)), (body, anchor)
    return Term(source, re.compile(_bounded(anchor, body[len(re.escape(anchor)):], _LATIN)), lower=True,
                anchor=anchor)


def _bounded(prefix: str, rest: str, letters: str) -> str:
    """``prefix`` + ``rest`` as whole words. The start-of-word check comes after the literal prefix, so
    the pattern begins with a literal and the regex engine can jump between its occurrences instead of
    trying a look-behind at every position."""
    literal = re.escape(prefix)
    return f"{literal}(?<![{letters}]{literal}){rest}(?![{letters}])"


def _stem(word: str) -> str:
    """The literal prefix every inflected form of ``word`` (as _inflected builds them) starts with."""
    if word.endswith("*") or (word.isalpha() and len(word) >= 3 and word.endswith(("e", "y"))):
        return word[:-1]
    return word
