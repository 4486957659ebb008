"""Load and validate feeds.yaml into FeedSource values, with errors naming file, line, entry and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor.durations import parse_duration
from monitor.errors import ConfigError
from monitor.models import FeedSource
from monitor.yamlfile import line_of, load_yaml, without_line


class FeedEntryModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str
    name: str = Field(min_length=1, max_length=200)
    lang: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    interval: float | None = None
    tags: list[str] = Field(default_factory=list)
    fetch_articles: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
        return value

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return [tag.strip() for tag in value if tag.strip()]


def load_feeds(path: Path) -> list[FeedSource]:
    """Read feeds.yaml; raise ConfigError("file:line: feeds[i] (name): field: message")."""
    document = load_yaml(path, "feeds file")
    if not isinstance(document, dict) or not isinstance(document.get("feeds"), list):
        raise ConfigError(f"{path}: expected a top-level 'feeds:' list")
    return _validate_entries(path, document["feeds"])


def _validate_entries(path: Path, items: list[Any]) -> list[FeedSource]:
    feeds: list[FeedSource] = []
    seen_names: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: feeds[{index}]: expected a mapping with url and name")
        line = line_of(item)
        item = without_line(item)
        label = f"{path}:{line}: feeds[{index}]" + (f" ({item['name']!r})" if "name" in item else "")
        try:
            model = FeedEntryModel.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            raise ConfigError(f"{label}: field '{field}': {err['msg'].removeprefix('Value error, ')}") from exc
        if model.name in seen_names:
            raise ConfigError(f"{label}: field 'name': duplicate of feeds[{seen_names[model.name]}]")
        seen_names[model.name] = index
        feeds.append(
            FeedSource(
                name=model.name,
                url=model.url,
                lang=model.lang,
                interval=model.interval,
                tags=tuple(model.tags),
                fetch_articles=model.fetch_articles,
            )
        )
    return feeds
