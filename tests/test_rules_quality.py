"""The shipped rules on the project's labelled set (eval/, see eval/README.md): the acceptance gate of the
`check` split and of the development set (precision >= 0.95 and recall >= 0.90 for every rule, overall and in
every language with at least 10 positives), the seeds exactly as labelled, and the split kept honest."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from monitor.rules.corpus import CorpusDocument, read_documents, read_label_files
from monitor.rules.evaluate import RuleScore, evaluate
from monitor.rules.loader import load_rules

ROOT = Path(__file__).parent.parent
EVAL = ROOT / "eval"
CORPORA = [EVAL / "dev" / "docs.jsonl", *sorted((EVAL / "docs").glob("*.jsonl"))]
MIN_PRECISION, MIN_RECALL, MIN_POSITIVES = 0.95, 0.90, 10


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _spaced(text: str) -> str:
    """Runs of white space (no-break spaces, line breaks) as one space: a quote copied from a page."""
    return re.sub(r"\s+", " ", text).strip()


def _documents() -> list[CorpusDocument]:
    return [doc for path in CORPORA for doc in read_documents(str(path))]


def _below(name: str, score: RuleScore) -> str | None:
    if (score.precision or 0.0) < MIN_PRECISION or (score.recall or 0.0) < MIN_RECALL:
        return (f"{name}: precision {score.precision}, recall {score.recall}; false positives "
                f"{score.false_positives[:3]}, false negatives {score.false_negatives[:3]}")
    return None


@pytest.mark.parametrize("labels", [
    pytest.param("check", marks=pytest.mark.xfail(strict=True, reason=(
        "issue 14 is open: on the check split export-control (precision 0.90), fta-round (precision 0.93) and "
        "tariff in Japanese (precision 0.947) are below the targets (docs/rules-quality.md). Remove this mark "
        "when the gate passes."))),
    "dev"])
def test_every_rule_meets_the_targets_overall_and_per_language(labels: str) -> None:
    rules = load_rules(ROOT / "rules")
    known = read_label_files([str(EVAL / labels / "labels.jsonl")], set(rules.ids()))
    result = evaluate(rules, _documents(), known)
    assert not result.missing, f"labelled documents missing from eval/: {result.missing[:5]}"
    failures = [_below(rule, score) for rule, score in result.scores.items() if score.positives]
    failures += [_below(f"{rule} ({lang})", score) for (rule, lang), score in result.by_lang.items()
                 if score.positives >= MIN_POSITIVES]
    assert not [f for f in failures if f], "\n".join(f for f in failures if f)


def test_the_seeds_match_exactly_as_labelled() -> None:
    rules = load_rules(ROOT / "rules")
    labels = {json.loads(line)["id"]: json.loads(line) for line in
              (EVAL / "dev" / "labels.jsonl").read_text(encoding="utf-8").splitlines()}
    for doc in read_documents(str(EVAL / "dev" / "docs.jsonl")):
        if doc.id.startswith("seed-"):
            matched = {m.rule_id for m in rules.match(doc.article)}
            assert matched == {r for r in rules.ids() if labels[doc.id][r] == 1}, doc.id


def test_the_split_is_the_fixed_hash_of_the_id_and_every_label_has_its_document() -> None:
    documents = {doc_id for path in CORPORA for doc_id in _ids(path)}
    tune, check = _ids(EVAL / "tune" / "labels.jsonl"), _ids(EVAL / "check" / "labels.jsonl")
    for side, ids in (("tune", tune), ("check", check)):
        for doc_id in ids:
            digest = hashlib.sha256(f"monitor-eval-split:{doc_id}".encode()).hexdigest()
            assert (int(digest[:8], 16) / 16**8 < 0.70) == (side == "tune"), doc_id
    assert not set(tune) & set(check) and len(set(tune)) == len(tune) and len(set(check)) == len(check)
    assert set(tune) | set(check) <= documents
    assert not (set(tune) | set(check)) & set(_ids(EVAL / "dev" / "labels.jsonl"))


def test_every_new_label_has_its_evidence_in_the_document_and_every_document_its_provenance() -> None:
    documents = {json.loads(line)["id"]: json.loads(line) for path in CORPORA
                 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}
    rules = set(load_rules(ROOT / "rules").ids())
    for side in ("tune", "check"):
        for line in (EVAL / side / "labels.jsonl").read_text(encoding="utf-8").splitlines():
            label = json.loads(line)
            doc = documents[label["id"]]
            assert doc.get("source"), label["id"]
            if label["id"].startswith("web"):
                assert doc.get("url", "").startswith("http"), label["id"]
                assert doc["lang"] in ("ja", "zh-Hans", "zh-Hant"), label["id"]
            text = _spaced(f"{doc.get('title') or ''}\n{doc['text']}")
            for rule in rules:
                assert label[rule] in (0, 1), (label["id"], rule)
                if label[rule] == 1:
                    quote = _spaced(label["evidence"].get(rule, ""))
                    assert quote and quote in text, (label["id"], rule)
            assert set(label["unsure"]) <= rules, label["id"]
