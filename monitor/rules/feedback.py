"""Analysts' judgements as test data: the labelled corpus they make (`monitor labels export`, `monitor rules
eval --feedback`) and what a rule change does to them (`monitor rules replay`: fixed or broken)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.models import Article
from monitor.rules.corpus import CorpusDocument, Labels
from monitor.rules.engine import RuleSet
from monitor.store.db import Database
from monitor.store.history import StoredArticle, articles_by_id
from monitor.store.judgements import Judgement, in_force, list_judgements

TagsOf = Callable[[str], tuple[str, ...]]


def document_id(article_id: int) -> str:
    """The corpus id of a stored article (``article-17``)."""
    return f"article-{article_id}"


def as_article(stored: StoredArticle, tags_of: TagsOf = lambda _feed: ()) -> Article:
    return Article(title=stored.title, summary=stored.summary, text=stored.text,
                   text_source="extracted" if stored.text_source == "extracted" else "summary",
                   lang=stored.lang, url=stored.url, feed=stored.feed, tags=tags_of(stored.feed))


@dataclass(frozen=True)
class Judged:
    """The judgements in force and the stored articles they are about."""

    judgements: list[Judgement]
    articles: dict[int, StoredArticle]

    def labels(self) -> dict[str, Labels]:
        values: dict[str, dict[str, bool]] = {}
        for judgement in self.judgements:
            values.setdefault(document_id(judgement.article_id), {})[judgement.rule] = judgement.label
        return {doc_id: Labels(rules, frozenset()) for doc_id, rules in values.items()}

    def documents(self, tags_of: TagsOf = lambda _feed: ()) -> Iterator[CorpusDocument]:
        for article_id, stored in sorted(self.articles.items()):
            yield CorpusDocument(document_id(article_id), as_article(stored, tags_of))


def judged(db: Database, since: datetime | None = None) -> Judged:
    """The newest judgement of each (article, rule) sent since ``since`` (all when None), with its article."""
    judgements = in_force(list_judgements(db, since))
    articles = {a.id: a for a in articles_by_id(db, [j.article_id for j in judgements])}
    return Judged([j for j in judgements if j.article_id in articles], articles)


def label_lines(found: Judged) -> Iterator[dict[str, Any]]:
    """One labels-format line per judged article: ``{id, <rule>: 0|1, unsure, evidence, judged_by, …}``; the
    evidence of a rule is the analyst's comment (or the verdict)."""
    by_article: dict[int, list[Judgement]] = {}
    for judgement in found.judgements:
        by_article.setdefault(judgement.article_id, []).append(judgement)
    for article_id, judgements in sorted(by_article.items()):
        stored = found.articles[article_id]
        line: dict[str, Any] = {"id": document_id(article_id)}
        line.update({j.rule: int(j.label) for j in judgements})
        line["unsure"] = []
        line["evidence"] = {j.rule: j.comment or j.verdict.replace("_", " ") for j in judgements if j.label}
        line["comments"] = {j.rule: j.comment for j in judgements if j.comment}
        line["judged_by"] = {j.rule: j.author for j in judgements}
        line["judged_at"] = {j.rule: j.created_at.isoformat() for j in judgements}
        line["url"], line["title"] = stored.url, stored.title
        yield line


_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def json_line(record: dict[str, Any]) -> str:
    """One JSON line, readable text (not ASCII-escaped) but with the characters that some readers take for a
    line break (U+2028, U+2029, NEL) escaped, so that a line of a JSON-lines file is always one record."""
    text = json.dumps(record, ensure_ascii=False)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    return text


def corpus_line(stored: StoredArticle) -> dict[str, Any]:
    """A stored article as a corpus line (``monitor rules eval --corpus``)."""
    return {"id": document_id(stored.id), "title": stored.title, "summary": stored.summary, "text": stored.text,
            "lang": stored.lang, "url": stored.url, "feed": stored.feed}


@dataclass(frozen=True)
class Effect:
    """What the current rules do to a judgement: ``fixed`` (the stored matches disagreed with it, the rules
    now agree), ``broken`` (they agreed, the rules now disagree), or ``kept``."""

    kind: str
    judgement: Judgement
    stored: bool  # a match of the rule is stored for the article
    now: bool  # the current rules match it


def effects(found: Judged, rules: RuleSet, tags_of: TagsOf = lambda _feed: ()) -> list[Effect]:
    """Every judgement in force, compared with the stored matches and with what ``rules`` match now."""
    matched = {article_id: {m.rule_id for m in rules.match(as_article(stored, tags_of))}
               for article_id, stored in found.articles.items()}
    result = []
    for judgement in found.judgements:
        stored = judgement.rule in found.articles[judgement.article_id].rules
        now = judgement.rule in matched[judgement.article_id]
        kind = "kept" if stored == now else ("fixed" if now == judgement.label else "broken")
        result.append(Effect(kind, judgement, stored, now))
    return result
