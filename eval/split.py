"""Split labelled documents into `tune` (70%) and `check` (30%) by a fixed hash of the id.

usage: python eval/split.py LABELS.jsonl [LABELS.jsonl ...]
Appends each label line to eval/tune/labels.jsonl or eval/check/labels.jsonl. The split depends on the id
alone (sha256 of "monitor-eval-split:" + id, first 8 hex digits, below 0.7 of the range: tune), so every
language is split about 70/30 and a document never changes sides. Tune rules on `tune` (and
eval/dev); score `check` only to report (docs/rules-quality.md says how often it was scored)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
TUNE_SHARE = 0.70


def side(doc_id: str) -> str:
    digest = hashlib.sha256(f"monitor-eval-split:{doc_id}".encode()).hexdigest()
    return "tune" if int(digest[:8], 16) / 16**8 < TUNE_SHARE else "check"


def main(paths: list[str]) -> None:
    handles = {name: (HERE / name / "labels.jsonl").open("a", encoding="utf-8") for name in ("tune", "check")}
    try:
        for path in paths:
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                if line.strip():
                    handles[side(json.loads(line)["id"])].write(line.rstrip("\n") + "\n")
    finally:
        for handle in handles.values():
            handle.close()


if __name__ == "__main__":
    main(sys.argv[1:])
