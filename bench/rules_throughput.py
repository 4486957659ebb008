"""Rule-matching throughput on the bulk articles: the full engine against per-rule `re.search` and a bare
google-re2 Set, with the shipped rules plus generated extra rules.

Usage:
    python bench/rules_throughput.py --corpus ../shared/corpus [--extra 300] [--runs 5] [--steps 0,100,200,300]
                                     [--rules DIR]

Documents: the 6,109 articles of `corpus/articles/bulk/*.jsonl.gz` (Traditional Chinese, Korean and
English news). Extra rules are generated from those documents with a fixed seed: each takes three to six
phrases (two-word English phrases, two- to four-character Chinese words, Korean words) seen in the corpus
and found in at most 2% of the documents (--max-share), as topic terms are,
as `all: [any: [...], any: [...]]`, half of them with a `near` or `sentence` clause. One process, so every
figure is per core.

In each run, over the same documents, in chunks of 250 documents with every variant timed on each chunk
in turn (so the machine's drift, which is large here, falls on all of them alike):

1. the engine (prefilter, boolean/proximity evaluation, explanations) with the shipped rules + N extra rules,
   for each N of --steps (flatness: cost as rules are added; the generated rules match, so later steps
   also produce more matches, each with its explanation);
2. the engine with the shipped rules + N "silent" extra rules: the same rules with every phrase made
   absent from the corpus, so the number of matches stays that of the shipped rules (cost of rules alone);
3. baseline google-re2 Set: the extra rules' patterns in one RE2 Set, one Match per document;
4. baseline `re.search`: one compiled regex per rule (all its phrases, case-insensitive, word-bounded for
   Latin), every rule searched in every document (on a sample of --re-sample documents: it is slow).

Medians over --runs; ratios are medians of per-run ratios.
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
from collections.abc import Callable
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


def engine_timer(directory: Path) -> Callable[[list[Article]], int]:
    rules = load_rules(directory)
    return lambda docs: sum(len(rules.match(doc)) for doc in docs)


def re_search_timer(patterns: list[str]) -> Callable[[list[Article]], int]:
    compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    return lambda docs: sum(1 for doc in docs for p in compiled if p.search(doc.title + "\n" + doc.text))


def re2_set_timer(patterns: list[str]) -> Callable[[list[Article]], int]:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    regex_set = re2.Set.SearchSet(options)
    for pattern in patterns:
        regex_set.Add(pattern)
    regex_set.Compile()
    return lambda docs: sum(len(regex_set.Match(doc.title + "\n" + doc.text) or ()) for doc in docs)


def silenced(pool: list[str]) -> list[str]:
    """The same phrases made absent from the corpus (an invented word or two characters appended)."""
    return [p + (" qxzvk" if p.isascii() else "乂乂") for p in pool]


def interleaved(timers: dict[str, Callable[[list[Article]], int]], docs: list[Article], chunk: int = 250
                ) -> dict[str, tuple[float, int]]:
    """(documents/s, results) per timer, every timer run on each chunk in turn (rotating the order)."""
    seconds = dict.fromkeys(timers, 0.0)
    results = dict.fromkeys(timers, 0)
    names = list(timers)
    for index, start in enumerate(range(0, len(docs), chunk)):
        part = docs[start : start + chunk]
        for name in names[index % len(names):] + names[: index % len(names)]:
            began = time.perf_counter()
            results[name] += timers[name](part)
            seconds[name] += time.perf_counter() - began
    return {name: (len(docs) / seconds[name], results[name]) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="path of ../shared/corpus")
    parser.add_argument("--extra", type=int, default=300, help="generated rules added to the shipped ones")
    parser.add_argument("--steps", default="0,100,200,300", help="extra-rule counts for the flatness check")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-share", type=float, default=0.02,
                        help="generated phrases occur in at most this share of the documents")
    parser.add_argument("--re-sample", type=int, default=300, help="documents timed for the re.search baseline")
    parser.add_argument("--rules", type=Path, default=ROOT / "rules",
                        help="the shipped rules to measure (default: the repository's rules/; e.g. an older "
                             "version checked out with `git show`)")
    args = parser.parse_args()

    docs = load_documents(args.corpus)
    megabytes = sum(len(d.title.encode()) + len(d.text.encode()) for d in docs) / 1e6
    rng = random.Random(20261123)
    pool = phrase_pool(docs, rng, args.max_share)
    extra = generated_rules(args.extra, pool, random.Random(1))
    quiet = generated_rules(args.extra, silenced(pool), random.Random(1))
    steps = [int(s) for s in args.steps.split(",")]
    timers = {f"engine+{n}": engine_timer(rules_dir(args.rules, extra[:n])) for n in steps}
    top = steps[-1]
    timers[f"silent+{top}"] = engine_timer(rules_dir(args.rules, quiet[:top]))
    patterns = python_patterns(extra)
    timers["re2.Set"] = re2_set_timer(patterns)
    searcher = re_search_timer(patterns)
    sample = rng.sample(docs, min(args.re_sample, len(docs)))
    print(f"{len(docs)} documents, {megabytes:.1f} MB, {megabytes * 1e6 / len(docs):.0f} bytes/doc; "
          f"{len(extra)} extra rules, {sum(len(p) for _, p in extra)} phrases", flush=True)
    interleaved(timers, docs[:500])  # warm up: imports, folding tables, RE2 caches

    rates: dict[str, list[float]] = {}
    found: dict[str, int] = {}
    for run in range(args.runs):
        row = interleaved(timers, docs)
        row["re.search"] = interleaved({"re.search": searcher}, sample)["re.search"]
        for key, (rate, count) in row.items():
            rates.setdefault(key, []).append(rate)
            found[key] = count
        print(f"run {run + 1}: " + "  ".join(f"{k} {v:,.0f}/s" for k, (v, _) in row.items()), flush=True)

    print("\nmedians (documents/s per core, MB/s per core, matches per document):")
    per_doc_mb = megabytes / len(docs)
    for key, values in rates.items():
        median = statistics.median(values)
        matches = f"{found[key] / len(docs):5.2f}" if key.startswith(("engine", "silent")) else "    -"
        print(f"  {key:12} {median:>10,.0f} docs/s  {median * per_doc_mb:7.2f} MB/s  {matches}")

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    for a, b in ((f"engine+{top}", "re.search"), (f"engine+{top}", "re2.Set"),
                 (f"engine+{top}", f"engine+{steps[0]}"), (f"silent+{top}", f"engine+{steps[0]}")):
        print(f"  {a + ' / ' + b:28} {ratio(a, b):.3f}")

if __name__ == "__main__":
    main()
