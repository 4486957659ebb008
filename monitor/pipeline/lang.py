"""Language of an article: from the feed, the page, or detection by script and stopwords."""

from __future__ import annotations

import re

_HTML_LANG = re.compile(rb"<html[^>]*?\slang\s*=\s*[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*)", re.I)
_EN_WORDS = frozenset("the and of to in is that for on with was said as by at from".split())


def normalize_lang(code: str | None) -> str | None:
    """Primary subtag, lower case: 'en-US' -> 'en', 'zh_TW' -> 'zh'."""
    if not code:
        return None
    primary = re.split(r"[-_]", code.strip())[0].lower()
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None


def page_lang(html: bytes) -> str | None:
    found = _HTML_LANG.search(html[:8192])
    return normalize_lang(found.group(1).decode("ascii")) if found else None


def detect_lang(text: str) -> str | None:
    """Hangul → ko, kana → ja, Han → zh; Latin text with English stopwords → en; else None."""
    sample = text[:4000]
    hangul = kana = han = latin = 0
    for char in sample:
        code = ord(char)
        if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF:
            hangul += 1
        elif 0x3040 <= code <= 0x30FF:
            kana += 1
        elif 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF:
            han += 1
        elif char.isascii() and char.isalpha():
            latin += 1
    cjk = hangul + kana + han
    if cjk and cjk * 3 >= latin:
        if hangul >= max(kana, han * 0.3):
            return "ko"
        return "ja" if kana * 10 >= han else "zh"
    words = re.findall(r"[a-z]+", sample.lower())
    if words and sum(w in _EN_WORDS for w in words) / len(words) > 0.06:
        return "en"
    return None


def choose_lang(feed_lang: str | None, page: str | None, text: str) -> str | None:
    return normalize_lang(feed_lang) or page or detect_lang(text)
