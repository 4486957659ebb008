"""Read labelled corpora for `monitor rules test/eval`: JSON-lines documents and topic labels."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from monitor.errors import ConfigError
from monitor.models import Article

MAX_LINE_CHARS = 20_000_000


@dataclass(frozen=True)
class CorpusDocument:
    """One corpus line: ``{id, title, text, lang?, url?, published?}`` (also ``summary``, ``feed``, ``tags``)."""

    id: str
    article: Article
    published: str | None = None


@dataclass(frozen=True)
class Labels:
    """One label line: rule id → 0/1, and the rule ids whose label was a judgment call."""

    values: dict[str, bool]
    unsure: frozenset[str]


def _lines(path: str) -> Iterator[tuple[str, int, str]]:
    """(where, line number, line) of a file, or of standard input for ``-``."""
    handle: IO[str]
    if path == "-":
        handle, where = sys.stdin, "<stdin>"
    else:
        try:
            handle, where = Path(path).open(encoding="utf-8"), path
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield where, number, line
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text: {exc.reason}") from exc
    finally:
        if handle is not sys.stdin:
            handle.close()


def _record(where: str, number: int, line: str) -> dict[str, Any]:
    if len(line) > MAX_LINE_CHARS:
        raise ConfigError(f"{where}:{number}: line longer than {MAX_LINE_CHARS} characters")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}:{number}: invalid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise ConfigError(f"{where}:{number}: expected a JSON object")
    if not isinstance(record.get("id"), str | int) or isinstance(record.get("id"), bool):
        raise ConfigError(f"{where}:{number}: 'id' is missing or not a string")
    return record


def _text(record: dict[str, Any], key: str, where: str, number: int) -> str:
    value = record.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{where}:{number}: '{key}' must be a string")
    return value


def read_documents(path: str) -> Iterator[CorpusDocument]:
    """Documents of a corpus file (``-`` = standard input), one at a time; ConfigError names file:line."""
    for where, number, line in _lines(path):
        record = _record(where, number, line)
        tags = record.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"{where}:{number}: 'tags' must be a list of strings")
        text = {key: _text(record, key, where, number) for key in ("title", "summary", "text", "lang", "url", "feed")}
        article = Article(title=text["title"], summary=text["summary"], text=text["text"], text_source="extracted",
                          lang=text["lang"] or None, url=text["url"] or None, feed=text["feed"], tags=tuple(tags))
        published = record.get("published")
        yield CorpusDocument(str(record["id"]), article, published if isinstance(published, str) else None)


def read_labels(path: str, rule_ids: set[str]) -> dict[str, Labels]:
    """Labels per document id, for the given rules; a value other than 0/1 is an error."""
    labels: dict[str, Labels] = {}
    for where, number, line in _lines(path):
        record = _record(where, number, line)
        values: dict[str, bool] = {}
        for rule in rule_ids:
            if rule in record:
                if record[rule] not in (0, 1) or isinstance(record[rule], float):
                    raise ConfigError(f"{where}:{number}: label {rule!r} must be 0 or 1")
                values[rule] = bool(record[rule])
        unsure = record.get("unsure") or []
        if not isinstance(unsure, list):
            raise ConfigError(f"{where}:{number}: 'unsure' must be a list of rule ids")
        labels[str(record["id"])] = Labels(values, frozenset(str(u) for u in unsure))
    return labels


def read_label_files(paths: list[str], rule_ids: set[str]) -> dict[str, Labels]:
    """Labels of several files, merged per document id: a document may be labelled in several files for
    different rules, but two files that disagree on one rule of one document are an error naming both."""
    merged: dict[str, Labels] = {}
    origin: dict[tuple[str, str], str] = {}
    for path in paths:
        for doc_id, entry in read_labels(path, rule_ids).items():
            before = merged.get(doc_id)
            for rule, value in entry.values.items():
                if before is not None and before.values.get(rule, value) != value:
                    raise ConfigError(f"{path}: document {doc_id!r}: label {rule!r} disagrees with "
                                      f"{origin[(doc_id, rule)]}")
                origin.setdefault((doc_id, rule), path)
            if before is None:
                merged[doc_id] = entry
            else:
                merged[doc_id] = Labels({**before.values, **entry.values}, before.unsure | entry.unsure)
    return merged
