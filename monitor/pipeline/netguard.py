"""Network guard: refuse odd URLs before any I/O and non-public addresses on the socket actually opened.

``Guard.connect`` resolves the host once, keeps only permitted addresses and connects to one of
them, so the address checked is the address connected to (no second DNS lookup can swap it: DNS
rebinding is closed). ``remaining_time`` clamps every connect and read to a per-thread wall-clock
deadline, which per-operation timeouts cannot do against a server trickling one byte a second.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit

from monitor.errors import BlockedURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+))*\.?$", re.IGNORECASE)
_CANONICAL_V4 = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")

_local = threading.local()


@lru_cache(maxsize=8192)  # feeds are re-polled with the same URLs; a refusal is never cached
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


def remaining_time(timeout: float | None) -> float | None:
    """``timeout`` clamped to what is left of this thread's deadline; TimeoutError once it has passed."""
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("total fetch deadline exceeded")
    return left if timeout is None else min(timeout, left)


class Guard:
    """Opens TCP connections; when guarding, only to addresses that pass ``is_public``."""

    def __init__(self, guard: bool, allow: Iterable[IPNetwork] = (), resolver: Resolver | None = None) -> None:
        self._guard = guard
        self._allow = tuple(allow)
        self._resolve = resolver or system_resolver

    def connect(self, host: str, port: int, timeout: float | None) -> socket.socket:
        targets = self.permitted_addresses(host, port) if self._guard else [host]
        error: OSError | None = None
        for target in targets:
            try:
                sock = socket.create_connection((target, port), remaining_time(timeout))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as exc:
                error = exc
        assert error is not None
        raise error

    def permitted_addresses(self, host: str, port: int) -> list[str]:
        try:
            candidates = self._resolve(host.strip("[]"), port)
        except OSError as exc:
            raise OSError(f"cannot resolve {host!r}: {exc}") from exc
        allowed = [a for a in candidates if is_public(ipaddress.ip_address(a.split("%")[0]), self._allow)]
        if not allowed:
            raise BlockedURL(f"blocked non-public address {host} -> {', '.join(candidates) or 'nothing'}")
        return allowed
