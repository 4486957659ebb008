"""Slack destination: one Block Kit message per alert and a digest split across as many messages as it needs
(notify.slack_blocks), through an incoming webhook (slack-sdk WebhookClient) or a bot token
(WebClient.chat_postMessage). HTTP errors are classified (the webhook client does not raise), 429
Retry-After is honoured and a destination gets at most one message per second."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from monitor.errors import ClientError, ServerError
from monitor.notify.destinations import DestinationModel, Destinations
from monitor.notify.digest_content import Digest
from monitor.notify.slack_blocks import Block, mark_duplicate, render, render_digest
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.outbox import Claim

MIN_INTERVAL = 1.0  # seconds between two messages to one destination
TIMEOUT = 15


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

    def send_digest(self, digest: Digest, parts_sent: int, part_done: Callable[[int], None]) -> None:
        """The digest's messages from the first one not yet accepted (``parts_sent``); ``part_done`` records
        each accepted one, so that a retry or a re-send after a crash sends only the rest."""
        destination = self._destinations.get(digest.destination)
        if destination is None or destination.kind != "slack":
            raise ClientError(f"{digest.destination}: not a slack destination", 400)
        messages = render_digest(digest)
        for number in range(parts_sent, len(messages)):
            message = messages[number]
            if digest.possible_duplicate and number == parts_sent:  # only this one may have gone out before
                message = mark_duplicate(message)
            self.post(destination, *message)
            part_done(number + 1)

    def preview(self, digest: Digest) -> str:
        """The digest's messages as the JSON payloads that would be posted, one per line."""
        return "\n".join(json.dumps({"text": text, "blocks": blocks}, ensure_ascii=False)
                         for text, blocks in render_digest(digest))

    def post(self, destination: DestinationModel, text: str, blocks: list[Block]) -> None:
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

    def _webhook(self, destination: DestinationModel, text: str, blocks: list[Block]) -> None:
        assert destination.webhook_url is not None
        client = WebhookClient(destination.webhook_url.get_secret_value(), timeout=_timeout(destination))
        response = client.send(text=text, blocks=blocks)
        if response.status_code == 200:
            return
        _raise_for(destination.name, response.status_code, str(response.body)[:200], response.headers)

    def _post(self, destination: DestinationModel, text: str, blocks: list[Block]) -> None:
        assert destination.token is not None
        client = WebClient(token=destination.token.get_secret_value(), timeout=_timeout(destination),
                           base_url=destination.base_url or WebClient.BASE_URL)
        try:
            client.chat_postMessage(channel=destination.channel or "", text=text, blocks=blocks)
        except SlackApiError as exc:
            response = exc.response
            _raise_for(destination.name, response.status_code, str(response.get("error", "")), response.headers)


def _timeout(destination: DestinationModel) -> int:
    return max(1, round(destination.timeout or TIMEOUT))


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
