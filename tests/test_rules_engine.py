"""Rule loading and the matcher engine: terms, CJK folding, nesting, explanations, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.models import Article
from monitor.rules.document import Document
from monitor.rules.loader import load_rules

ROOT = Path(__file__).parent.parent


def article(title: str = "", text: str = "", summary: str = "") -> Article:
    return Article(title=title, summary=summary, text=text, text_source="extracted", lang=None, url=None, feed="t")


def write_rules(tmp_path: Path, body: str, name: str = "r.yaml") -> Path:
    (tmp_path / name).write_text(body, encoding="utf-8")
    return tmp_path


def rule_matches(tmp_path: Path, match: str, **fields: str) -> bool:
    write_rules(tmp_path, f"id: r\ntitle: R\nmatch: {match}\n")
    return bool(load_rules(tmp_path).match(article(**fields)))


@pytest.mark.parametrize(("match", "text", "expected"), [
    ("tariff", "New TARIFFS were announced", True),
    ("tariff", "Tariffication is a word", False),
    ("curb", "Tokyo curbed exports", True),
    ("FTA", "talks on the FTA resumed", True),
    ("FTA", "the Mufta group and fta lowercase", False),
    ("FTA", "한중 FTA를 논의했다", True),
    ("export control", "new export-controls on chips", True),
    ("关税", "美國宣布對中國商品加徵關稅", True),
    ("中日韩", "中日韓領袖峰會在東京舉行", True),
    ("한중일", "한중일 정상회의가 열렸다", True),
    ("ＦＴＡ", "FTA talks", True),
    ("'negotiat*'", "negotiations resumed", True),
])
def test_terms(tmp_path: Path, match: str, text: str, expected: bool) -> None:
    assert rule_matches(tmp_path, match, text=text) is expected


def test_nested_all_any_not_and_lists(tmp_path: Path) -> None:
    (tmp_path / "lists.yaml").write_text("lists:\n  places: [Seoul, 서울]\n")
    write_rules(tmp_path, """
id: r
title: R
match:
  all:
    - any: [summit, 정상회의]
    - $places
    - not: {any: [Camp David]}
""")
    rules = load_rules(tmp_path)
    assert rules.match(article(text="A summit in Seoul."))
    assert rules.match(article(text="서울에서 정상회의가 열렸다"))
    assert not rules.match(article(text="A summit in Seoul and at Camp David."))
    assert not rules.match(article(text="A summit in Tokyo."))


def test_explanation_has_clause_path_hits_offsets_and_sentence(tmp_path: Path) -> None:
    write_rules(tmp_path, "id: r\ntitle: R\nmatch:\n  all: [tariff, 'steel']\n")
    text = "Markets were calm. Korea cut its tariff on steel imports. Nothing else."
    (match,) = load_rules(tmp_path).match(article(title="Trade news", text=text))
    ex = match.explanation
    assert ex.snippet == "Korea cut its tariff on steel imports."
    assert ex.snippet_field == "text"
    hit = next(h for h in ex.hits if h.term == "tariff")
    assert (hit.field, text[hit.start:hit.end]) == ("text", "tariff")
    assert any("all[0]" in c and "tariff" in c for c in ex.clauses)


def test_offsets_map_back_through_width_folding(tmp_path: Path) -> None:
    write_rules(tmp_path, "id: r\ntitle: R\nmatch: FTA\n")
    text = "ﬁrst: the ＦＴＡ talks"
    (match,) = load_rules(tmp_path).match(article(text=text))
    hit = match.explanation.hits[0]
    assert text[hit.start:hit.end] == "ＦＴＡ"


@pytest.mark.parametrize(("body", "fragment"), [
    ("id: r\ntitle: R\nmatch: {sometimes: [x]}\n", "unknown clause 'sometimes'"),
    ("id: r\ntitle: R\nmatch: $nolist\n", "unknown term list $nolist"),
    ("id: Bad Id\ntitle: R\nmatch: x\n", "rule field 'id'"),
    ("id: r\ntitle: R\nseverity: loud\nmatch: x\n", "rule field 'severity'"),
    ("id: r\ntitle: R\nmatch: !!python/object/apply:os.system ['true']\n", "is refused"),
    ("id: r\ntitle: R\nmatch:\n  all: []\n", "non-empty list"),
    ("id: r\ntitle: R\nmatch: [\n", "invalid YAML"),
])
def test_rule_errors_name_file_and_line(tmp_path: Path, body: str, fragment: str) -> None:
    write_rules(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_rules(tmp_path)
    assert str(tmp_path / "r.yaml") + ":" in str(err.value) and fragment in str(err.value)


def test_duplicate_rule_ids_are_refused(tmp_path: Path) -> None:
    write_rules(tmp_path, "id: r\ntitle: R\nmatch: x\n", "a.yaml")
    write_rules(tmp_path, "id: r\ntitle: R2\nmatch: y\n", "b.yaml")
    with pytest.raises(ConfigError, match="already defined"):
        load_rules(tmp_path)


def test_shipped_rules_load_with_the_four_ids() -> None:
    rules = load_rules(ROOT / "rules")
    assert sorted(rules.ids()) == ["export-control", "fta-round", "tariff", "trilateral-summit"]


@pytest.mark.parametrize(("text", "rule", "expected"), [
    ("中日韓領袖峰會周三在東京結束", "trilateral-summit", True),
    ("The US-Japan-South Korea trilateral summit at Camp David", "trilateral-summit", False),
    ("한국과 중국이 한중 자유무역협정(FTA) 2단계 협상에 속도를 붙이고 있다", "fta-round", True),
    ("Washington imposed 25% tariffs on cars and auto parts", "tariff", True),
    ("The utility raised its special electricity tariff for households", "tariff", False),
    ("Japan tightened export controls on semiconductor materials to South Korea", "export-control", True),
    ("Exports rose 5% in October", "export-control", False),
])
def test_shipped_rules_on_clear_cases(text: str, rule: str, expected: bool) -> None:
    doc = Document.of(article(text=text))
    (compiled,) = [r for r in load_rules(ROOT / "rules").rules if r.id == rule]
    assert (compiled.match(doc) is not None) is expected


def test_prefilter_never_changes_what_matches() -> None:
    import json

    rules = load_rules(ROOT / "rules")
    with (Path(__file__).parent / "data" / "articles.jsonl").open(encoding="utf-8") as handle:
        docs = [json.loads(line) for line in handle]
    for doc in docs:
        a = article(title=doc["title"] or "", text=doc["text"])
        for rule in rules.rules:
            with_filter = rule.match(Document.of(a, rules.prefilter))
            without = rule.match(Document.of(a))
            assert (with_filter is None) == (without is None), (doc["id"], rule.id)
            if with_filter and without:
                assert with_filter.explanation == without.explanation


def test_an_unquoted_yaml_boolean_among_the_terms_is_refused_with_a_hint(tmp_path: Path) -> None:
    directory = write_rules(tmp_path, "id: r\ntitle: R\nmatch: [tariffs, on]\n")
    with pytest.raises(ConfigError, match=r'r.yaml:3: .*got bool \(YAML reads an unquoted on.*quote the term'):
        load_rules(directory)
    (directory / "r.yaml").write_text('id: r\ntitle: R\nmatch:\n  near: [tariffs, ["on"]]\n  within: 0\n')
    assert load_rules(directory).match(article(text="new tariffs on steel"))


def test_every_mention_in_a_long_text_counts_not_only_the_first_ones(tmp_path: Path) -> None:
    # a long speech names Taiwan (or any term) many times before the sentence that decides
    directory = write_rules(tmp_path, "id: r\ntitle: R\nmatch:\n  sentence: [Taiwan, free trade agreement]\n")
    filler = " ".join(f"Taiwan was mentioned in paragraph {i}." for i in range(60))
    assert load_rules(directory).match(article(text=filler + " Taiwan wants a free trade agreement."))
