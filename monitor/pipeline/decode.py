"""Decode a raw HTTP body (identity, gzip, deflate, br) without ever holding more than the cap."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable

import brotli

from monitor.errors import BodyTooLarge, SkipItem

ACCEPT_ENCODING = "gzip, deflate, br"
PIECE = 128 * 1024


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._first = wbits == zlib.MAX_WBITS

    def feed(self, data: bytes, room: Callable[[], int]) -> Iterable[bytes]:
        try:
            out = self._d.decompress(data, room())
        except zlib.error:
            if not self._first:
                raise
            self._d, self._first = zlib.decompressobj(-zlib.MAX_WBITS), False  # raw deflate
            out = self._d.decompress(data, room())
        yield out
        while self._d.unconsumed_tail:
            yield self._d.decompress(self._d.unconsumed_tail, room())


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def feed(self, data: bytes, room: Callable[[], int]) -> Iterable[bytes]:
        yield self._d.process(data, output_buffer_limit=room())
        while not self._d.can_accept_more_data():
            yield self._d.process(b"", output_buffer_limit=room())


class _Identity:
    def feed(self, data: bytes, room: Callable[[], int]) -> Iterable[bytes]:
        yield data


def _decoder(encoding: str) -> _Zlib | _Brotli | _Identity:
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return _Identity()
    if name in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return _Zlib(zlib.MAX_WBITS)
    if name == "br":
        return _Brotli()
    raise SkipItem(f"refused Content-Encoding {encoding!r} that was not requested")


def decode_capped(chunks: Iterable[bytes], encoding: str, cap: int) -> bytes:
    """Join and decode chunks; raise BodyTooLarge as soon as the decoded size passes ``cap``."""
    decoder = _decoder(encoding)
    out = bytearray()
    raw = 0

    def room() -> int:  # small pieces keep the peak near the cap, not twice it
        return min(cap + 1 - len(out), PIECE)

    try:
        for chunk in chunks:
            raw += len(chunk)
            if raw > cap:
                raise BodyTooLarge(f"body too large: more than {cap} bytes on the wire")
            for piece in decoder.feed(chunk, room):
                out += piece
                if len(out) > cap:
                    raise BodyTooLarge(f"body too large: more than {cap} bytes once decoded")
    except (zlib.error, brotli.error) as exc:
        raise SkipItem(f"corrupt {encoding} body: {exc}") from exc
    return bytes(out)
