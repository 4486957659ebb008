"""Load a rules directory: named term lists and rule files → a compiled RuleSet.

Every YAML file in the directory is read: a file with ``lists:`` defines named term lists
(used in rules as ``$name``); a file with ``id:`` is one rule, a file with ``rules:`` several.
Errors name the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.errors import ConfigError
from monitor.rules.engine import AllNode, AnyNode, CompiledRule, Node, NotNode, Prefilter, RuleSet, TermNode
from monitor.rules.terms import Term, compile_term
from monitor.yamlfile import LINE, line_of, load_yaml, without_line

_LIST_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")


class RuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{0,63}$")
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    severity: str = Field("alert", pattern="^(alert|digest)$")
    routes: list[str] = Field(default_factory=list)
    match: Any


class _Compiler:
    def __init__(self, lists: dict[str, list[str]], where: str) -> None:
        self._lists = lists
        self._where = where
        self._terms: dict[str, Term] = {}
        self._line: int | str = "?"

    def fail(self, node: Any, message: str) -> ConfigError:
        return ConfigError(f"{self._where}:{line_of(node, self._line)}: {message}")

    def clause(self, node: Any, line: int | str) -> Node:
        self._line = line
        if isinstance(node, str):
            return self._term_or_list(node, line)
        if isinstance(node, list):
            return AnyNode(tuple(self.clause(child, line) for child in node))
        if not isinstance(node, dict):
            raise self.fail(node, f"a clause must be a term, a list or a mapping, got {type(node).__name__}")
        body = without_line(node)
        here = line_of(node, line)
        if len(body) != 1:
            raise self.fail(node, f"a clause mapping needs exactly one of any/all/not/terms, got {sorted(body)}")
        (key, value), = body.items()
        if key in ("any", "terms"):
            return AnyNode(tuple(self.clause(child, here) for child in self._list(value, key, node)))
        if key == "all":
            return AllNode(tuple(self.clause(child, here) for child in self._list(value, key, node)))
        if key == "not":
            return NotNode(self.clause(value, here))
        raise self.fail(node, f"unknown clause {key!r} (expected any, all, not or terms)")

    def _list(self, value: Any, key: str, node: Any) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise self.fail(node, f"'{key}' needs a non-empty list")
        return value

    def _term_or_list(self, text: str, line: int | str) -> Node:
        ref = _LIST_REF.match(text.strip())
        if ref:
            name = ref.group(1)
            if name not in self._lists:
                raise ConfigError(f"{self._where}:{line}: unknown term list ${name} (known: {sorted(self._lists)})")
            return AnyNode(tuple(TermNode(self._term(t, line)) for t in self._lists[name]))
        return TermNode(self._term(text, line))

    def terms(self) -> list[Term]:
        return list(self._terms.values())

    def _term(self, text: str, line: int | str) -> Term:
        if text not in self._terms:
            try:
                self._terms[text] = compile_term(text)
            except ValueError as exc:
                raise ConfigError(f"{self._where}:{line}: bad term {text!r}: {exc}") from exc
        return self._terms[text]


def _read_lists(path: Path, document: dict[str, Any], lists: dict[str, list[str]]) -> None:
    raw = document["lists"]
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:{line_of(document)}: 'lists' must map names to lists of terms")
    for name, terms in without_line(raw).items():
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise ConfigError(f"{path}:{line_of(raw)}: list {name!r} must be a list of strings")
        if name in lists:
            raise ConfigError(f"{path}:{line_of(raw)}: term list {name!r} is defined twice")
        lists[name] = terms


def _compile_rule(path: Path, raw: Any, lists: dict[str, list[str]], compilers: list[_Compiler]) -> CompiledRule:
    line = line_of(raw, 1)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}:{line}: a rule must be a mapping")
    try:
        model = RuleModel.model_validate(without_line(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "rule"
        raise ConfigError(f"{path}:{line}: rule field '{field}': {err['msg'].removeprefix('Value error, ')}") from exc
    compiler = _Compiler(lists, str(path))
    root = compiler.clause(model.match, line)
    compilers.append(compiler)
    return CompiledRule(model.id, model.title, model.description, model.severity,
                        tuple(model.routes), root, str(path))


def load_rules(directory: Path) -> RuleSet:
    """Compile every rule under ``directory``; ConfigError on the first problem found."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: rules directory not found")
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    documents = [(path, load_yaml(path, "rule file")) for path in files]
    lists: dict[str, list[str]] = {}
    for path, document in documents:
        if isinstance(document, dict) and "lists" in document:
            _read_lists(path, document, lists)
    rules: list[CompiledRule] = []
    compilers: list[_Compiler] = []
    seen: dict[str, str] = {}
    for path, document in documents:
        if not isinstance(document, dict):
            raise ConfigError(f"{path}:1: expected a mapping with 'id' (one rule), 'rules' or 'lists'")
        raw_rules = [document] if "id" in document else document.get("rules", [])
        if "id" not in document and "rules" not in document and "lists" not in document:
            raise ConfigError(f"{path}:{line_of(document, 1)}: expected 'id', 'rules' or 'lists'")
        for raw in raw_rules:
            rule = _compile_rule(path, raw, lists, compilers)
            if rule.id in seen:
                raise ConfigError(f"{path}:{line_of(raw, 1)}: rule id {rule.id!r} already defined in {seen[rule.id]}")
            seen[rule.id] = str(path)
            rules.append(rule)
    terms = {id(t): t for c in compilers for t in c.terms()}
    return RuleSet(tuple(rules), Prefilter(terms.values()))


__all__ = ["LINE", "load_rules"]
