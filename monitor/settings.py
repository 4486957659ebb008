"""Infrastructure settings from MONITOR_* environment variables or `.env`, validated at start."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from monitor import __version__
from monitor.durations import parse_duration

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_USER_AGENT = f"monitor/{__version__} (+https://github.com/monitor-alerts/monitor)"


class Settings(BaseSettings):
    """Every field is documented in README.md's settings table (a test enforces it)."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///data/monitor.db"
    feeds_file: Path = Path("feeds.yaml")
    rules_dir: Path = Path("rules")
    destinations_file: Path | None = None
    allow_private_networks: Annotated[list[IPNetwork], NoDecode] = Field(default_factory=list)

    connect_timeout: float = Field(10.0, gt=0, le=120)
    fetch_timeout: float = Field(30.0, gt=0, le=600)
    feed_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    page_max_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(5, ge=0, le=5)
    concurrency: int = Field(16, ge=1, le=256)
    per_host_concurrency: int = Field(1, ge=1, le=64)
    per_host_delay: float = Field(1.0, ge=0, le=60)
    user_agent: str = Field(DEFAULT_USER_AGENT, min_length=3)

    workers: int = Field(0, ge=0, le=64)
    parse_timeout: float = Field(10.0, gt=0, le=600)
    extract_timeout: float = Field(20.0, gt=0, le=600)
    max_title_chars: int = Field(1000, ge=16)
    max_summary_chars: int = Field(64 * 1024, ge=256)
    max_text_chars: int = Field(256 * 1024, ge=1024)
    max_entries_per_feed: int = Field(500, ge=1)

    default_interval: float = Field(900.0, ge=1)
    poll_min_interval: float = Field(300.0, gt=0)
    poll_max_interval: float = Field(3600.0, gt=0)
    max_backoff: float = Field(86400.0, gt=0)
    feed_pause_after: int = Field(3, ge=0, le=1000)
    health_destination: str | None = None
    health_failing_after: float = Field(3600.0, gt=0)
    health_silent_factor: float = Field(10.0, ge=1)
    health_silent_min: float = Field(86400.0, gt=0)
    rule_silent_factor: float = Field(10.0, ge=1)
    rule_silent_min: float = Field(86400.0, gt=0)
    retention: float = Field(90 * 86400.0, gt=0)
    housekeeping_interval: float = Field(3600.0, gt=0)
    poll_tick: float = Field(30.0, ge=0.1)
    rules_reload_interval: float = Field(5.0, ge=0.1, le=3600)
    delivery_lease: float = Field(120.0, ge=1, le=3600)
    feed_lease: float = Field(600.0, ge=1, le=86400)
    shutdown_grace: float = Field(30.0, gt=0, le=3600)
    log_level: str = "INFO"

    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=0, le=65535)
    api_token: SecretStr | None = None
    api_users: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    feedback_per_minute: int = Field(30, ge=1, le=10_000)
    api_serve: bool = True
    api_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_rate_limit: int = Field(600, ge=1, le=1_000_000)

    @field_validator("destinations_file", "health_destination", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return None
            if len(value.strip()) < 16:
                raise ValueError("use at least 16 characters "
                                 "(python3 -c 'import secrets; print(secrets.token_urlsafe())')")
            return value.strip()
        return value

    @field_validator("api_users", mode="before")
    @classmethod
    def _users(cls, value: Any) -> Any:
        """``name=token,name=token``: analysts' own tokens, so that what each sends is stored under a name."""
        if not isinstance(value, str):
            return value
        users: dict[str, str] = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            name, sep, token = (piece.strip() for piece in part.partition("="))
            if not sep or not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
                raise ValueError(f"{part.split('=')[0][:64]!r}: write name=token pairs separated by commas; "
                                 "a name is 1-64 letters, digits, '_', '.', '@' or '-'")
            if name in users or name == "operator":
                raise ValueError(f"{name!r}: the name is taken ('operator' is MONITOR_API_TOKEN's)")
            if len(token) < 16:
                raise ValueError(f"{name}: use a token of at least 16 characters")
            users[name] = token
        return users

    @field_validator("api_cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allow_private_networks", mode="before")
    @classmethod
    def _split_cidrs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allow_private_networks", mode="after")
    @classmethod
    def _strict_networks(cls, value: list[IPNetwork]) -> list[IPNetwork]:
        return [ipaddress.ip_network(str(net), strict=False) for net in value]

    @field_validator("default_interval", "poll_tick", "rules_reload_interval", "delivery_lease", "poll_min_interval",
                     "poll_max_interval", "max_backoff", "health_failing_after", "health_silent_min", "retention",
                     "housekeeping_interval", "per_host_delay", "shutdown_grace", "feed_lease", "rule_silent_min",
                     mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().rstrip("s") in ("0", "0.0"):
            return 0.0  # "0" is a valid delay; the field's own bound decides whether it is allowed
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _interval_bounds(self) -> Settings:
        budget = self.fetch_timeout + self.parse_timeout + self.extract_timeout
        if self.feed_lease <= budget:
            raise ValueError(f"MONITOR_FEED_LEASE ({self.feed_lease:g}s) must be longer than one feed's poll may take: "
                             f"MONITOR_FETCH_TIMEOUT + MONITOR_PARSE_TIMEOUT + MONITOR_EXTRACT_TIMEOUT = {budget:g}s")
        if self.poll_min_interval > self.poll_max_interval:
            raise ValueError(f"MONITOR_POLL_MIN_INTERVAL ({self.poll_min_interval:g}s) is longer than "
                             f"MONITOR_POLL_MAX_INTERVAL ({self.poll_max_interval:g}s)")
        return self

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @property
    def worker_count(self) -> int:
        """Parse/extract worker processes: the setting, or one per core."""
        return self.workers or (os.cpu_count() or 1)


def load_settings(**overrides: Any) -> Settings:
    """Build and validate settings; raise ConfigError naming the variable at fault."""
    from pydantic import ValidationError

    from monitor.errors import ConfigError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            (f"MONITOR_{str(err['loc'][0]).upper()}: " if err["loc"] else "")
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
