"""`monitor rules check|test|eval|replay` and rules reload in `monitor run`, as a user runs them: subprocesses,
real files, a real SQLite database filled by a poll of feeds served on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import write_feeds
from support.httpserver import LocalServer, Route
from support.site import article_page, load_articles, load_labels, rss
from test_cli import base_env, monitor

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
RULES = ("trilateral-summit", "fta-round", "export-control", "tariff")


def copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target, ignore=shutil.ignore_patterns("*.md"))
    return target


def test_rules_check_passes_on_shipped_rules_and_fails_with_file_line(tmp_path: Path) -> None:
    env = base_env(tmp_path, tmp_path / "feeds.yaml")
    ok = monitor(["rules", "check", str(ROOT / "rules")], env, tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "4 rules compiled" in ok.stdout and ", 0 failed" in ok.stdout

    rules = copy_rules(tmp_path)
    (rules / "broken.yaml").write_text("id: broken\ntitle: B\nmatch:\n  near: [a, b]\n  within: many\n")
    broken = monitor(["rules", "check", str(rules)], env, tmp_path)
    assert broken.returncode == 2
    assert f"{rules}/broken.yaml:4: 'near' needs 'within: N' words" in broken.stderr.replace("\n", "")

    (rules / "broken.yaml").write_text("id: wrong\ntitle: W\nmatch: tariff\nexamples:\n  no_match: [new tariffs]\n")
    failing = monitor(["rules", "check", str(rules)], env, tmp_path)
    assert failing.returncode == 1
    assert "broken.yaml:5" in failing.stderr and "should not match" in failing.stderr
    assert "1 failed" in failing.stdout


def test_rules_test_writes_one_json_line_per_document_as_labelled(tmp_path: Path) -> None:
    env = base_env(tmp_path, tmp_path / "feeds.yaml")
    result = monitor(["rules", "test", "--corpus", str(DATA / "articles.jsonl"), "--json"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    labels = load_labels()
    assert [line["id"] for line in lines] == [a["id"] for a in load_articles()]
    for line in lines:
        label = labels[line["id"]]
        expected = {r for r in RULES if label[r] == 1}
        unsure = set(label.get("unsure", []))
        assert set(line["rules"]) - unsure == expected - unsure, line["id"]
        assert set(line["explanations"]) == set(line["rules"])
        for explanation in line["explanations"].values():
            assert explanation["clauses"] and explanation["snippet"]
            for hit in explanation["hits"]:
                assert hit["field"] in ("title", "summary", "text") and hit["start"] < hit["end"]
    seeds = {line["id"]: set(line["rules"]) for line in lines if line["id"].startswith("seed-")}
    assert len(seeds) == 5

    piped = subprocess.run([sys.executable, "-m", "monitor", "rules", "test", "--corpus", "-"], env=env,
                           cwd=tmp_path, input=json.dumps({"id": "x", "title": "New tariffs on steel", "text": ""}),
                           capture_output=True, text=True, timeout=60, check=False)
    assert piped.returncode == 0 and piped.stdout.startswith("x: tariff"), piped.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "title": "t", "text": "x"}\n{"id": "b", "text": 5}\n')
    refused = monitor(["rules", "test", "--corpus", str(bad)], env, tmp_path)
    assert refused.returncode == 2 and f"{bad}:2" in refused.stderr


def test_rules_eval_scores_and_thresholds(tmp_path: Path) -> None:
    env = base_env(tmp_path, tmp_path / "feeds.yaml")
    args = ["rules", "eval", "--corpus", str(DATA / "articles.jsonl"), "--labels", str(DATA / "labels.jsonl")]
    result = monitor([*args, "--min-precision", "0.95", "--min-recall", "0.9", "--json"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    scores = {s["rule"]: s for s in map(json.loads, result.stdout.splitlines())}
    assert set(scores) == set(RULES)
    assert all(s["precision"] == 1.0 and s["recall"] == 1.0 for s in scores.values())
    assert scores["export-control"]["left_out"] == 3  # the `unsure` labels are left out

    # a rule that fires on everything: its precision drops, the false positives are listed, exit 1
    rules = copy_rules(tmp_path)
    (rules / "tariff.yaml").write_text("id: tariff\ntitle: T\nmatch: the\n")
    noisy = monitor([*args, "--rules", str(rules), "--min-precision", "0.95"], env, tmp_path)
    assert noisy.returncode == 1
    assert "false positive  tariff  reuters21578-04444" in noisy.stdout
    assert "below the required precision/recall" in noisy.stderr and "tariff" in noisy.stderr


def _polled_database(server: LocalServer, tmp_path: Path, rules: Path) -> dict[str, str]:
    articles = load_articles()
    for article in articles:
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))
    server.routes["/feed.xml"] = Route(rss(articles, server.base))
    env = base_env(tmp_path, write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml")}]),
                   MONITOR_RULES_DIR=str(rules))
    polled = monitor(["poll", "--once"], env, tmp_path)
    assert polled.returncode == 0, polled.stderr
    return env


def test_rules_replay_shows_new_and_vanished_and_apply_stores_once(server: LocalServer, tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    env = _polled_database(server, tmp_path, rules)
    stored = [json.loads(line) for line in monitor(["matches", "--json", "--limit", "200"], env, tmp_path).stdout
              .splitlines()]
    assert stored

    unchanged = monitor(["rules", "replay", "--since", "all"], env, tmp_path)
    assert unchanged.returncode == 0, unchanged.stderr
    assert "new: 0  vanished: 0" in unchanged.stdout

    # a new rule (Mexico, in a Korean article), and the tariff rule narrowed to titles only
    (rules / "mexico.yaml").write_text("id: mexico\ntitle: Mexico\nmatch: [멕시코, Mexico]\n", encoding="utf-8")
    (rules / "tariff.yaml").write_text("id: tariff\ntitle: T\nmatch:\n  any: [no such words anywhere]\n")
    replay = monitor(["rules", "replay", "--since", "all", "--json"], env, tmp_path)
    assert replay.returncode == 0, replay.stderr
    changes = [json.loads(line) for line in replay.stdout.splitlines()]
    new = [c for c in changes if c["change"] == "new"]
    vanished = [c for c in changes if c["change"] == "vanished"]
    assert new and {c["rule"] for c in new} == {"mexico"}
    assert all(c["explanation"]["hits"] for c in new)
    assert {c["rule"] for c in vanished} == {"tariff"}
    assert len(vanished) == sum(1 for m in stored if m["rule"] == "tariff")

    applied = monitor(["rules", "replay", "--since", "all", "--apply"], env, tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert f"stored: {len(new)}" in applied.stdout
    again = monitor(["rules", "replay", "--since", "all", "--apply"], env, tmp_path)
    assert f"new: 0  vanished: {len(vanished)}  stored: 0" in again.stdout  # idempotent; history kept
    after = [json.loads(line) for line in monitor(["matches", "--json", "--limit", "500"], env, tmp_path).stdout
             .splitlines()]
    assert sum(1 for m in after if m["rule"] == "mexico") == len(new)
    assert len(after) == len(stored) + len(new)

    recent = monitor(["rules", "replay", "--since", "1h"], env, tmp_path)
    assert recent.returncode == 0 and "vanished: 0" not in recent.stdout  # stored just now: within the window
    refused = monitor(["rules", "replay", "--since", "soon"], env, tmp_path)
    assert refused.returncode == 2


class _Lines:
    """Collects a stream's lines in a thread, so a test can wait for one without blocking the process."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.append(line)

    def wait_for(self, found: Callable[[str], bool], count: int = 1, timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = [line for line in list(self.lines) if found(line)]
            if len(seen) >= count:
                return seen
            time.sleep(0.1)
        raise AssertionError(f"not seen within {timeout}s; last lines:\n{''.join(self.lines[-20:])}")


def test_run_reloads_changed_rules_and_keeps_the_old_ones_when_a_file_breaks(server: LocalServer,
                                                                             tmp_path: Path) -> None:
    by_id = {a["id"]: a for a in load_articles()}
    summit, tariff, mexico = by_id["seed-002"], by_id["reuters21578-10530"], by_id["naver-003_0013685378"]
    for article in by_id.values():
        server.routes[f"/a/{article['id']}.html"] = Route(article_page(article))

    def serve(items: list[dict[str, str]], tag: str) -> None:
        server.routes["/feed.xml"] = Route(rss(items, server.base), etag=f'"{tag}"')

    serve([summit], "1")
    rules = copy_rules(tmp_path)
    env = base_env(tmp_path, write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": server.url("/feed.xml"),
                                                                     "interval": "1s"}]),
                   MONITOR_RULES_DIR=str(rules), MONITOR_POLL_TICK="0.3s", MONITOR_RULES_RELOAD_INTERVAL="0.2s",
                   MONITOR_WORKERS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    try:
        out.wait_for(lambda line: "[trilateral-summit]" in line)

        # a broken file: reported with file:line, the running rules stay
        (rules / "zz-broken.yaml").write_text("id: broken\ntitle: B\nmatch:\n  regex: '(?<=a)b'\n")
        failed = err.wait_for(lambda line: "event=rules_reload_failed" in line)
        assert f"{rules}/zz-broken.yaml:4: bad term" in failed[0]
        serve([summit, tariff], "2")
        out.wait_for(lambda line: "[tariff]" in line)

        # fixed, with a new rule: reloaded, and the new rule matches the next new article
        (rules / "zz-broken.yaml").unlink()
        (rules / "mexico.yaml").write_text("id: mexico\ntitle: Mexico\nmatch: [멕시코]\n", encoding="utf-8")
        err.wait_for(lambda line: "event=rules_reloaded" in line)
        serve([summit, tariff, mexico], "3")
        out.wait_for(lambda line: "[mexico]" in line)

        # SIGHUP reloads even when nothing changed
        proc.send_signal(signal.SIGHUP)
        err.wait_for(lambda line: "event=rules_reloaded" in line, count=2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(err.lines[-20:])
    assert "event=rules_reload_requested signal=SIGHUP" in "".join(err.lines)
    matched = [line for line in out.lines if line.startswith("#")]
    assert len(matched) == len({line.split()[0] for line in matched})  # each match printed once


def test_rules_check_warns_about_a_directory_without_rules(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = monitor(["rules", "check", str(empty)], base_env(tmp_path, tmp_path / "feeds.yaml"), tmp_path)
    assert result.returncode == 0 and "no rules" in result.stderr and "nothing would ever match" in result.stderr
