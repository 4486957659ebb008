"""Fetch stage: conditional GET with bounded size, time, redirects and concurrency (httpx).

Feed URLs come from the operator and are connected to as configured; article links and every
redirect hop are untrusted and go through the address guard (see netguard).
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urljoin

import httpcore
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
from monitor.pipeline.netguard import GuardedBackend, IPNetwork, Resolver, check_url, set_deadline

REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024


def _client(backend: GuardedBackend, settings_timeout: httpx.Timeout, pool_size: int) -> httpx.Client:
    transport = httpx.HTTPTransport(retries=0, trust_env=False)
    transport._pool = httpcore.ConnectionPool(  # the documented pool, with our network backend
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=pool_size,
        max_keepalive_connections=pool_size,
        keepalive_expiry=30.0,
        retries=0,
        network_backend=backend,
    )
    return httpx.Client(transport=transport, timeout=settings_timeout, follow_redirects=False,
                        trust_env=False)


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
        allow: Sequence[IPNetwork] = (),
        resolver: Resolver | None = None,
        pool_size: int = 32,
    ) -> None:
        timeout = httpx.Timeout(total_timeout, connect=connect_timeout)
        self._trusted = _client(GuardedBackend(False), timeout, pool_size)
        self._guarded = _client(GuardedBackend(True, allow, resolver), timeout, pool_size)
        self._headers = {"User-Agent": user_agent, "Accept-Encoding": ACCEPT_ENCODING}
        self._total = total_timeout
        self._max_redirects = max_redirects
        self._per_host = per_host
        self._host_slots: dict[str, threading.BoundedSemaphore] = defaultdict(
            lambda: threading.BoundedSemaphore(self._per_host)
        )
        self._slots_lock = threading.Lock()

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
            yield

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
                client = self._trusted if hops == 0 and trusted_first_hop else self._guarded
                with self._host_slot(parts.hostname or ""):
                    result = self._one_hop(client, url, current, headers, max_bytes, hops, started)
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

    def _one_hop(self, client: httpx.Client, url: str, current: str, headers: dict[str, str],
                 max_bytes: int, hops: int, started: float) -> FetchResult | str:
        """Do one request: a FetchResult, or the absolute URL of the next redirect hop."""
        with client.stream("GET", current, headers=headers) as response:
            status = response.status_code
            if status in REDIRECTS:
                location = response.headers.get("location")
                if not location:
                    raise ClientError(f"HTTP {status} redirect without Location", status)
                return urljoin(current, location.strip())
            if status == 429 or status >= 500:
                retry = parse_retry_after(response.headers.get("retry-after"))
                raise ServerError(f"HTTP {status} from {current[:200]}", status, retry)
            if status >= 400:
                raise ClientError(f"HTTP {status} from {current[:200]}", status)
            if status == 304:
                body = b""
            elif status != 200:
                raise SkipItem(f"unexpected HTTP {status} from {current[:200]}")
            else:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise BodyTooLarge(f"body too large: Content-Length {declared} exceeds the {max_bytes}-byte cap")
                body = decode_capped(
                    response.iter_raw(CHUNK), response.headers.get("content-encoding", ""), max_bytes
                )
            return FetchResult(
                url=url,
                final_url=current,
                status=status,
                body=body,
                content_type=response.headers.get("content-type", ""),
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
                redirects=hops,
                elapsed=time.monotonic() - started,
            )

