"""Slack destination: one Block Kit message per alert, through an incoming webhook (slack-sdk WebhookClient)
or a bot token (WebClient.chat_postMessage). Every untrusted string is escaped, Slack's size limits are
kept, HTTP errors are classified (the webhook client does not raise), 429 Retry-After is honoured and a
destination gets at most one message per second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from monitor.errors import ClientError, ServerError
from monitor.notify.destinations import DestinationModel, Destinations
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.outbox import Claim
from monitor.store.queries import MatchView

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_MESSAGE_CHARS = 4000  # all text of a message together
MIN_INTERVAL = 1.0  # seconds between two messages to one destination
TIMEOUT = 15
_ZERO_WIDTH = "\u200b"


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
    return f"<{safe}|{escape(label)}>"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def render(matches: Sequence[MatchView], possible_duplicate: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks) for one article and the rules it matched (oldest first)."""
    first = matches[0]
    when = f" · {first.published:%Y-%m-%d %H:%M} UTC" if first.published else ""
    header = f"*{link(first.url, _cut(first.title or '(no title)', 300))}*\n{escape(first.feed)}{when}"
    rules = ", ".join(f"{escape(m.rule_title)} (`{escape(m.rule)}`)" for m in matches)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(header, MAX_SECTION_CHARS)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(f"Matched: {rules}", 1000)}]},
    ]
    if possible_duplicate:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": "possible duplicate: an earlier attempt may have been delivered"}]})
    used = sum(len(_text_of(b)) for b in blocks)
    room = max(MAX_MESSAGE_CHARS - used - 200, 0)
    shown = matches[: MAX_BLOCKS - len(blocks) - 1]
    per_rule = min(MAX_SECTION_CHARS, room // max(len(shown), 1))
    for match in shown:
        snippet = "".join(f"*{escape(text)}*" if term else escape(text) for text, term in match.snippet_pieces())
        body = f"*{escape(match.rule_title)}*\n>{snippet.replace(chr(10), ' ')}"
        if per_rule < 40:
            break
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(body, per_rule)}})
    left = len(matches) - (len(blocks) - (3 if possible_duplicate else 2))
    if left > 0:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"…and {left} more rules"}]})
    fallback = _cut(f"{first.title} — {', '.join(m.rule for m in matches)}", 300)
    return escape(fallback), blocks


def _text_of(block: dict[str, Any]) -> str:
    if "text" in block:
        return str(block["text"]["text"])
    return "".join(str(e.get("text", "")) for e in block.get("elements", []))


class SlackNotifier:
    """Sends one claimed outbox row to its Slack destination."""

    def __init__(self, db: Database, destinations: Destinations, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._destinations = destinations
        self._sleep = sleep
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def send(self, claim: Claim) -> None:
        destination = self._destinations.get(claim.destination)
        if destination is None or destination.kind != "slack":
            raise ClientError(f"{claim.destination}: not a slack destination", 400)
        matches = queries.claimed_matches(self._db, claim)
        if not matches:
            return  # nothing left to say (the matches are gone): done
        self.post(destination, *render(matches, claim.possible_duplicate))

    def post(self, destination: DestinationModel, text: str, blocks: list[dict[str, Any]]) -> None:
        """One message to ``destination`` (paced, errors classified)."""
        self._pace(destination.name)
        if destination.webhook_url is not None:
            self._webhook(destination, text, blocks)
        else:
            self._post(destination, text, blocks)

    def _pace(self, name: str) -> None:
        with self._lock:
            wait = self._last.get(name, -MIN_INTERVAL) + MIN_INTERVAL - self._clock()
            if wait > 0:
                self._sleep(wait)
            self._last[name] = self._clock()

    def _webhook(self, destination: DestinationModel, text: str, blocks: list[dict[str, Any]]) -> None:
        assert destination.webhook_url is not None
        client = WebhookClient(destination.webhook_url.get_secret_value(), timeout=TIMEOUT)
        response = client.send(text=text, blocks=blocks)
        if response.status_code == 200:
            return
        _raise_for(destination.name, response.status_code, str(response.body)[:200], response.headers)

    def _post(self, destination: DestinationModel, text: str, blocks: list[dict[str, Any]]) -> None:
        assert destination.token is not None
        client = WebClient(token=destination.token.get_secret_value(), timeout=TIMEOUT,
                           base_url=destination.base_url or WebClient.BASE_URL)
        try:
            client.chat_postMessage(channel=destination.channel or "", text=text, blocks=blocks)
        except SlackApiError as exc:
            response = exc.response
            _raise_for(destination.name, response.status_code, str(response.get("error", "")), response.headers)


# Web API error codes worth retrying; any other error is permanent (invalid_auth, channel_not_found...).
_TRANSIENT_CODES = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                              "request_timeout"})


def _raise_for(name: str, status: int, detail: str, headers: dict[str, Any]) -> None:
    """429, 5xx and transient Web API errors are worth retrying (429 after its Retry-After); other answers
    are permanent: a wrong token or channel will not fix itself."""
    message = f"slack {name}: HTTP {status} {detail}".strip()
    if status == 429 or status >= 500 or detail in _TRANSIENT_CODES:
        retry_after = headers.get("Retry-After") or headers.get("retry-after")
        try:
            wait = float(retry_after) if retry_after is not None else None
        except (TypeError, ValueError):
            wait = None
        raise ServerError(message, status, wait)
    raise ClientError(message, status)
