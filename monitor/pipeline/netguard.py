"""Network guard: refuse odd URLs before any I/O and non-public addresses on the socket actually opened.

The guard lives in an httpcore network backend, so the address that is checked is the address
that is connected to (no second DNS lookup can swap it: DNS rebinding is closed). The same
backend clamps every connect/read/write to a per-thread wall-clock deadline, which httpx's
per-operation timeouts cannot do against a server that trickles one byte a second.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpcore

from monitor.errors import BlockedURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_CANONICAL_V4 = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")

_local = threading.local()


def check_url(url: str) -> SplitResult:
    """Refuse, without any I/O, URLs that are not plain http(s) to a named or canonical-IP host."""
    if _BAD_CHARS.search(url):
        raise BlockedURL(f"blocked URL with whitespace, control or backslash characters: {url[:200]!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BlockedURL(f"blocked URL scheme {parts.scheme or '(none)'!r}: only http and https are fetched")
    if "@" in parts.netloc:
        raise BlockedURL("blocked URL with user info (user:password@host)")
    host = parts.hostname
    if not host:
        raise BlockedURL(f"blocked URL without a host: {url[:200]!r}")
    if _NUMERIC_HOST.match(host) and not _CANONICAL_V4.match(host):
        raise BlockedURL(f"blocked non-canonical IP literal {host!r}")
    try:
        _ = parts.port
    except ValueError as exc:
        raise BlockedURL(f"blocked URL with invalid port: {url[:200]!r}") from exc
    return parts


def is_public(ip: IPAddress, allow: Sequence[IPNetwork] = ()) -> bool:
    """True for globally routable unicast addresses, or any address inside an allowed network."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allow if net.version == ip.version):
        return True
    return ip.is_global and not ip.is_multicast


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def set_deadline(deadline: float | None) -> None:
    """Set the wall-clock deadline (time.monotonic()) for network I/O on this thread."""
    _local.deadline = deadline


def _remaining(timeout: float | None) -> float | None:
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("total fetch deadline exceeded")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation is clamped to the thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.NetworkBackend):
    """Connect only to permitted addresses (when ``guard``), always within the deadline."""

    def __init__(self, guard: bool, allow: Iterable[IPNetwork] = (), resolver: Resolver | None = None):
        self._guard = guard
        self._allow = tuple(allow)
        self._resolve = resolver or system_resolver
        self._sync = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        targets = self._permitted_addresses(host, port) if self._guard else [host]
        error: Exception | None = None
        for target in targets:
            try:
                stream = self._sync.connect_tcp(target, port, _remaining(timeout), local_address, socket_options)
                return DeadlineStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def _permitted_addresses(self, host: str, port: int) -> list[str]:
        try:
            candidates = self._resolve(host.strip("[]"), port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        allowed = [a for a in candidates if is_public(ipaddress.ip_address(a.split("%")[0]), self._allow)]
        if not allowed:
            raise BlockedURL(f"blocked non-public address {host} -> {', '.join(candidates) or 'nothing'}")
        return allowed

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise BlockedURL("unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
