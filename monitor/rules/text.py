"""Text folding for matching: NFKC + width, lower case, Traditional → Simplified Chinese.

Folding works character by character so every position in the folded text maps back to a
position in the original (explanations quote offsets into what the user actually sees).
"""

from __future__ import annotations

import re
import unicodedata

import zhconv

_CJK = re.compile(r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]")


class _FoldTable(dict[int, str]):
    """str.translate table that folds and caches each character on first sight."""

    def __init__(self, lower: bool) -> None:
        super().__init__()
        self._lower = lower

    def __missing__(self, code: int) -> str:
        folded = unicodedata.normalize("NFKC", chr(code))
        if self._lower:
            folded = folded.lower()
        if _CJK.match(folded):
            folded = zhconv.convert(folded, "zh-hans")
        self[code] = folded
        return folded


_LOWER = _FoldTable(lower=True)
_CASED = _FoldTable(lower=False)


def fold(text: str, lower: bool = True) -> str:
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and not has_cjk(text)):
        # Nothing for NFKC or Chinese folding to change (most Latin-script text, curly quotes and
        # all): str.lower is the same per-character mapping as the table, done in C.
        return text.lower() if lower else text
    return text.translate(_LOWER if lower else _CASED)


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


class Folded:
    """A folded form of a text; folded → original offsets are built only when first needed."""

    __slots__ = ("_offsets", "_original", "_table", "text")

    def __init__(self, original: str, text: str, table: _FoldTable) -> None:
        self._original, self.text, self._table = original, text, table
        self._offsets: list[int] | None = None

    def to_original(self, index: int, original_length: int) -> int:
        if len(self.text) == len(self._original):
            return index
        if self._offsets is None:
            self._offsets = [i for i, char in enumerate(self._original) for _ in self._table[ord(char)]]
        return self._offsets[index] if index < len(self._offsets) else original_length


def _folded(text: str, lower: bool) -> Folded:
    return Folded(text, fold(text, lower), _LOWER if lower else _CASED)


class FieldText:
    """One field of a document: original text plus lazily built lower-case and cased folds."""

    __slots__ = ("_cased", "_lower", "original")

    def __init__(self, original: str) -> None:
        self.original = original
        self._lower: Folded | None = None
        self._cased: Folded | None = None

    def folded(self, lower: bool) -> Folded:
        if lower:
            if self._lower is None:
                self._lower = _folded(self.original, True)
            return self._lower
        if self._cased is None:
            self._cased = _folded(self.original, False)
        return self._cased
