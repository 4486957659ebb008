"""Read operator YAML files safely (no object-constructing tags) and remember each mapping's line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError

LINE = "__line__"


class _SafeLineLoader(yaml.SafeLoader):
    """SafeLoader that stores the 1-based line of every mapping under the key ``__line__``."""


def _construct_mapping(loader: _SafeLineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE] = node.start_mark.line + 1
    return mapping


_SafeLineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path, what: str) -> Any:
    """Parse ``path``; raise ConfigError("file:line: ...") for unreadable or invalid YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        return yaml.load(text, Loader=_SafeLineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {problem}") from exc


def line_of(value: Any, default: int | str = "?") -> int | str:
    return value.get(LINE, default) if isinstance(value, dict) else default


def without_line(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != LINE}
