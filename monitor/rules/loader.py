"""Load a rules directory: named term lists and rule files → a compiled RuleSet.

Every YAML file in the directory is read: a file with ``lists:`` defines named term lists
(used in rules as ``$name``); a file with ``id:`` is one rule, a file with ``rules:`` several.
Errors name the file and line. The clause grammar is documented in rules/README.md.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.errors import ConfigError
from monitor.models import Article
from monitor.rules.document import CONTENT_FIELDS, FIELDS
from monitor.rules.engine import CompiledRule, Example, RuleSet
from monitor.rules.nodes import AllNode, AnyNode, ExceptNode, LangNode, MinNode, Node, NotNode, TagsNode, TermsNode
from monitor.rules.prefilter import Prefilter
from monitor.rules.proximity import NearNode, SentenceNode
from monitor.rules.terms import Term, compile_regex, compile_sequence, compile_term
from monitor.rules.text import MAX_WITHIN_WORDS as MAX_WITHIN
from monitor.yamlfile import line_of, load_yaml, without_line

_LIST_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_LANG = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")
OPERATORS = ("any", "terms", "all", "not", "near", "sentence", "any_order", "regex", "lang", "tags")
MODIFIERS = ("in", "min", "within", "except")
MAX_MIN = 20  # the largest `min:` a clause may ask for
MAX_ORDER_PARTS = 5
EXAMPLE_FIELDS = ("title", "summary", "text", "url", "feed", "lang", "tags")


class RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{0,63}$")
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    severity: str = Field("alert", pattern="^(alert|digest)$")
    routes: list[str] = Field(default_factory=list)
    match: Any
    examples: Any = None


class _Compiler:
    """Compiles one rule's match expression; ``fail`` builds a file:line error for the node at hand."""

    def __init__(self, lists: dict[str, TermList], where: str, terms: dict[tuple[str, str], Term]) -> None:
        self._lists = lists
        self._where = where
        self._terms = terms  # shared across rules: one Term (and one pattern run per document) per text

    def fail(self, node: Any, line: int | str, message: str) -> ConfigError:
        return ConfigError(f"{self._where}:{line_of(node, line)}: {message}")

    def clause(self, node: Any, line: int | str, path: str, fields: tuple[str, ...]) -> Node:
        line = line_of(node, line)
        if isinstance(node, str):
            return self._grouped(*self._strings(node, line, path, fields), fields)
        if isinstance(node, list):
            return self._any(node, line, path, fields)
        if not isinstance(node, dict):
            hint = (" (YAML reads an unquoted on, off, yes, no, true or false as a boolean: quote the term, "
                    "e.g. \"on\")") if isinstance(node, bool) else ""
            kind = type(node).__name__
            raise self.fail(node, line, f"a clause must be a term, a list or a mapping, got {kind}{hint}")
        body = without_line(node)
        operators = [k for k in body if k in OPERATORS]
        unknown = [k for k in body if k not in OPERATORS and k not in MODIFIERS]
        if unknown:
            raise self.fail(node, line, f"unknown clause {unknown[0]!r} (expected one of {', '.join(OPERATORS)}; "
                                        f"modifiers {', '.join(MODIFIERS)})")
        if len(operators) != 1:
            raise self.fail(node, line, f"a clause mapping needs exactly one of {', '.join(OPERATORS)}, "
                                        f"got {sorted(operators) or 'none'}")
        key = operators[0]
        if "in" in body:
            fields = self._fields(body["in"], node, line)
        if "within" in body and key != "near":
            raise self.fail(node, line, "'within' belongs to a 'near' clause")
        here = path if key in ("any", "terms") else f"{path}/{key}"
        compiled = self._operator(key, body[key], node, line, here, fields)
        if "except" in body:
            if not isinstance(compiled, TermsNode):
                raise self.fail(node, line, "'except' masks the hits of a list of terms (any, terms, $list)")
            compiled = ExceptNode(compiled, self.clause(body["except"], line, f"{here}/except", fields))
        if "min" in body:
            minimum = body["min"]
            if not isinstance(minimum, int) or isinstance(minimum, bool) or not 1 <= minimum <= MAX_MIN:
                raise self.fail(node, line, f"'min' must be a whole number from 1 to {MAX_MIN}")
            if key in ("not", "lang", "tags"):
                raise self.fail(node, line, f"'min' counts term occurrences; a '{key}' clause has none")
            if isinstance(compiled, TermsNode):
                return TermsNode(compiled.entries, compiled.fields, minimum)
            return MinNode(compiled, minimum)
        return compiled

    def _operator(self, key: str, value: Any, node: Any, line: int | str, path: str,
                  fields: tuple[str, ...]) -> Node:
        handlers: dict[str, Callable[[], Node]] = {
            "any": lambda: self._any(self._list(value, key, node, line), line, path, fields),
            "terms": lambda: self._any(self._list(value, key, node, line), line, path, fields),
            "all": lambda: AllNode(tuple(self.clause(child, line, f"{path}[{i}]", fields)
                                         for i, child in enumerate(self._list(value, key, node, line)))),
            "not": lambda: NotNode(self.clause(value, line, path, fields), path),
            "near": lambda: self._near(value, node, line, path, fields),
            "sentence": lambda: self._sentence(value, node, line, path, fields),
            "any_order": lambda: self._any_order(value, node, line, path, fields),
            "regex": lambda: self._regex(value, node, line, path, fields),
            "lang": lambda: LangNode(frozenset(self._names(value, key, node, line, _LANG)), path),
            "tags": lambda: TagsNode(frozenset(self._names(value, key, node, line, None)), path),
        }
        return handlers[key]()

    def _any(self, items: list[Any], line: int | str, path: str, fields: tuple[str, ...]) -> Node:
        """Strings (terms and $lists) become one TermsNode; other items are clauses of their own."""
        entries: list[tuple[str, Term]] = []
        others: list[Node] = []
        for index, item in enumerate(items):
            here = f"{path}/any[{index}]"
            if isinstance(item, str):
                found, nodes = self._strings(item, line_of(item, line), here, fields)
                entries += found
                others += nodes
            else:
                others.append(self.clause(item, line, here, fields))
        return self._grouped(entries, others, fields)

    @staticmethod
    def _grouped(entries: list[tuple[str, Term]], others: list[Node], fields: tuple[str, ...]) -> Node:
        for node in [n for n in others if isinstance(n, TermsNode) and n.fields == fields and n.minimum == 1]:
            entries += node.entries
            others.remove(node)
        nodes = ([TermsNode(entries, fields)] if entries else []) + others
        return nodes[0] if len(nodes) == 1 else AnyNode(tuple(nodes))

    def _strings(self, text: str, line: int | str, path: str, fields: tuple[str, ...], within: tuple[str, ...] = ()
                 ) -> tuple[list[tuple[str, Term]], list[Node]]:
        """A term, or a $list: its strings as term entries (a list may name other lists), its clause items
        (any_order...) as nodes."""
        ref = _LIST_REF.match(text.strip())
        if not ref:
            term = self._term(text, line)
            return [(f"{path} {term.source!r}", term)], []
        name = ref.group(1)
        if name not in self._lists:
            raise self.fail(text, line, f"unknown term list ${name} (known: {sorted(self._lists)})")
        if name in within:
            raise self.fail(text, line, f"term list ${name} includes itself (through {' → '.join(within)})")
        entries: list[tuple[str, Term]] = []
        nodes: list[Node] = []
        defined = self._lists[name]
        where, self._where = self._where, defined.path  # errors inside the list name the list's file and line
        try:
            for index, item in enumerate(defined.items):
                if isinstance(item, str):
                    found, more = self._strings(item, line_of(item, defined.line), f"{path}/${name}", fields,
                                                (*within, name))
                    entries += found
                    nodes += more
                else:
                    nodes.append(self.clause(item, defined.line, f"{path}/${name}[{index}]", fields))
        finally:
            self._where = where
        return entries, nodes

    def _near(self, value: Any, node: Any, line: int | str, path: str, fields: tuple[str, ...]) -> Node:
        within = node.get("within") if isinstance(node, dict) else None
        if not isinstance(within, int) or isinstance(within, bool) or not 0 <= within <= MAX_WITHIN:
            raise self.fail(node, line, f"'near' needs 'within: N' words, a whole number from 0 to {MAX_WITHIN}")
        return NearNode(self._finding(value, "near", node, line, path, fields), within, path)

    def _finding(self, value: Any, key: str, node: Any, line: int | str, path: str,
                 fields: tuple[str, ...]) -> tuple[Node, ...]:
        items = self._list(value, key, node, line)
        if len(items) < 2:
            raise self.fail(node, line, f"'{key}' needs at least two clauses to bring together")
        children = []
        for index, item in enumerate(items):
            if isinstance(item, dict) and any(k in item for k in ("not", "lang", "tags")):
                raise self.fail(item, line, f"'{key}' needs clauses that find terms; 'not', 'lang' and 'tags' "
                                            "find none")
            children.append(self.clause(item, line, f"{path}[{index}]", fields))
        return tuple(children)

    def _sentence(self, value: Any, node: Any, line: int | str, path: str, fields: tuple[str, ...]) -> Node:
        """Every item holds within one sentence; ``not`` items must not hold in that sentence."""
        items = self._list(value, "sentence", node, line)
        if isinstance(items[0], dict) and any(k in items[0] for k in ("not", "lang", "tags")):
            raise self.fail(node, line, "the first item of 'sentence' must find terms (it picks the candidate "
                                        "sentences); put 'not', 'lang' or 'tags' items after it")
        return SentenceNode(tuple(self.clause(item, line, f"{path}[{i}]", fields) for i, item in enumerate(items)),
                            path)

    def _any_order(self, value: Any, node: Any, line: int | str, path: str, fields: tuple[str, ...]) -> Node:
        parts = self._list(value, "any_order", node, line)
        if not 2 <= len(parts) <= MAX_ORDER_PARTS or not all(isinstance(p, str) and p.strip() for p in parts):
            raise self.fail(node, line, f"'any_order' needs 2 to {MAX_ORDER_PARTS} non-empty terms")
        entries = []
        for order in itertools.permutations(str(p) for p in parts):
            term = self._cached(("order", "\x00".join(order)), partial(compile_sequence, list(order)), node, line)
            entries.append((f"{path} {term.source!r}", term))
        return TermsNode(entries, fields)

    def _regex(self, value: Any, node: Any, line: int | str, path: str, fields: tuple[str, ...]) -> Node:
        if not isinstance(value, str):
            raise self.fail(node, line, "'regex' needs one pattern (a string)")
        term = self._cached(("regex", str(value)), partial(compile_regex, str(value)), node, line)
        return TermsNode([(f"{path} {term.source!r}", term)], fields)

    def _fields(self, value: Any, node: Any, line: int | str) -> tuple[str, ...]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(n in FIELDS for n in names):
            raise self.fail(node, line, f"'in' names fields among {', '.join(FIELDS)}, got {value!r}")
        return tuple(dict.fromkeys(str(n) for n in names))

    def _names(self, value: Any, key: str, node: Any, line: int | str, pattern: re.Pattern[str] | None) -> list[str]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
            raise self.fail(node, line, f"'{key}' needs a name or a list of names")
        cleaned = [str(n).strip().lower() if pattern else str(n).strip() for n in names]
        if pattern is not None:
            bad = [n for n in cleaned if not pattern.match(n)]
            if bad:
                raise self.fail(node, line, f"'{key}': {bad[0]!r} is not a language code such as en, ko, zh, ja")
        return cleaned

    def _list(self, value: Any, key: str, node: Any, line: int | str) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise self.fail(node, line, f"'{key}' needs a non-empty list")
        return value

    def _term(self, text: str, line: int | str) -> Term:
        return self._cached(("term", str(text)), partial(compile_term, str(text)), text, line)

    def _cached(self, key: tuple[str, str], build: Callable[[], Term], node: Any, line: int | str) -> Term:
        if key not in self._terms:
            try:
                self._terms[key] = build()
            except ValueError as exc:
                raise self.fail(node, line, f"bad term {key[1]!r}: {exc}") from exc
        return self._terms[key]


@dataclass(frozen=True)
class TermList:
    """A named term list as written: its items, and where (file, line) it is defined."""

    items: list[Any]
    path: str
    line: int | str


def _read_lists(path: Path, document: dict[str, Any], lists: dict[str, TermList]) -> None:
    raw = document["lists"]
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:{line_of(document)}: 'lists' must map names to lists of terms")
    for name, terms in without_line(raw).items():
        if not isinstance(terms, list) or not terms or not all(
                (isinstance(t, str) and t.strip()) or isinstance(t, dict) for t in terms):
            raise ConfigError(f"{path}:{line_of(name, line_of(raw))}: list {name!r} must be a non-empty list of "
                              "terms (strings) or clauses such as any_order")
        if name in lists:
            raise ConfigError(f"{path}:{line_of(name, line_of(raw))}: term list {name!r} is defined twice")
        lists[name] = TermList(terms, str(path), line_of(name, line_of(raw)))


def _examples(path: Path, raw: Any, line: int | str) -> tuple[Example, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not set(without_line(raw)) <= {"match", "no_match"}:
        raise ConfigError(f"{path}:{line_of(raw, line)}: 'examples' must be a mapping with 'match' and/or "
                          "'no_match' lists")
    found: list[Example] = []
    for key, expect in (("match", True), ("no_match", False)):
        items = raw.get(key) or []
        if not isinstance(items, list):
            raise ConfigError(f"{path}:{line_of(raw, line)}: examples '{key}' must be a list")
        for item in items:
            where = f"{path}:{line_of(item, line_of(raw, line))}"
            found.append(Example(_example_article(item, where), expect, where))
    return tuple(found)


def _example_article(item: Any, where: str) -> Article:
    """An example is a text, or a mapping of article fields (title, summary, text, url, feed, lang, tags)."""
    if isinstance(item, str):
        return Article(title="", summary="", text=str(item), text_source="extracted", lang=None, url=None, feed="")
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: an example is a text or a mapping of {', '.join(EXAMPLE_FIELDS)}")
    body = without_line(item)
    unknown = sorted(set(body) - set(EXAMPLE_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown example field {unknown[0]!r} (expected {', '.join(EXAMPLE_FIELDS)})")
    tags = body.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not all(isinstance(body.get(k, ""), str | None) for k in EXAMPLE_FIELDS if k != "tags"):
        raise ConfigError(f"{where}: example fields must be strings (tags: a list of strings)")
    return Article(title=str(body.get("title") or ""), summary=str(body.get("summary") or ""),
                   text=str(body.get("text") or ""), text_source="extracted",
                   lang=str(body["lang"]) if body.get("lang") else None,
                   url=str(body["url"]) if body.get("url") else None, feed=str(body.get("feed") or ""),
                   tags=tuple(str(t) for t in tags))


def _compile_rule(path: Path, raw: Any, lists: dict[str, TermList], terms: dict[tuple[str, str], Term]
                  ) -> CompiledRule:
    line = line_of(raw, 1)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:{line}: a rule must be a mapping")
    try:
        model = RuleModel.model_validate(without_line(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "rule"
        key = next((k for k in raw if err["loc"] and k == err["loc"][0]), None)
        raise ConfigError(f"{path}:{line_of(key, line)}: rule field '{field}': "
                          f"{err['msg'].removeprefix('Value error, ')}") from exc
    compiler = _Compiler(lists, str(path), terms)
    match_key = next(k for k in raw if k == "match")
    root = compiler.clause(model.match, line_of(match_key, line), "match", CONTENT_FIELDS)
    return CompiledRule(model.id, model.title, model.description, model.severity, tuple(model.routes), root,
                        str(path), _examples(path, raw.get("examples"), line))


def load_rules(directory: Path) -> RuleSet:
    """Compile every rule under ``directory``; ConfigError on the first problem found."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: rules directory not found")
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    documents = [(path, load_yaml(path, "rule file", locate=True)) for path in files]
    lists: dict[str, TermList] = {}
    for path, document in documents:
        if isinstance(document, dict) and "lists" in document:
            _read_lists(path, document, lists)
    rules: list[CompiledRule] = []
    terms: dict[tuple[str, str], Term] = {}
    seen: dict[str, str] = {}
    for path, document in documents:
        if not isinstance(document, dict):
            raise ConfigError(f"{path}:1: expected a mapping with 'id' (one rule), 'rules' or 'lists'")
        if "id" not in document and "rules" not in document and "lists" not in document:
            raise ConfigError(f"{path}:{line_of(document, 1)}: expected 'id', 'rules' or 'lists'")
        raw_rules = [document] if "id" in document else document.get("rules", [])
        if not isinstance(raw_rules, list):
            raise ConfigError(f"{path}:{line_of(document, 1)}: 'rules' must be a list of rules")
        for raw in raw_rules:
            rule = _compile_rule(path, raw, lists, terms)
            if rule.id in seen:
                raise ConfigError(f"{path}:{line_of(raw, 1)}: rule id {rule.id!r} already defined in {seen[rule.id]}")
            seen[rule.id] = str(path)
            rules.append(rule)
    fields = set().union(*(_searched_fields(rule.root) for rule in rules))
    return RuleSet(tuple(rules), Prefilter.of(terms.values(), fields))


def _searched_fields(node: Node) -> set[str]:
    """The fields the terms under ``node`` are searched in (the prefilter reads only those)."""
    if isinstance(node, TermsNode):
        return set(node.fields)
    children: list[Node] = list(getattr(node, "children", ()))
    children += [child for name in ("child", "mask") if (child := getattr(node, name, None)) is not None]
    return set().union(*(_searched_fields(child) for child in children))


__all__ = ["load_rules"]
