"""Text folding for matching: NFKC (width, compatibility forms) and lower case, character by character.

Every position in the folded text maps back to a position in the original (explanations quote offsets
into what the user actually sees). Traditional and Simplified Chinese are not folded in the text: a term's
Chinese characters become classes of their variants instead (``han_literal``: 关税 → [关關][税稅]), which
matches the same texts as folding both sides to Simplified, without a per-character pass over every
Chinese article.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from functools import cache

_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class _FoldTable(dict[int, str]):
    """str.translate table that folds and caches each character on first sight, and remembers the characters
    whose fold is not one character long (ﬁ → fi, … → ...): only they move offsets."""

    def __init__(self, lower: bool) -> None:
        super().__init__()
        self._lower = lower
        self._resizing: set[str] = set()
        self._resizing_pattern: re.Pattern[str] | None = None

    def __missing__(self, code: int) -> str:
        folded = unicodedata.normalize("NFKC", chr(code))
        if self._lower:
            folded = folded.lower()
        if len(folded) != 1:
            self._resizing.add(chr(code))
            self._resizing_pattern = None
        self[code] = folded
        return folded

    def resizing(self) -> re.Pattern[str]:
        """A pattern of the characters seen so far whose fold changes the length."""
        if self._resizing_pattern is None:
            chars = "".join(sorted(self._resizing)) or "\x00"
            self._resizing_pattern = re.compile("[" + re.escape(chars) + "]")
        return self._resizing_pattern


_LOWER = _FoldTable(lower=True)
_CASED = _FoldTable(lower=False)


@cache
def _changing() -> re.Pattern[str]:
    """The characters NFKC does not leave as they are (full-width forms, ligatures, compatibility characters),
    and everything outside the Basic Multilingual Plane (not checked one by one). Built once per process."""
    codes = [code for code in range(0x80, 0x10000)
             if not 0xD800 <= code <= 0xDFFF and unicodedata.normalize("NFKC", chr(code)) != chr(code)]
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    body = "".join(re.escape(chr(lo)) + ("-" + re.escape(chr(hi)) if hi > lo else "") for lo, hi in ranges)
    return re.compile(f"[{body}\U00010000-\U0010ffff]")


def fold(text: str, lower: bool = True) -> str:
    """NFKC of each character on its own, then lower case (``lower``)."""
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        # Nothing for NFKC to change (most Latin-script and Korean text, Chinese without full-width
        # punctuation): str.lower is the same per-character mapping, done in C.
        return text.lower() if lower else text
    found = set(_changing().findall(text))
    folds = {char: unicodedata.normalize("NFKC", char) for char in found}
    if not any(char in found for folded in folds.values() for char in folded):
        # The same per-character fold, one str.replace per distinct character to change (usually a handful
        # in a whole article: ，：（）) instead of a Python-level lookup per character. No replacement can
        # feed another (checked just above).
        for char, folded in folds.items():
            text = text.replace(char, folded)
        return text.lower() if lower else text
    return text.translate(_LOWER if lower else _CASED)


@cache
def _han_variants() -> dict[str, str]:
    """Each Chinese character that has Traditional/Simplified variants → all of them (the characters whose
    Simplified form, per zhconv's single-character table, is the same)."""
    from zhconv import zhconv as tables  # loaded only when a rule has Chinese terms

    simplified = {k: v for k, v in tables.getdict("zh-hans").items()
                  if len(k) == 1 and len(v) == 1 and _HAN.match(k)}
    groups: dict[str, set[str]] = {}
    for char in set(simplified) | set(simplified.values()):
        groups.setdefault(simplified.get(char, char), set()).add(char)
    return {char: "".join(sorted(group)) for group in groups.values() if len(group) > 1 for char in group}


def han_variants(char: str) -> str:
    """``char`` and its Traditional/Simplified variants (just ``char`` when it has none): 關 → 关關."""
    return _han_variants().get(char, char) if _HAN.match(char) else char


def han_literal(folded: str) -> str:
    """A regex (Python re and google-re2 syntax alike) for the folded literal ``folded``, each Chinese
    character as a class of its variants: 关税 → [关關][税稅]."""
    parts = []
    for char in folded:
        variants = han_variants(char)
        parts.append(f"[{variants}]" if len(variants) > 1 else re.escape(char))
    return "".join(parts)


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


class Folded:
    """A folded form of a text; folded → original offsets are built only when first needed, from the few
    characters whose fold changes the length (found by one regex pass, no per-character Python loop)."""

    __slots__ = ("_original", "_shifts", "_table", "text")

    def __init__(self, original: str, text: str, table: _FoldTable) -> None:
        self._original, self.text, self._table = original, text, table
        self._shifts: tuple[list[int], list[int]] | None = None

    def _resizes(self) -> tuple[list[int], list[int]]:
        """(folded start of each resizing character, the folded-minus-original shift after it)."""
        starts: list[int] = []
        shifts: list[int] = []
        shift = 0
        for m in self._table.resizing().finditer(self._original):
            starts.append(m.start() + shift)
            shift += len(self._table[ord(m.group())]) - 1
            shifts.append(shift)
        return starts, shifts

    def to_original(self, index: int, original_length: int) -> int:
        if len(self.text) == len(self._original):
            return index
        if self._shifts is None:
            self._shifts = self._resizes()
            if (self._shifts[1] or [0])[-1] != len(self.text) - len(self._original):
                # the table has not seen every character of this text yet (folded by a faster path)
                for char in set(self._original):
                    self._table[ord(char)]
                self._shifts = self._resizes()
        starts, shifts = self._shifts
        at = bisect_right(starts, index) - 1
        if at < 0:
            return index
        # inside the expansion of a resizing character: that character
        if index < starts[at] + shifts[at] - (shifts[at - 1] if at else 0) + 1:
            return starts[at] - (shifts[at - 1] if at else 0)
        return min(index - shifts[at], original_length)


def _folded(text: str, lower: bool) -> Folded:
    return Folded(text, fold(text, lower), _LOWER if lower else _CASED)


_SENTENCE_END = re.compile(r"[.!?。！？]+[\"'”’」』)\]]*|\n[ \t]*\n|\n[ \t]{2,}")
_HANGUL_SYLLABLE = re.compile(r"[\uac00-\ud7a3]")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sen sens rep reps gov gen lt col sgt st no nos vs etc inc corp co ltd jr sr dept est "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun".split()
)
_IDEOGRAPHIC = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # kana and Han
_IDEOGRAPH = re.compile(f"[{_IDEOGRAPHIC}]")
_WORD = re.compile(f"[^\\W{_IDEOGRAPHIC}]+")
_NEXT_LOWER = re.compile(r"\s*[a-z]")
#: Chinese and Japanese write words without spaces; a word there averages about two characters.
CJK_CHARS_PER_WORD = 2
#: A sentence reaches at most this far on either side of a hit (longer "sentences" are cut).
MAX_SENTENCE_CHARS = 1500
#: The largest ``within`` a near clause may ask for, and the longest span counted as one word.
MAX_WITHIN_WORDS = 500
MAX_WORD_CHARS = 40


def _ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Whether a candidate boundary really ends a sentence. A period does when white space or the end
    follows (or, as Korean news often runs sentences together, right after a Hangul syllable), and it does
    not end an abbreviation (U.S., Sen., J.) or come before a lower-case word ("(D-Cal.) said")."""
    if match.group()[0] != ".":
        return True
    dot, after = match.start(), match.end()
    if dot and _HANGUL_SYLLABLE.match(text, dot - 1):
        return True
    if after < len(text) and not text[after].isspace():
        return False
    if _NEXT_LOWER.match(text, after):
        return False
    start = dot
    while start > 0 and not text[start - 1].isspace() and text[start - 1] not in "(\"'“‘":
        start -= 1
    word = text[start:dot]
    return not ((len(word) == 1 and word.isalpha()) or "." in word or word.lower() in _ABBREVIATIONS)


_END_RUN = frozenset(".!?。！？\"'”’」』)] \t\n")  # every character a _SENTENCE_END match can contain


_END_CHAR = re.compile(r"[.!?。！？\n]")  # every _SENTENCE_END match holds one of these


def _run_end(text: str, index: int, limit: int) -> int:
    """The end (at most ``limit``) of the run of sentence-end characters that ``index`` is in."""
    while index < limit and text[index] in _END_RUN:
        index += 1
    return index


def _run_start(text: str, index: int) -> int:
    """``index`` moved back to the start of the run of sentence-end characters it is in (if any)."""
    while index > 0 and text[index - 1] in _END_RUN:
        index -= 1
    return index


class Layout:
    """Sentences and words of one text: sentences end at . ! ? 。 and blank or indented new lines, not at
    abbreviations; words are runs of letters or digits, and each Chinese or Japanese character counts as half
    a word. A sentence is found by looking outwards from an offset (at most MAX_SENTENCE_CHARS each way), so
    a long text costs only around the places asked about; sentences found are remembered."""

    __slots__ = ("_ends", "_known", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._known: list[tuple[int, int]] = []  # whole sentences found so far, never overlapping, in order
        self._ends: list[int] = []  # their ends, to find the one holding an offset by bisection

    def sentence_span(self, offset: int) -> tuple[int, int]:
        """(start, end) of the sentence holding ``offset``, at most MAX_SENTENCE_CHARS on either side."""
        at = bisect_right(self._ends, offset)  # the first known sentence ending after the offset
        if at < len(self._known) and self._known[at][0] <= offset:
            left, right = self._known[at]
            return max(left, offset - MAX_SENTENCE_CHARS), min(right, offset + MAX_SENTENCE_CHARS)
        text = self._text
        low, high = max(0, offset - MAX_SENTENCE_CHARS), min(len(text), offset + MAX_SENTENCE_CHARS)
        left = self._end_before(offset, low)
        right = self._end_after(offset, high)
        if (left > low or low == 0) and (right < high or high == len(text)):
            # bounded by real ends, not by the window: the same for any offset in it
            self._known.insert(at, (left, right))
            self._ends.insert(at, right)
        return left, right

    def _end_before(self, offset: int, low: int) -> int:
        """The last sentence end at or before ``offset`` (``low`` if there is none after it). Every sentence
        end holds one of . ! ? 。 ！ ？ or a new line: the nearest such character is found by searching the
        reversed window (in C), then the sentence-end matches of the run of end characters around it are
        read as a scan of the whole text would read them (no match reaches outside such a run)."""
        text = self._text
        backwards = text[low:offset][::-1]
        at = 0
        while (found := _END_CHAR.search(backwards, at)) is not None:
            index = offset - 1 - found.start()
            start = _run_start(text, index)
            for m in reversed(list(_SENTENCE_END.finditer(text, start, _run_end(text, index, offset)))):
                if _ends_sentence(text, m):
                    return max(m.end(), low)
            if start <= low:
                break
            at = offset - start
        return low

    def _end_after(self, offset: int, high: int) -> int:
        """The first sentence end after ``offset`` (``high`` if there is none before it)."""
        text = self._text
        at = offset
        while (found := _END_CHAR.search(text, at, high)) is not None:
            index = found.start()
            stop = _run_end(text, index, high)
            for m in _SENTENCE_END.finditer(text, max(_run_start(text, index), offset), stop):
                if m.end() > offset and _ends_sentence(text, m):
                    return m.end()
            at = stop
        return high

    def words_between(self, end: int, start: int) -> float:
        """Words from ``end`` (the end of one hit) to ``start`` (the start of a later one); 0 if they overlap.
        Spans longer than MAX_WORD_CHARS per word are not counted: they are further apart than any limit."""
        if start <= end:
            return 0.0
        if start - end > MAX_WORD_CHARS * (MAX_WITHIN_WORDS + 1):
            return float("inf")
        text = self._text
        return len(_WORD.findall(text, end, start)) + len(_IDEOGRAPH.findall(text, end, start)) / CJK_CHARS_PER_WORD


class FieldText:
    """One field of a document: original text plus lazily built cased and lower-case folds (the lower-case
    fold is the cased one lower-cased: one character-table pass, not two)."""

    __slots__ = ("_cased", "_layout", "_lower", "original")

    def __init__(self, original: str) -> None:
        self.original = original
        self._lower: Folded | None = None
        self._cased: Folded | None = None
        self._layout: Layout | None = None

    @property
    def layout(self) -> Layout:
        if self._layout is None:
            self._layout = Layout(self.original)
        return self._layout

    def folded(self, lower: bool) -> Folded:
        if self._cased is None:
            self._cased = _folded(self.original, False)
        if not lower:
            return self._cased
        if self._lower is None:
            self._lower = Folded(self.original, self._cased.text.lower(), _LOWER)
            if len(self._lower.text) != len(self._cased.text):  # lower-casing changed a length (İ → i̇)
                self._lower = _folded(self.original, True)
        return self._lower
