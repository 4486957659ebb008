"""Text folding for matching: NFKC + width, lower case, Traditional → Simplified Chinese.

Folding works character by character so every position in the folded text maps back to a
position in the original (explanations quote offsets into what the user actually sees).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

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
    return text.translate(_LOWER if lower else _CASED)


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


@dataclass(frozen=True)
class Folded:
    """A folded form of a text and its folded → original offsets (None = identity)."""

    text: str
    offsets: tuple[int, ...] | None

    def to_original(self, index: int, original_length: int) -> int:
        if self.offsets is None:
            return index
        return self.offsets[index] if index < len(self.offsets) else original_length


def _folded(text: str, table: _FoldTable) -> Folded:
    folded = text.translate(table)
    if len(folded) == len(text):
        return Folded(folded, None)
    offsets: list[int] = []
    for index, char in enumerate(text):
        offsets.extend([index] * len(table[ord(char)]))
    return Folded(folded, tuple(offsets))


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
                self._lower = _folded(self.original, _LOWER)
            return self._lower
        if self._cased is None:
            self._cased = _folded(self.original, _CASED)
        return self._cased
