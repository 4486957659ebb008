"""Fetch stage: conditional GET with bounded size, time, redirects and concurrency (httpx).

Feed URLs come from the operator and are connected to as configured; article links and every
redirect hop are untrusted and go through the address guard (see netguard).
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urljoin

import httpx

from monitor.errors import (
    BlockedURL,
    BodyTooLarge,
    ClientError,
    FetchTimeout,
    ServerError,
    SkipItem,
    TransportError,
)
from monitor.models import FetchResult, Validators
from monitor.pipeline.decode import ACCEPT_ENCODING, decode_capped
from monitor.pipeline.netguard import Guard, IPNetwork, Resolver, check_url, set_deadline
from monitor.pipeline.transport import StdlibTransport

REDIRECTS = (301, 302, 303, 307, 308)
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d{1,10})\"?\s*(?=,|$)", re.IGNORECASE)
_NO_STORE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?=,|$)", re.IGNORECASE)
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"


@lru_cache(maxsize=8192)
def _parsed_url(url: str) -> httpx.URL:
    """httpx's URL parsing costs about a fifth of a conditional GET; feed URLs repeat every poll."""
    return httpx.URL(url)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
    return max(0.0, (when - current).total_seconds())


def parse_max_age(cache_control: str | None) -> float | None:
    """Seconds from a Cache-Control header's s-maxage/max-age; None when absent, no-cache or no-store."""
    if not cache_control or _NO_STORE.search(cache_control):
        return None
    found = [int(m.group(1)) for m in _MAX_AGE.finditer(cache_control)]
    return float(max(found)) if found else None


class Fetcher:
    """Thread-safe; one per service. Enforces the per-host cap; callers bound total concurrency."""

    def __init__(
        self,
        *,
        user_agent: str,
        connect_timeout: float,
        total_timeout: float,
        max_redirects: int,
        per_host: int,
        per_host_delay: float = 0.0,
        allow: Sequence[IPNetwork] = (),
        resolver: Resolver | None = None,
        keepalive: int = 4,
    ) -> None:
        # httpx Requests go straight to the transport: httpx.Client's own bookkeeping (cookies, auth,
        # redirects we do ourselves) cost more CPU per conditional GET than the request itself.
        self._trusted = StdlibTransport(Guard(False).connect, connect_timeout, total_timeout, keepalive)
        self._guarded = StdlibTransport(Guard(True, allow, resolver).connect, connect_timeout, total_timeout, keepalive)
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING, "Accept": ACCEPT}
        self._total = total_timeout
        self._max_redirects = max_redirects
        self._per_host = per_host
        self._host_slots: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(self._per_host)
        )
        self._slots_lock = threading.Lock()
        self._delay = per_host_delay
        self._next_start: dict[str, float] = {}  # host → the earliest moment its next request may start

    def close(self) -> None:
        self._trusted.close()
        self._guarded.close()

    def fetch_feed(self, url: str, validators: Validators, max_bytes: int) -> FetchResult:
        """GET an operator-configured feed URL; only redirect hops are guarded."""
        return self._get(url, validators, max_bytes, trusted_first_hop=True)

    def fetch_page(self, url: str, max_bytes: int) -> FetchResult:
        """GET an untrusted URL found in content: every hop is guarded."""
        return self._get(url, Validators(), max_bytes, trusted_first_hop=False)

    @contextmanager
    def _host_slot(self, host: str) -> Iterator[None]:
        with self._slots_lock:
            slot = self._host_slots[host]
        with slot:
            if self._delay:
                self._space(host)
            yield

    def _space(self, host: str) -> None:
        """Politeness: requests to one host start at least ``per_host_delay`` seconds apart (each caller
        reserves its start time under the lock, then sleeps outside it)."""
        with self._slots_lock:
            now = time.monotonic()
            if len(self._next_start) > 10_000:  # forget hosts whose spacing has long passed
                self._next_start = {h: t for h, t in self._next_start.items() if t > now}
            start = max(now, self._next_start.get(host, now))
            self._next_start[host] = start + self._delay
        if start > now:
            time.sleep(start - now)

    def _get(self, url: str, validators: Validators, max_bytes: int, trusted_first_hop: bool) -> FetchResult:
        started = time.monotonic()
        set_deadline(started + self._total)
        headers = dict(self._headers)
        if validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        current, hops = url, 0
        try:
            while True:
                parts = check_url(current)
                transport = self._trusted if hops == 0 and trusted_first_hop else self._guarded
                with self._host_slot(parts.hostname or ""):
                    result = self._one_hop(transport, url, current, headers, max_bytes, hops, started)
                if isinstance(result, FetchResult):
                    return result
                hops += 1
                if hops > self._max_redirects:
                    raise BlockedURL(f"too many redirects (more than {self._max_redirects})")
                current = result
        except httpx.TimeoutException as exc:
            raise FetchTimeout(f"timed out after {time.monotonic() - started:.1f}s: {exc}") from exc
        except httpx.InvalidURL as exc:
            raise BlockedURL(f"blocked invalid URL {current[:200]!r}: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc or 'connection failed'}") from exc
        finally:
            set_deadline(None)

    def _one_hop(self, transport: StdlibTransport, url: str, current: str, headers: dict[str, str],
                 max_bytes: int, hops: int, started: float) -> FetchResult | str:
        """Do one request: a FetchResult, or the absolute URL of the next redirect hop."""
        target = _parsed_url(current)
        response = transport.exchange("GET", target, [("Host", target.netloc.decode("ascii")), *headers.items()])
        try:
            status = response.status
            head = {name.lower(): value for name, value in response.headers}
            if status in REDIRECTS:
                location = head.get("location")
                if not location:
                    raise ClientError(f"HTTP {status} redirect without Location", status)
                return urljoin(current, location.strip())
            if status == 429 or status >= 500:
                retry_after = parse_retry_after(head.get("retry-after"))
                raise ServerError(f"HTTP {status} from {current[:200]}", status, retry_after)
            if status >= 400:
                raise ClientError(f"HTTP {status} from {current[:200]}", status)
            if status == 304:
                body = b""
            elif status != 200:
                raise SkipItem(f"unexpected HTTP {status} from {current[:200]}")
            else:
                declared = head.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise BodyTooLarge(f"body too large: Content-Length {declared} exceeds the {max_bytes}-byte cap")
                body = decode_capped(response.body, head.get("content-encoding", ""), max_bytes)
            return FetchResult(
                url=url,
                final_url=current,
                status=status,
                body=body,
                content_type=head.get("content-type", ""),
                etag=head.get("etag"),
                last_modified=head.get("last-modified"),
                max_age=parse_max_age(head.get("cache-control")),
                redirects=hops,
                elapsed=time.monotonic() - started,
            )
        finally:
            response.body.close()
