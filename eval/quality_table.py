"""Print the Markdown tables of docs/rules-quality.md: P/R/F1 per rule and per language on each split.

usage: python eval/quality_table.py [--rules DIR] SPLIT [SPLIT ...]      (SPLIT: dev, tune or check)
Runs `monitor rules eval --by lang --json` on the repository's labelled documents (every eval/docs/*.jsonl
and eval/dev/docs.jsonl) against eval/SPLIT/labels.jsonl, and prints one table per split. Run from the
repository root with the project installed (`make eval` installs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def scores(split: str, rules: str | None) -> list[dict[str, object]]:
    corpora = [Path("eval/dev/docs.jsonl"), *sorted(Path("eval/docs").glob("*.jsonl"))]
    command = [sys.executable, "-m", "monitor", "rules", "eval", "--by", "lang", "--json",
               "--labels", f"eval/{split}/labels.jsonl"]
    for corpus in corpora:
        command += ["--corpus", str(corpus)]
    if rules:
        command += ["--rules", rules]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def cell(value: object) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def table(split: str, rows: list[dict[str, object]]) -> str:
    lines = [f"**{split}**", "", "| rule | lang | P | R | F1 | TP | FP | FN | positives |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in sorted(rows, key=lambda r: (str(r["rule"]), str(r.get("lang", "")))):
        fp, fn = len(row["false_positives"]), len(row["false_negatives"])  # type: ignore[arg-type]
        tp = int(row["true_positives"])  # type: ignore[call-overload]
        lines.append(f"| {row['rule']} | {row.get('lang', 'all')} | {cell(row['precision'])} | "
                     f"{cell(row['recall'])} | {cell(row['f1'])} | {tp} | {fp} | {fn} | {tp + fn} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    rules = None
    if argv[:1] == ["--rules"]:
        rules, argv = argv[1], argv[2:]
    for split in argv:
        print(table(split, scores(split, rules)), end="\n\n")


if __name__ == "__main__":
    main(sys.argv[1:])
