"""Unit tests of the scoring behind `monitor rules eval`: labels merged from several files, scores per
language, the clause that decided a false positive and what a false negative lacked; and the named API
tokens judgements are stored under."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.api.security import TokenCheck
from monitor.errors import ConfigError
from monitor.models import Article
from monitor.rules.corpus import CorpusDocument, Labels, read_label_files
from monitor.rules.diagnose import explain_miss
from monitor.rules.document import Document
from monitor.rules.evaluate import evaluate
from monitor.rules.feedback import json_line
from monitor.rules.loader import load_rules
from monitor.settings import Settings

ROOT = Path(__file__).parent.parent


def _write(path: Path, lines: list[dict[str, object]]) -> str:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return str(path)


def test_labels_of_several_files_merge_and_a_disagreement_names_both(tmp_path: Path) -> None:
    first = _write(tmp_path / "a.jsonl", [{"id": "d1", "tariff": 1, "unsure": ["fta-round"]}])
    second = _write(tmp_path / "b.jsonl", [{"id": "d1", "fta-round": 0}, {"id": "d2", "tariff": 0}])
    merged = read_label_files([first, second], {"tariff", "fta-round"})
    assert merged["d1"] == Labels({"tariff": True, "fta-round": False}, frozenset({"fta-round"}))
    assert merged["d2"].values == {"tariff": False}
    clash = _write(tmp_path / "c.jsonl", [{"id": "d1", "tariff": 0}])
    with pytest.raises(ConfigError, match=r"c.jsonl: document 'd1': label 'tariff' disagrees with .*a.jsonl"):
        read_label_files([first, clash], {"tariff"})


def _article(text: str, lang: str | None = None) -> Article:
    return Article(title="", summary="", text=text, text_source="extracted", lang=lang, url=None, feed="")


def _doc(doc_id: str, text: str, lang: str) -> CorpusDocument:
    return CorpusDocument(doc_id, _article(text, lang))


def test_scores_per_language_with_the_deciding_clause_and_the_missing_part() -> None:
    rules = load_rules(ROOT / "rules")
    documents = [
        _doc("en-hit", "Washington imposed 25% tariffs on steel imports.", "en"),
        _doc("en-false", "The utility raised its special electricity tariff, and steel import duties rose.", "en"),
        _doc("ko-miss", "정부가 철강 수입품에 대한 세금을 올렸다.", "ko"),
        _doc("ko-hit", "미국이 한국산 철강에 관세를 부과했다.", "ko"),
    ]
    labels = {"en-hit": Labels({"tariff": True}, frozenset()), "en-false": Labels({"tariff": False}, frozenset()),
              "ko-miss": Labels({"tariff": True}, frozenset()), "ko-hit": Labels({"tariff": True}, frozenset())}
    result = evaluate(rules, documents, labels)
    overall = result.scores["tariff"]
    assert (overall.true_positives, len(overall.false_positives), len(overall.false_negatives)) == (2, 1, 1)
    english, korean = result.by_lang[("tariff", "en")], result.by_lang[("tariff", "ko")]
    assert (english.precision, english.recall) == (0.5, 1.0)
    assert (korean.precision, korean.recall, korean.positives) == (1.0, 0.5, 2)
    doc_id, why = english.false_positives[0]
    assert doc_id == "en-false" and why.startswith("match/any[") and "duties" in why  # the clause that held
    assert korean.false_negatives == [("ko-miss", " — none of its terms occurs")]


def test_a_false_negative_names_the_closest_alternative_and_what_it_lacked() -> None:
    rules = {rule.id: rule for rule in load_rules(ROOT / "rules").rules}
    fta = rules["fta-round"].root
    background = Document.of(_article("Under the KORUS FTA, tariffs on Korean cars are zero."))
    missing = explain_miss(fta, background)
    assert missing.startswith("closest: sentence($fta, $negotiation") and ": no $negotiation" in missing
    apart = Document.of(_article("Seoul wants a new FTA. Talks will resume in March, the Korean minister said."))
    assert explain_miss(fta, apart).endswith("all parts occur, but not in one sentence")
    tariff = {rule.id: rule for rule in load_rules(ROOT / "rules").rules}["tariff"].root
    excluded = Document.of(_article("Travellers keep a duty-free allowance on imported goods."))
    assert "no sentence('tariff'" in explain_miss(tariff, excluded)  # the word "tariff" itself is what is missing


def test_named_tokens_are_told_apart_and_each_is_checked() -> None:
    check = TokenCheck({"operator": "o" * 20, "alice": "a" * 20})
    assert check.identify("a" * 20) == "alice" and check.identify("o" * 20) == "operator"
    assert check.identify("x" * 20) is None and check.identify(None) is None and not check.matches("")


@pytest.mark.parametrize(("value", "message"), [
    ("alice", "write name=token pairs"), ("al ice=" + "a" * 20, "write name=token pairs"),
    ("alice=short", "at least 16 characters"), ("operator=" + "o" * 20, "the name is taken"),
    (f"bob={'b' * 20},bob={'c' * 20}", "the name is taken"),
])
def test_api_users_refuse_bad_pairs_naming_the_variable(value: str, message: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_API_USERS", value)
    with pytest.raises(ValueError, match=message) as caught:
        Settings()
    assert "api_users" in str(caught.value)


def test_api_users_parse_into_named_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_API_USERS", f" alice = {'a' * 20} , bob={'b' * 20},")
    users = Settings().api_users
    assert {name: secret.get_secret_value() for name, secret in users.items()} == {"alice": "a" * 20,
                                                                                   "bob": "b" * 20}
    assert "a" * 20 not in repr(users)


def test_a_json_line_is_one_line_whatever_the_text() -> None:
    record = {"comment": "one\u2028two\u2029three\x85four\nfive"}
    line = json_line(record)
    assert len(line.splitlines()) == 1 and json.loads(line) == record
