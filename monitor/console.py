"""Plain-text rendering of matches for the terminal (the console output of `run` and `matches`)."""

from __future__ import annotations

from monitor.store.queries import MatchView


def match_terms(match: MatchView) -> list[str]:
    hits = match.explanation.get("hits", [])
    return sorted({str(h["term"]) for h in hits if isinstance(h, dict)} if isinstance(hits, list) else set())


def format_match(match: MatchView) -> str:
    """Three lines: what matched, where it is, and why."""
    snippet = str(match.explanation.get("snippet", "")).replace("\n", " ")
    return (
        f"#{match.id} {match.matched_at:%Y-%m-%d %H:%M} [{match.rule}] {match.feed}: {match.title}\n"
        f"    {match.url or '(no link)'}\n"
        f"    why: {', '.join(match_terms(match))} — “{snippet}”"
    )
