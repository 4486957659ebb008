"""Slack Block Kit messages for alerts and digests: every untrusted string escaped, within Slack's limits
(≤ 50 blocks, ≤ 3,000 characters per section, ≤ 4,000 characters per message); a digest too long for one
message is split across several."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor.notify.digest_content import Digest
from monitor.store.queries import MatchView

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_MESSAGE_CHARS = 4000  # all text of a message together
MAX_DIGEST_MESSAGES = 20  # a digest longer than this ends with a count of what it left out
DIGEST_SNIPPET_CHARS = 280
MAX_LINK_CHARS = 1000
_ZERO_WIDTH = "\u200b"

Block = dict[str, Any]
Message = tuple[str, list[Block]]  # (fallback text, blocks)


def escape(text: str) -> str:
    """Untrusted text for mrkdwn: & < > as entities (no mentions, links or channel pings can be forged), and
    a zero-width space after * _ ~ ` so that no formatting can be injected either."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for mark in "*_~`":
        text = text.replace(mark, mark + _ZERO_WIDTH)
    return text


def link(url: str | None, label: str) -> str:
    """``label`` linked to ``url`` when it is an http(s) URL, else the label alone."""
    if not url or not url.lower().startswith(("http://", "https://")):
        return escape(label)
    safe = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    if len(safe) > MAX_LINK_CHARS:  # never cut a link in half to fit a section: show the label alone
        return escape(label)
    return f"<{safe}|{escape(label)}>"


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def snippet(match: MatchView, limit: int) -> str:
    """The explanation's snippet escaped, its matched terms in bold, at most ``limit`` characters once
    escaped (cut before escaping: an entity or a bold pair is never cut in half)."""
    pieces, room = [], limit
    for text, term in match.snippet_pieces():
        text, marks = text.replace("\n", " "), 2 if term else 0
        shown = escape(text)
        if len(shown) + marks > room:  # the longest prefix that fits with its "…"
            kept, used = [], marks + 1
            for char in text:
                used += len(escape(char))
                if used > room:
                    break
                kept.append(escape(char))
            shown = "".join(kept) + "…" if kept else ""
            room = 0
        else:
            room -= len(shown) + marks
        if shown:
            pieces.append(f"*{shown}*" if term else shown)
        if room <= 0:
            break
    return "".join(pieces)


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_SECTION_CHARS)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, 1000)}]}


def text_of(block: Block) -> str:
    if "text" in block:
        return str(block["text"]["text"])
    return "".join(str(e.get("text", "")) for e in block.get("elements", []))


_DUPLICATE = "possible duplicate: an earlier attempt may have been delivered"


def _headline(match: MatchView) -> str:
    when = f" · {match.published:%Y-%m-%d %H:%M} UTC" if match.published else ""
    return f"{link(match.url, cut(match.title or '(no title)', 300))} — {escape(match.feed)}{when}"


def render(matches: Sequence[MatchView], possible_duplicate: bool = False) -> Message:
    """One article and the rules it matched (oldest first)."""
    first = matches[0]
    when = f" · {first.published:%Y-%m-%d %H:%M} UTC" if first.published else ""
    header = f"*{link(first.url, cut(first.title or '(no title)', 300))}*\n{escape(first.feed)}{when}"
    rules = ", ".join(f"{escape(m.rule_title)} (`{escape(m.rule)}`)" for m in matches)
    blocks: list[Block] = [_section(header), _context(f"Matched: {rules}")]
    if possible_duplicate:
        blocks.append(_context(_DUPLICATE))
    fixed = len(blocks)
    room = max(MAX_MESSAGE_CHARS - sum(len(text_of(b)) for b in blocks) - 200, 0)
    shown = matches[: MAX_BLOCKS - fixed - 1]
    per_rule = min(MAX_SECTION_CHARS, room // max(len(shown), 1))
    if per_rule >= 40:
        for match in shown:
            head = f"*{escape(cut(match.rule_title, 100))}*\n>"
            blocks.append(_section(cut(head + snippet(match, per_rule - len(head)), per_rule)))
    left = len(matches) - (len(blocks) - fixed)
    if left > 0:
        blocks.append(_context(f"…and {left} more rules"))
    return escape(cut(f"{first.title} — {', '.join(m.rule for m in matches)}", 300)), blocks


# Room kept free in every digest message for its header, a possible-duplicate note and a closing count.
_DIGEST_RESERVED_BLOCKS = 3
_DIGEST_RESERVED_CHARS = 700


def render_digest(digest: Digest) -> list[Message]:
    """The digest as messages: a header, then per rule a heading with its count and one section per
    article; split so that every message stays within the limits, at most MAX_DIGEST_MESSAGES of them."""
    units: list[tuple[Block, bool]] = []  # (block, is an article)
    for group in digest.groups:
        count = f"{len(group.matches)} article{'s' if len(group.matches) != 1 else ''}"
        units.append((_section(f"*{escape(cut(group.title, 200))}* (`{escape(group.rule)}`) — {count}"), False))
        for match in group.matches:
            units.append((_section(f"• {_headline(match)}\n>{snippet(match, DIGEST_SNIPPET_CHARS)}"), True))
    pages: list[list[tuple[Block, bool]]] = [[]]
    size = 0
    for unit in units:
        length = len(text_of(unit[0]))
        page = pages[-1]
        if page and (len(page) + 1 > MAX_BLOCKS - _DIGEST_RESERVED_BLOCKS
                     or size + length > MAX_MESSAGE_CHARS - _DIGEST_RESERVED_CHARS):
            pages.append([])
            size = 0
        pages[-1].append(unit)
        size += length
    left_out = sum(is_article for page in pages[MAX_DIGEST_MESSAGES:] for _, is_article in page)
    pages = pages[:MAX_DIGEST_MESSAGES]
    messages: list[Message] = []
    for number, page in enumerate(pages, 1):
        part = f" (part {number}/{len(pages)})" if len(pages) > 1 else ""
        heading = escape(digest.heading) + part
        blocks = [_section(f"*{heading}*")] + [block for block, _ in page]
        if number == len(pages) and left_out:
            blocks.append(_context(f"…and {left_out} more articles not shown here (`monitor matches` lists them)"))
        messages.append((cut(heading, 300), blocks))
    return messages


def mark_duplicate(message: Message) -> Message:
    """The message with a note that it may have been delivered before (a re-send after a crash)."""
    text, blocks = message
    return text, [blocks[0], _context(_DUPLICATE), *blocks[1:]]
