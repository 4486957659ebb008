"""http.client's HTTPResponse with a lean header parser.

http.client parses every response's headers with the email package (a Message per response),
which measured as the largest single cost of a conditional GET answered 304 (docs/performance.md).
``LeanResponse`` reads the header lines with http.client's own limits (line length, header count)
and keeps them as a small case-insensitive list; status line, framing (chunked, Content-Length,
connection reuse) follow http.client's ``begin`` step for step.
"""

from __future__ import annotations

import http.client
import re

_NAME = re.compile(rb"[!-9;-~]+")  # a token: visible ASCII except ':'


class LeanHeaders:
    """The response headers in arrival order; lookups ignore case, ``get`` returns the first value."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self._items:
            if key.lower() == name:
                return value
        return default

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        name = name.lower()
        found = [value for key, value in self._items if key.lower() == name]
        return found or default

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


def parse_header_lines(lines: list[bytes]) -> LeanHeaders:
    """``Name: value`` lines (obsolete folded continuations joined); lines that are not a header are
    skipped."""
    items: list[tuple[str, str]] = []
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if items:
                previous, value = items[-1]
                items[-1] = (previous, f"{value} {line.strip().decode('latin-1')}".strip())
            continue
        name, colon, rest = line.partition(b":")
        if colon and _NAME.fullmatch(name):
            items.append((name.decode("ascii"), rest.strip().decode("latin-1")))
    return LeanHeaders(items)


class LeanResponse(http.client.HTTPResponse):
    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # a 100 response's headers
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        headers = parse_header_lines(http.client._read_headers(self.fp))
        self.headers = self.msg = headers
        encoding = headers.get("transfer-encoding")
        self.chunked = bool(encoding and encoding.lower() == "chunked")
        self.chunk_left = None
        self.will_close = self._check_close()
        self.length = None
        length = headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED) or 100 <= status < 200 \
                or self._method == "HEAD":
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True
