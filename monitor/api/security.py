"""Who may ask, and how often: the bearer token (or the web page's cookie, or ``access_token`` for Atom
readers that cannot send headers), a per-client rate limit, and the headers every response carries."""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse, Response

COOKIE = "monitor_token"
OPEN_PATHS = frozenset({"/healthz"})  # no token, no rate limit: for load balancers and orchestrators


class TokenCheck:
    """A FastAPI dependency: 401 unless the request carries a token; the name of the token it carried (the
    operator's MONITOR_API_TOKEN is ``operator``, each of MONITOR_API_USERS its own name) is left in
    ``request.state.token_name``, for what the request stores (an analyst's judgement)."""

    def __init__(self, tokens: str | dict[str, str]) -> None:
        named = {"operator": tokens} if isinstance(tokens, str) else tokens
        self._tokens = [(name, token.encode()) for name, token in named.items()]

    def identify(self, candidate: str | None) -> str | None:
        """The name of the token ``candidate`` is, or None. Every token is compared (in constant time)."""
        if candidate is None:
            return None
        found = None
        for name, token in self._tokens:
            if hmac.compare_digest(candidate.encode(), token) and found is None:
                found = name
        return found

    def matches(self, candidate: str | None) -> bool:
        return self.identify(candidate) is not None

    def __call__(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        candidates = [value.strip() if scheme.lower() == "bearer" else None, request.cookies.get(COOKIE)]
        if request.url.path.endswith(".atom"):
            candidates.append(request.query_params.get("access_token"))
        for candidate in candidates:
            name = self.identify(candidate)
            if name is not None:
                request.state.token_name = name
                return
        raise HTTPException(401, "a valid token is required (Authorization: Bearer <MONITOR_API_TOKEN>)",
                            headers={"WWW-Authenticate": "Bearer"})


class RateLimit(BaseHTTPMiddleware):
    """A token bucket per client address: ``per_minute`` requests, refilled continuously; over it, 429 with
    Retry-After. /healthz is never limited."""

    def __init__(self, app: object, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def _take(self, client: str) -> float:
        """0 if the request may go; else the seconds until it could."""
        now = self._clock()
        with self._lock:
            if len(self._buckets) > 10_000:  # bounded: forget the idle clients
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 120}
            tokens, last = self._buckets.get(client, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - last) * self._rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self._rate

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path not in OPEN_PATHS:
            wait = self._take(request.client.host if request.client else "unknown")
            if wait:
                return JSONResponse({"detail": "too many requests"}, 429,
                                    headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return await call_next(request)


class SafeHeaders(BaseHTTPMiddleware):
    """nosniff everywhere, no caching of authenticated answers, no framing."""

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response
