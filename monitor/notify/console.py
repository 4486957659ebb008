"""Console destination: each alert printed on standard output, the reason for every rule it matched; a
digest printed as the plain text of its e-mail."""

from __future__ import annotations

from collections.abc import Callable

from monitor.console import format_match
from monitor.notify.digest_content import Digest
from monitor.notify.email import digest_text
from monitor.store import queries
from monitor.store.db import Database
from monitor.store.outbox import Claim


class ConsoleNotifier:
    """Prints one message per outbox row: the article's matches of the rules routed here, oldest first."""

    def __init__(self, db: Database, write: Callable[[str], None] = print) -> None:
        self._db = db
        self._write = write

    def send(self, claim: Claim) -> None:
        matches = queries.claimed_matches(self._db, claim)
        if not matches:
            return  # nothing left to say (the matches are gone): done
        text = "\n".join(format_match(m) for m in matches)
        if claim.possible_duplicate:
            text = "(possible duplicate: an earlier attempt may have been printed)\n" + text
        self._write(text)

    def send_digest(self, digest: Digest, parts_sent: int, part_done: Callable[[int], None]) -> None:
        if not parts_sent:
            self._write(digest_text(digest))

    def preview(self, digest: Digest) -> str:
        return digest_text(digest)
