"""The one error tree of monitor, grouped by what the caller does about it.

    MonitorError
    ├── ConfigError            fix the configuration (settings, feeds.yaml, rule files); never retried
    ├── RetryLater             transient: record, back off, try again on a later poll
    │   ├── FetchTimeout       connect/total deadline exceeded
    │   ├── TransportError     refused, reset, TLS failure, protocol error
    │   └── ServerError        HTTP 5xx / 429
    └── SkipItem               this feed or page is unusable as it is; record and go on
        ├── BlockedURL         scheme, syntax or address refused by the network guard
        ├── BodyTooLarge       decoded body above the cap
        ├── ClientError        HTTP 4xx (other than 429)
        ├── ParseError         body is not a usable feed
        ├── ExtractError       article extraction failed
        └── WorkTimeout        a parse/extract worker exceeded its wall-clock limit and was killed

A 304 Not Modified is a result, not an error. Broad ``except`` appears only in the job
wrapper and the per-feed boundary of the orchestrator, which record the error and go on.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error monitor raises on purpose."""

    #: short machine-readable class stored with a feed's failure (``monitor feeds``)
    error_class = "error"


class ConfigError(MonitorError):
    error_class = "config"


class RetryLater(MonitorError):
    error_class = "transient"


class FetchTimeout(RetryLater):
    error_class = "timeout"


class TransportError(RetryLater):
    error_class = "transport"


class ServerError(RetryLater):
    error_class = "http_5xx"

    def __init__(self, message: str, status: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class SkipItem(MonitorError):
    error_class = "skip"


class BlockedURL(SkipItem):
    error_class = "blocked"


class BodyTooLarge(SkipItem):
    error_class = "too_large"


class ClientError(SkipItem):
    error_class = "http_4xx"

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ParseError(SkipItem):
    error_class = "parse"


class ExtractError(SkipItem):
    error_class = "extract"


class WorkTimeout(SkipItem):
    error_class = "worker_timeout"
