"""Rule-matching throughput on the bulk articles: the full engine against per-rule `re.search` and a bare
google-re2 Set, with the shipped rules plus generated extra rules.

Usage:
    python bench/rules_throughput.py --corpus ../shared/corpus [--extra 300] [--runs 5] [--steps 0,100,200,300]

Documents: the 6,109 articles of `corpus/articles/bulk/*.jsonl.gz` (Traditional Chinese, Korean and
English news). Extra rules are generated from those documents with a fixed seed: each takes three to six
phrases (two-word English phrases, two- to four-character Chinese words, Korean words) seen in the corpus
and found in at most 2% of the documents (--max-share), as topic terms are,
as `all: [any: [...], any: [...]]`, half of them with a `near` or `sentence` clause. One process, so every
figure is per core.

In each run, back to back over the same documents:

1. the engine (prefilter, boolean/proximity evaluation, explanations) with the shipped rules + N extra rules,
   for each N of --steps (flatness: cost as rules are added);
2. baseline `re.search`: one compiled regex per rule (all its phrases, case-insensitive, word-bounded for
   Latin), every rule searched in every document (on a sample of documents: it is slow);
3. baseline google-re2 Set: the same patterns in one RE2 Set, one Match per document.

Medians over --runs; ratios are medians of per-run ratios (the machine's speed drifts between runs).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import re2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.models import Article  # noqa: E402
from monitor.rules.loader import load_rules  # noqa: E402

_HAN = re.compile(r"[\u4e00-\u9fff]{2,4}")
_HANGUL = re.compile(r"[\uac00-\ud7a3]{2,5}")
_LATIN = re.compile(r"\b[a-z]{4,12} [a-z]{4,12}\b")


def load_documents(corpus: Path) -> list[Article]:
    docs = []
    for path in sorted((corpus / "articles/bulk").glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                d = json.loads(line)
                docs.append(Article(title=d.get("title") or "", summary="", text=d.get("text") or "",
                                    text_source="extracted", lang=d.get("lang"), url=None, feed="bulk"))
    return docs


def phrase_pool(docs: list[Article], rng: random.Random, max_share: float) -> list[str]:
    """Phrases seen in the corpus (so generated rules sometimes match) that occur in at most ``max_share`` of
    the documents, as a topic term does (not "있다" or "of the"), sampled across languages."""
    candidates: set[str] = set()
    for doc in rng.sample(docs, 600):
        text = doc.text[:3000]
        for pattern, take in ((_LATIN, 6), (_HAN, 4), (_HANGUL, 4)):
            found = pattern.findall(text.lower() if pattern is _LATIN else text)
            candidates.update(rng.sample(found, min(take, len(found))))
    sample = [d.title.lower() + "\n" + d.text.lower() for d in rng.sample(docs, 1000)]
    limit = max_share * len(sample)
    return sorted(p for p in candidates if sum(p in text for text in sample) <= limit)


def generated_rules(count: int, pool: list[str], rng: random.Random) -> list[tuple[str, list[str]]]:
    """(YAML text, phrases) of ``count`` rules."""
    rules = []
    for index in range(count):
        first = rng.sample(pool, rng.randint(2, 3))
        second = rng.sample(pool, rng.randint(1, 3))
        quoted_first = ", ".join(json.dumps(p, ensure_ascii=False) for p in first)
        quoted_second = ", ".join(json.dumps(p, ensure_ascii=False) for p in second)
        shape = index % 4
        if shape == 0:
            match = f"  all:\n    - any: [{quoted_first}]\n    - any: [{quoted_second}]\n"
        elif shape == 1:
            match = f"  near: [[{quoted_first}], [{quoted_second}]]\n  within: 8\n"
        elif shape == 2:
            match = f"  sentence: [[{quoted_first}], [{quoted_second}]]\n"
        else:
            match = f"  any: [{quoted_first}, {quoted_second}]\n"
        rules.append((f"id: extra-{index:03d}\ntitle: Extra {index}\nmatch:\n{match}", first + second))
    return rules


def rules_dir(base: Path, extra: list[tuple[str, list[str]]]) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="rules-bench-"))
    for source in sorted((base).glob("*.yaml")):
        (directory / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    for index, (text, _) in enumerate(extra):
        (directory / f"extra-{index:03d}.yaml").write_text(text, encoding="utf-8")
    return directory


def python_patterns(extra: list[tuple[str, list[str]]]) -> list[str]:
    patterns = []
    for _, phrases in extra:
        alternatives = [rf"\b{re.escape(p)}\b" if p.isascii() else re.escape(p) for p in phrases]
        patterns.append("(?:" + "|".join(alternatives) + ")")
    return patterns


def time_engine(directory: Path, docs: list[Article]) -> float:
    rules = load_rules(directory)
    start = time.perf_counter()
    for doc in docs:
        rules.match(doc)
    return len(docs) / (time.perf_counter() - start)


def time_re_search(patterns: list[str], docs: list[Article]) -> float:
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    start = time.perf_counter()
    for doc in docs:
        text = doc.title + "\n" + doc.text
        for pattern in compiled:
            pattern.search(text)
    return len(docs) / (time.perf_counter() - start)


def time_re2_set(patterns: list[str], docs: list[Article]) -> float:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    regex_set = re2.Set.SearchSet(options)
    for pattern in patterns:
        regex_set.Add(pattern)
    regex_set.Compile()
    start = time.perf_counter()
    for doc in docs:
        regex_set.Match(doc.title + "\n" + doc.text)
    return len(docs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="path of ../shared/corpus")
    parser.add_argument("--extra", type=int, default=300, help="generated rules added to the shipped ones")
    parser.add_argument("--steps", default="0,100,200,300", help="extra-rule counts for the flatness check")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-share", type=float, default=0.02,
                        help="generated phrases occur in at most this share of the documents")
    parser.add_argument("--re-sample", type=int, default=300, help="documents timed for the re.search baseline")
    args = parser.parse_args()

    docs = load_documents(args.corpus)
    megabytes = sum(len(d.title.encode()) + len(d.text.encode()) for d in docs) / 1e6
    rng = random.Random(20261123)
    extra = generated_rules(args.extra, phrase_pool(docs, rng, args.max_share), rng)
    steps = [int(s) for s in args.steps.split(",")]
    dirs = {n: rules_dir(ROOT / "rules", extra[:n]) for n in steps}
    patterns = python_patterns(extra)
    sample = rng.sample(docs, min(args.re_sample, len(docs)))
    print(f"{len(docs)} documents, {megabytes:.1f} MB, {megabytes * 1e6 / len(docs):.0f} bytes/doc; "
          f"{len(extra)} extra rules, {sum(len(p) for _, p in extra)} phrases", flush=True)
    time_engine(dirs[steps[-1]], docs[:500])  # warm up: imports, folding tables

    results: dict[str, list[float]] = {}
    for run in range(args.runs):
        row = {f"engine+{n}": time_engine(dirs[n], docs) for n in steps}
        row["re.search"] = time_re_search(patterns, sample)
        row["re2.Set"] = time_re2_set(patterns, docs)
        for key, value in row.items():
            results.setdefault(key, []).append(value)
        print(f"run {run + 1}: " + "  ".join(f"{k} {v:,.0f}/s" for k, v in row.items()), flush=True)

    print("\nmedians (documents/s per core, MB/s per core):")
    per_doc_mb = megabytes / len(docs)
    for key, values in results.items():
        median = statistics.median(values)
        print(f"  {key:12} {median:>10,.0f} docs/s  {median * per_doc_mb:7.2f} MB/s")
    top = f"engine+{steps[-1]}"
    ratios = {
        "engine / re.search": statistics.median(e / r for e, r in zip(results[top], results["re.search"], strict=True)),
        "engine / re2.Set": statistics.median(e / s for e, s in zip(results[top], results["re2.Set"], strict=True)),
        f"engine+{steps[-1]} / engine+{steps[0]}": statistics.median(
            a / b for a, b in zip(results[top], results[f"engine+{steps[0]}"], strict=True)),
    }
    for key, value in ratios.items():
        print(f"  {key:24} {value:.3f}")


if __name__ == "__main__":
    main()
