"""destinations.yaml: named Slack, email and console destinations and the default routes, with secrets taken
from the environment (``${NAME}``) and never shown in errors or logs."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from monitor.errors import ConfigError
from monitor.logs import redact_secrets
from monitor.notify.cron import cron_trigger
from monitor.rules.engine import RuleSet
from monitor.yamlfile import line_of, load_yaml, without_line

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PLACEHOLDER = re.compile(r"__monitor_env_([A-Za-z_][A-Za-z0-9_]*?)__")
_NAME = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MASK = "****"


def _loopback(host: str | None) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _address(value: str) -> str:
    """One e-mail address, no display-name tricks and no line breaks (header injection)."""
    if any(c in value for c in "\r\n\0") or parseaddr(value)[1] != value.strip() or "@" not in value:
        raise ValueError("must be a plain e-mail address such as desk@example.org")
    return value.strip()


class QuietHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError("must be a time of day as HH:MM (00:00 to 23:59)")
        return value

    @model_validator(mode="after")
    def _window(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet_hours start and end must differ")
        return self


class Smtp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "tls", "none"] = "starttls"
    username: SecretStr | None = None
    password: SecretStr | None = None
    timeout: float = Field(30.0, gt=0, le=300)

    @model_validator(mode="after")
    def _safe(self) -> Smtp:
        if self.tls == "none" and not _loopback(self.host):
            raise ValueError("tls: none is allowed only for a loopback SMTP server (127.0.0.1, ::1, localhost)")
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self


class DestinationModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=_NAME)
    kind: Literal["slack", "email", "console"]
    mode: Literal["immediate", "digest"] = "immediate"
    schedule: str | None = None
    timezone: str = "UTC"
    quiet_hours: QuietHours | None = None
    # slack
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    base_url: str | None = None
    timeout: float | None = Field(None, gt=0, le=300)  # seconds for one Slack request (default 15)
    # email
    smtp: Smtp | None = None
    sender: str | None = Field(None, alias="from")
    to: list[str] = Field(default_factory=list)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @field_validator("to")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Asia/Seoul, UTC)") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DestinationModel:
        if self.mode == "digest":
            if not self.schedule:
                raise ValueError("a digest destination needs schedule (cron, e.g. \"0 8 * * *\")")
            try:
                cron_trigger(self.schedule, ZoneInfo(self.timezone))
            except ValueError as exc:
                raise ValueError(f"schedule {self.schedule!r} is not a five-field cron expression: {exc}") from exc
        elif self.schedule:
            raise ValueError("schedule belongs to mode: digest")
        elif self.quiet_hours is not None:
            raise ValueError("quiet_hours hold back non-alert items, and an immediate destination receives only "
                             "alert items (they are never held): give quiet_hours to a digest destination")
        getattr(self, f"_check_{self.kind}")()
        return self

    def _check_slack(self) -> None:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("a slack destination needs webhook_url, or token with channel (not both)")
        if self.token is not None and not self.channel:
            raise ValueError("a slack bot token needs channel (e.g. \"#trade\")")
        for label, url in (("webhook_url", self.webhook_url.get_secret_value() if self.webhook_url else None),
                           ("base_url", self.base_url)):
            if url is not None:
                parts = urlsplit(url)
                if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
                    raise ValueError(f"{label} must be an https URL (http only to a loopback address)")
        self._no_fields("smtp", "sender")
        if self.to:
            raise ValueError("'to' belongs to an email destination")

    def _check_email(self) -> None:
        if self.smtp is None or self.sender is None or not self.to:
            raise ValueError("an email destination needs smtp, from and to")
        self._no_fields("webhook_url", "token", "channel", "base_url", "timeout")

    def _check_console(self) -> None:
        self._no_fields("webhook_url", "token", "channel", "base_url", "timeout", "smtp", "sender")
        if self.to:
            raise ValueError("'to' belongs to an email destination")

    def _no_fields(self, *names: str) -> None:
        for name in names:
            if getattr(self, name) is not None:
                shown = "from" if name == "sender" else name
                raise ValueError(f"'{shown}' does not belong to a {self.kind} destination")


@dataclass(frozen=True)
class Destinations:
    """The destinations by name, in file order, and the routes of rules that name none."""

    items: tuple[DestinationModel, ...]
    default_routes: tuple[str, ...]
    source: str  # the file, or "embedded default"

    def get(self, name: str) -> DestinationModel | None:
        return next((d for d in self.items if d.name == name), None)

    def routes_for(self, routes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        return tuple(routes) or self.default_routes

    def secrets(self) -> list[str]:
        """Every secret value of the file: webhook URLs (and their paths, which hold the secret), tokens,
        SMTP credentials."""
        values: list[str] = []
        for item in self.items:
            if item.webhook_url is not None:
                url = item.webhook_url.get_secret_value()
                values += [url, urlsplit(url).path]
            if item.token is not None:
                values.append(item.token.get_secret_value())
            if item.smtp is not None:
                values += [s.get_secret_value() for s in (item.smtp.username, item.smtp.password) if s is not None]
        return [v for v in values if len(v) >= 6]



EMBEDDED = Destinations((DestinationModel.model_validate({"name": "console", "kind": "console"}),), ("console",),
                        "embedded default")


def load_destinations(path: Path | None, env: dict[str, str] | None = None) -> Destinations:
    """``path`` (None: ./destinations.yaml if it exists, else the embedded console default). Errors name the
    file, line, destination and field; a secret's value never appears in them."""
    if path is None:
        if not Path("destinations.yaml").is_file():
            return EMBEDDED
        path = Path("destinations.yaml")
    if not path.is_file():
        raise ConfigError(f"{path}: destinations file not found (MONITOR_DESTINATIONS_FILE)")
    # ${NAME} is written unquoted even inside a flow mapping ({password: ${SMTP_PASSWORD}}), where YAML
    # reads "{" as an indicator: each reference becomes a plain placeholder word before parsing and the
    # variable's value replaces it after (a value never goes through the YAML parser: no injection).
    document = load_yaml(path, "destinations file", prepare=lambda text: _VARIABLE.sub(r"__monitor_env_\1__", text))
    if not isinstance(document, dict) or not isinstance(document.get("destinations"), list):
        raise ConfigError(f"{path}: expected a top-level 'destinations:' list")
    environment = dict(os.environ) if env is None else env
    items: list[DestinationModel] = []
    for index, raw in enumerate(document["destinations"]):
        items.append(_destination(path, index, raw, environment))
    names = [d.name for d in items]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{path}: destination name {name!r} is used twice")
    routes = document.get("default_routes", names[:1])
    if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
        raise ConfigError(f"{path}: default_routes must be a list of destination names")
    unknown = [r for r in routes if r not in names]
    if unknown:
        raise ConfigError(f"{path}: default_routes names unknown destination {unknown[0]!r} (known: {names})")
    loaded = Destinations(tuple(items), tuple(routes), str(path))
    redact_secrets(loaded.secrets())  # never in a log line, whatever logs it
    return loaded


def _destination(path: Path, index: int, raw: Any, env: dict[str, str]) -> DestinationModel:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: destinations[{index}]: expected a mapping with name and kind")
    line = line_of(raw)
    label = f"destinations[{index}]" + (f" ({raw['name']!r})" if isinstance(raw.get("name"), str) else "")
    body = _substitute(without_line(raw), env, f"{path}:{line}: {label}")
    try:
        return DestinationModel.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        key = next((k for k in raw if err["loc"] and k == err["loc"][0]), None)
        # err["msg"] only: err["input"] may be a secret and is never shown
        message = str(err["msg"]).removeprefix("Value error, ")
        where = f"field '{field}': " if field else ""
        raise ConfigError(f"{path}:{line_of(key, line)}: {label}: {where}{message}") from None


def _substitute(value: Any, env: dict[str, str], where: str, key: str = "") -> Any:
    """``${NAME}`` replaced by the environment variable; a missing one is an error naming it (not a value)."""
    if isinstance(value, dict):
        return {k: _substitute(v, env, where, str(k)) for k, v in without_line(value).items()}
    if isinstance(value, list):
        return [_substitute(v, env, where, key) for v in value]
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{where}: field '{key}': environment variable {name} is not set")
            return env[name]

        return _PLACEHOLDER.sub(replace, str(value))
    return value


def redacted(destination: DestinationModel) -> dict[str, object]:
    """The destination as shown to people: secrets as ****, the webhook as its host only."""
    shown: dict[str, object] = {"name": destination.name, "kind": destination.kind, "mode": destination.mode}
    if destination.mode == "digest" and destination.schedule:
        zone = ZoneInfo(destination.timezone)
        upcoming = cron_trigger(destination.schedule, zone).get_next_fire_time(None, datetime.now(zone))
        shown.update(schedule=destination.schedule, timezone=destination.timezone,
                     next_digest=f"{upcoming:%Y-%m-%d %H:%M %Z}" if upcoming else None)
    if destination.quiet_hours:
        shown["quiet_hours"] = f"{destination.quiet_hours.start}-{destination.quiet_hours.end}"
    if destination.webhook_url is not None:
        shown["webhook"] = f"https://{urlsplit(destination.webhook_url.get_secret_value()).hostname}/{_MASK}"
    if destination.token is not None:
        shown.update({"token": _MASK, "channel": destination.channel})
    if destination.smtp is not None:
        shown["smtp"] = f"{destination.smtp.host}:{destination.smtp.port} ({destination.smtp.tls})"
        shown.update({"from": destination.sender, "to": list(destination.to)})
    return shown



def unknown_routes(rules: RuleSet, destinations: Destinations) -> list[str]:
    """One line per rule route that names no destination ("file: rule 'id' routes to unknown 'x'")."""
    known = {d.name for d in destinations.items}
    return [f"{rule.source}: rule {rule.id!r} routes to unknown destination {route!r} "
            f"(known in {destinations.source}: {sorted(known)})"
            for rule in rules.rules for route in rule.routes if route not in known]
