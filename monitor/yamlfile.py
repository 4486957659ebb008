"""Read operator YAML files safely (no object-constructing tags) and remember where things are written.

Every mapping carries its 1-based line under the key ``__line__``; with ``locate=True`` every string is
a :class:`Located` that knows its own line, so errors about one term or one example can name it.
A key written twice in one mapping is an error (plain YAML loaders silently keep the last one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError

LINE = "__line__"


class Located(str):
    """A string read from a YAML file, with the line it was written on."""

    __slots__ = ("line",)
    line: int


class _SafeLineLoader(yaml.SafeLoader):
    """SafeLoader that stores the line of every mapping under ``__line__`` and refuses duplicate keys."""


class _LocatingLoader(_SafeLineLoader):
    """... and makes every string a Located."""


def _construct_mapping(loader: _SafeLineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # an unhashable key: construct_mapping reports it
            break
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is written twice in one mapping",
                                                    key_node.start_mark)
        seen.add(key)
    mapping = loader.construct_mapping(node, deep=True)
    mapping[LINE] = node.start_mark.line + 1
    return mapping


def _construct_located(loader: _LocatingLoader, node: yaml.ScalarNode) -> Located:
    value = Located(loader.construct_scalar(node))
    value.line = node.start_mark.line + 1
    return value


_SafeLineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LocatingLoader.add_constructor("tag:yaml.org,2002:str", _construct_located)


def load_yaml(path: Path, what: str, locate: bool = False, prepare: Callable[[str], str] | None = None) -> Any:
    """Parse ``path``; raise ConfigError("file:line: ...") for unreadable or invalid YAML, and for tags
    that would construct objects (``!!python/object``...: a safe loader knows none of them). ``prepare``
    rewrites the text before parsing (it must keep the lines where they are)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {getattr(exc, 'strerror', None) or exc}") from exc
    if prepare is not None:
        text = prepare(text)
    loader = _LocatingLoader if locate else _SafeLineLoader
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "could not determine a constructor for the tag" in problem:
            tag = problem.rsplit(" ", 1)[-1]
            raise ConfigError(f"{where}: YAML tag {tag} is refused: tags that construct objects are not allowed"
                              ) from exc
        raise ConfigError(f"{where}: invalid YAML: {problem}") from exc


def line_of(value: Any, default: int | str = "?") -> int | str:
    if isinstance(value, Located):
        return value.line
    return value.get(LINE, default) if isinstance(value, dict) else default


def without_line(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != LINE}
