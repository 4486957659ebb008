"""Extract stage: article page → main text (trafilatura, fast mode), with the page's language.

Pure and CPU-bound: run it through the WorkerPool so the wall-clock limit can kill it.
"""

from __future__ import annotations

from dataclasses import dataclass

import trafilatura

from monitor.errors import ExtractError
from monitor.pipeline.lang import page_lang


@dataclass(frozen=True)
class Extracted:
    text: str
    lang: str | None


def extract_text(html: bytes, url: str | None, max_chars: int) -> Extracted:
    """Main text of a page (tables kept, comments dropped); ExtractError when nothing usable."""
    text = trafilatura.extract(
        html,
        url=url,
        fast=True,
        include_comments=False,
        include_tables=True,
        with_metadata=False,
        deduplicate=False,
    )
    if not text or not text.strip():
        raise ExtractError("no article text found in page")
    return Extracted(text=text.replace("\x00", "").strip()[:max_chars], lang=page_lang(html))
