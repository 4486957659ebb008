"""Compile one written term into a pattern over folded text.

- any CJK character: substring of the folded text (no word boundaries in CJK scripts); a space in
  the term matches any run of spaces or none (수출 통제 = 수출통제);
- an all-capitals acronym (FTA, ROK, BIS): case-sensitive, whole word, optional plural ``s``;
- other Latin text: case-insensitive, whole words, spaces or hyphens between words, and simple
  inflections of the last word (tariff/tariffs, curb/curbed/curbing, impose/imposed,
  policy/policies); a trailing ``*`` makes the last word a prefix (``negotiat*``);
- a sequence (``any_order``): parts in one order, joined by hyphens, dashes, slashes or middle
  dots (China-Japan-South Korea, 한·중·일, 中日韩);
- a regex: google-re2 (linear time) over the cased fold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import re2

from monitor.rules.text import fold, han_literal, han_variants, has_cjk

_LATIN = "0-9a-z\u00c0-\u024f"
_ACRONYM = re.compile(r"[A-Z][A-Z0-9&\-]*[A-Z0-9]")
_CVC = re.compile(r"[^aeiou][aeiou][b-df-hj-np-tv-z]$")
_WORD_GAP = r"[\s\-\u2010-\u2015]+"
_CJK_GAP = r"\s*"
_LATIN_JOIN = r"\s*[\-\u2010-\u2015/]\s*"
_CJK_SEPARATORS = "-\u2010\u2011\u2012\u2013\u2014\u2015/·・、,"  # never a space: 위한 중·일 is not 한중일
_CJK_SEPARATOR = "[" + re.escape(_CJK_SEPARATORS) + "]"
# The same gaps in google-re2 syntax, for prefilter anchors (RE2 writes code points as \x{…}, not \u…).
_RE2_WORD_GAP = r"[\s\-\x{2010}-\x{2015}]+"
_RE2_LATIN_JOIN = r"\s*[\-\x{2010}-\x{2015}/]\s*"
MAX_REGEX_CHARS = 2000
REGEX_MAX_MEM = 8 << 20


class Pattern:
    """A google-re2 pattern (linear-time matching, no backtracking) that pickles by its source, so
    compiled rules can be sent to worker processes."""

    def __init__(self, source: str) -> None:
        self.source = source
        options = re2.Options()
        options.log_errors = False
        options.max_mem = REGEX_MAX_MEM
        try:
            self._compiled = re2.compile(source, options)
        except re2.error as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            raise ValueError(f"invalid regex (google-re2 syntax, no look-around or back-references): {reason}"
                             ) from exc

    def finditer(self, text: str) -> Any:
        return self._compiled.finditer(text)

    def __reduce__(self) -> tuple[type[Pattern], tuple[str]]:
        return (Pattern, (self.source,))


@dataclass(frozen=True)
class Term:
    """``pattern`` runs on the lower-case or the cased fold, as ``lower`` says. Every match of it contains,
    in the lower-case fold, a match of one of ``anchors``: google-re2 patterns the prefilter looks for all
    at once. They are the
    term's fixed text (a phrase's words with the gaps between them, the last word's stem), so a term runs
    its own pattern only on fields where its words occur as written. No anchors (regex): it always runs."""

    source: str
    pattern: re.Pattern[str] | Pattern
    lower: bool
    anchors: tuple[str, ...]

    @property
    def keys(self) -> tuple[tuple[bool, str], ...]:
        """Prefilter keys. Every anchor is looked for in the lower-case fold, the one pass per field: a cased
        term (an acronym) has its anchor in lower case, a superset of its matches (its pattern checks case)."""
        return tuple((True, anchor) for anchor in self.anchors)


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


def _normalized(source: str) -> str:
    text = " ".join(source.split())
    if not text or text == "*":
        raise ValueError("empty term")
    return text


def _cjk_body(text: str) -> str:
    """The pattern of a CJK term: literal chunks with optional spaces between them (valid in both Python
    re and google-re2 syntax, so it is its own prefilter anchor)."""
    return _CJK_GAP.join(han_literal(c) for c in fold(text).split(" "))


def _latin_body(text: str) -> tuple[str, str, str]:
    """(pattern without boundaries, literal prefix, anchor) of a Latin phrase. A phrase written with a
    capital first letter is a name (Abe, Kan, Entity List): plural ``s`` only, no other inflection. The
    anchor, what the prefilter looks for, is the phrase's fixed text: its words with any gap between them,
    the last one cut to the stem its inflections share."""
    words = [w for w in re.split(r"[\s\-\u2010-\u2015]+", text) if w]
    name = words[0][:1].isupper()
    folded = [fold(w) for w in words]
    last = re.escape(folded[-1]) + "s?" if name and folded[-1].isalpha() else _inflected(folded[-1])
    body = _WORD_GAP.join([re.escape(w) for w in folded[:-1]] + [last])
    stems = [*folded[:-1], folded[-1] if name else _stem(folded[-1])]
    return body, stems[0], _RE2_WORD_GAP.join(re.escape(stem) for stem in stems)


def compile_term(source: str) -> Term:
    """Raise ValueError for an empty term."""
    text = _normalized(source)
    if has_cjk(text):
        body = _cjk_body(text)
        return Term(source, re.compile(body), lower=True, anchors=(body,))
    if _ACRONYM.fullmatch(text):
        cased = fold(text, lower=False)
        return Term(source, re.compile(_bounded(cased, "s?", "0-9A-Za-z")), lower=False,
                    anchors=(re.escape(cased.lower()),))
    body, prefix, anchor = _latin_body(text)
    assert body.startswith(re.escape(prefix)), (body, prefix)
    return Term(source, re.compile(_bounded(prefix, body[len(re.escape(prefix)):], _LATIN)), lower=True,
                anchors=(anchor,))


def compile_sequence(parts: list[str]) -> Term:
    """The parts in this order as one term: CJK parts joined by nothing or one separator (中日韩, 한·중·일),
    Latin parts by a hyphen, dash or slash (China-Japan-South Korea). Acronym parts match case-insensitively
    here: in a compound the case carries no meaning (US-Japan, us-japan)."""
    texts = [_normalized(p) for p in parts]
    if all(has_cjk(t) for t in texts):
        folded = [fold(t) for t in texts]
        if any(" " in f for f in folded):
            raise ValueError("any_order CJK parts are written without spaces")
        # One separator, the same between every part (中日韩, 中、日、韩, 한·중·일, not 한·중일). The prefilter
        # anchor allows any separator (RE2 has no back-references): a superset, as an anchor must be.
        body = f"({_CJK_SEPARATOR}?)".join(han_literal(f) for f in folded[:2])
        body += "".join(r"\1" + han_literal(f) for f in folded[2:])
        anchor = f"{_CJK_SEPARATOR}?".join(han_literal(f) for f in folded)
        return Term("".join(texts), re.compile(body), lower=True, anchors=(anchor,))
    if any(has_cjk(t) for t in texts):
        raise ValueError("any_order parts must be all CJK or all Latin script")
    bodies = [(re.escape(fold(t)), fold(t).split(" ")[0]) for t in texts]
    body = _LATIN_JOIN.join(b.replace(r"\ ", _WORD_GAP) for b, _ in bodies)
    first = bodies[0][1]
    anchor = _RE2_LATIN_JOIN.join(b.replace(r"\ ", _RE2_WORD_GAP) for b, _ in bodies)
    return Term("-".join(texts), re.compile(_bounded(first, body[len(re.escape(first)):], _LATIN)), lower=True,
                anchors=(anchor,))


def compile_regex(source: str) -> Term:
    """A google-re2 pattern over the cased fold (NFKC and width folding, case kept; write ``(?i)`` to ignore
    case); Chinese characters written in it also match their Traditional/Simplified variants. Raise
    ValueError for an empty, over-long or invalid pattern."""
    if not source:
        raise ValueError("empty regex")
    if len(source) > MAX_REGEX_CHARS:
        raise ValueError(f"regex longer than {MAX_REGEX_CHARS} characters")
    pattern = Pattern(with_han_variants(source))
    if next(iter(pattern.finditer("")), None) is not None:
        raise ValueError("regex matches the empty string (it would match every document)")
    return Term(f"/{source}/", pattern, lower=False, anchors=())


def with_han_variants(source: str) -> str:
    """A regex with each Chinese character that is written literally (not as a range end) widened to its
    Traditional/Simplified variants: 关税 → [关關][税稅] outside a class, [关税] → [关關税稅] inside one."""
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(source):
        char = source[index]
        if char == "\\":
            out.append(source[index:index + 2])
            index += 2
            continue
        if in_class and char == "[" and source.startswith("[:", index):  # [[:alpha:]] inside a class
            end = source.find(":]", index + 2)
            if end != -1:
                out.append(source[index:end + 2])
                index = end + 2
                continue
        if char == "[" and not in_class:
            in_class = True
            opening = "[^" if source.startswith("[^", index) else "["
            out.append(opening)
            index += len(opening)
            if source.startswith("]", index):  # a ']' first in a class is a literal
                out.append("]")
                index += 1
            continue
        if char == "]" and in_class:
            in_class = False
        elif not (in_class and (char == "-" or _range_end(source, index))):
            variants = han_variants(char)
            if len(variants) > 1:
                char = variants if in_class else f"[{variants}]"
        out.append(char)
        index += 1
    return "".join(out)


def _range_end(source: str, index: int) -> bool:
    """Whether the character at ``index`` is an end of a range (a-z) inside a class."""
    before = index >= 2 and source[index - 1] == "-" and source[index - 2] != "["
    after = source.startswith("-", index + 1) and not source.startswith("-]", index + 1)
    return before or after


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
