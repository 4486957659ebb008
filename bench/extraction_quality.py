"""Score trafilatura's body text against the Zyte article-extraction ground truth, fast vs full mode.

Usage: python bench/extraction_quality.py ../shared/corpus/extraction/zyte-article-extraction-benchmark

Token precision / recall / F1 as in the benchmark's evaluate.py (bag of whitespace tokens), and
wall time per mode, on the same pages in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import trafilatura


def tokens(text: str) -> Counter[str]:
    return Counter(text.split())


def score(predicted: str, truth: str) -> tuple[float, float, float]:
    p, t = tokens(predicted), tokens(truth)
    common = sum((p & t).values())
    precision = common / max(1, sum(p.values()))
    recall = common / max(1, sum(t.values()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def run(corpus: Path, fast: bool) -> dict[str, float]:
    truth = json.loads((corpus / "ground-truth.json").read_text(encoding="utf-8"))
    scores, elapsed = [], 0.0
    for key, record in sorted(truth.items()):
        html = gzip.decompress((corpus / "html" / f"{key}.html.gz").read_bytes())
        started = time.perf_counter()
        text = trafilatura.extract(html, url=record.get("url"), fast=fast, include_comments=False,
                                   include_tables=True, with_metadata=False) or ""
        elapsed += time.perf_counter() - started
        scores.append(score(text, record.get("articleBody") or ""))
    return {
        "pages": len(scores),
        "precision": statistics.mean(s[0] for s in scores),
        "recall": statistics.mean(s[1] for s in scores),
        "f1": statistics.mean(s[2] for s in scores),
        "seconds": elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, help="folder holding ground-truth.json and html/")
    args = parser.parse_args()
    for fast in (True, False):
        r = run(args.corpus, fast)
        print(f"fast={fast!s:5} pages={r['pages']} P={r['precision']:.3f} R={r['recall']:.3f} "
              f"F1={r['f1']:.3f} time={r['seconds']:.2f}s ({r['pages'] / r['seconds']:.1f} pages/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
