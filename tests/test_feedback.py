"""Analysts' feedback as test data: judgements on the web page and through the API (stored with the token's
name), `monitor labels export`, `monitor rules eval --feedback`, `monitor rules replay`'s fixed/broken
judgements, and reliability case 55 (feedback abuse)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from test_api import TOKEN, Served, serving
from test_cli import ROOT, monitor

ALICE = "alice-token-0123456789abcdef"
USERS = f"alice={ALICE},bob=bob-token-0123456789abcdef"
FLOOD_LIMIT = 20


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("feedback"), MONITOR_API_USERS=USERS,
                 MONITOR_FEEDBACK_PER_MINUTE=str(FLOOD_LIMIT)) as running:
        yield running


def _db(served: Served) -> sqlite3.Connection:
    return sqlite3.connect(served.tmp / "data" / "monitor.db")


def _a_match(served: Served, rule: str, skip: int = 0) -> tuple[int, int]:
    with _db(served) as conn:
        return conn.execute("SELECT id, article_id FROM matches WHERE rule_id = ? ORDER BY id LIMIT 1 OFFSET ?",
                            (rule, skip)).fetchone()


def _export(served: Served, *args: str) -> list[dict[str, object]]:
    done = monitor(["labels", "export", *args], served.env, served.tmp)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]  # every line valid JSON (case 55)


@contextmanager
def _web(served: Served, token: str) -> Iterator[httpx.Client]:
    """A browser-like client signed in through the page's form (the token kept in the cookie)."""
    with httpx.Client(base_url=served.url, timeout=30, follow_redirects=True) as client:
        assert client.post("/login", data={"token": token}).status_code == 200
        yield client


def test_not_relevant_on_the_web_page_is_exported_and_scored_as_a_false_positive(served: Served) -> None:
    match_id, article_id = _a_match(served, "tariff")
    with _web(served, ALICE) as page:
        before = page.get("/")
        assert f'name="match_id" value="{match_id}"' in before.text  # every match carries the two buttons
        answer = page.post("/judge", data={"match_id": str(match_id), "verdict": "not_relevant",
                                           "back": "/?rule=tariff", "comment": "customs office <b>only</b>"})
        assert answer.status_code == 200 and str(answer.url).endswith("/?rule=tariff&done=judged")
        assert "the judgement is stored" in answer.text
        assert "marked <strong>not relevant</strong> by alice" in answer.text
        assert "customs office &lt;b&gt;only&lt;/b&gt;" in answer.text and "<b>only</b>" not in answer.text

    detail = served.get(f"/api/matches/{match_id}").json()
    judged = [j for m in detail["matches"] if m["rule"] == "tariff" for j in m["judgements"]]
    assert [(j["verdict"], j["author"]) for j in judged] == [("not_relevant", "alice")]

    lines = {line["id"]: line for line in _export(served)}
    line = lines[f"article-{article_id}"]
    assert line["tariff"] == 0 and line["judged_by"] == {"tariff": "alice"}  # type: ignore[comparison-overlap]
    assert line["comments"] == {"tariff": "customs office <b>only</b>"}

    scored = monitor(["rules", "eval", "--feedback"], served.env, served.tmp)
    assert scored.returncode == 0, scored.stderr
    assert f"false positive  tariff  article-{article_id}:" in scored.stdout
    as_json = monitor(["rules", "eval", "--feedback", "--json"], served.env, served.tmp)
    tariff = next(json.loads(x) for x in as_json.stdout.splitlines() if json.loads(x)["rule"] == "tariff")
    assert f"article-{article_id}" in tariff["false_positives"]


def test_missed_article_by_url_and_relevant_through_the_api(served: Served) -> None:
    with _db(served) as conn:
        unmatched_id, url = conn.execute(
            "SELECT id, url FROM articles WHERE id NOT IN (SELECT article_id FROM matches WHERE rule_id = "
            "'trilateral-summit') AND url IS NOT NULL ORDER BY id LIMIT 1").fetchone()
    headers = {"Authorization": "Bearer bob-token-0123456789abcdef"}
    missed = httpx.post(served.url + "/api/judgements/missed", headers=headers, timeout=30,
                        json={"rule": "trilateral-summit", "url": url, "comment": "a ministers' meeting"})
    assert missed.status_code == 201, missed.text
    body = missed.json()
    assert (body["verdict"], body["author"], body["article_id"], body["match_id"]) == ("missed", "bob", unmatched_id,
                                                                                        None)
    match_id, article_id = _a_match(served, "export-control")
    relevant = httpx.post(served.url + f"/api/matches/{match_id}/judgement", headers=headers, timeout=30,
                          json={"verdict": "relevant"})
    assert relevant.status_code == 201 and relevant.json()["rule"] == "export-control"

    listed = served.get("/api/judgements").json()
    assert {(j["verdict"], j["author"]) for j in listed} >= {("missed", "bob"), ("relevant", "bob")}
    lines = {line["id"]: line for line in _export(served)}
    assert lines[f"article-{unmatched_id}"]["trilateral-summit"] == 1
    assert lines[f"article-{article_id}"]["export-control"] == 1
    scored = monitor(["rules", "eval", "--feedback"], served.env, served.tmp)
    assert f"false negative  trilateral-summit  article-{unmatched_id}:" in scored.stdout
    assert "closest:" in scored.stdout or "none of its terms occurs" in scored.stdout  # what was missing

    unknown = httpx.post(served.url + "/api/judgements/missed", headers=headers, timeout=30,
                         json={"rule": "no-such-rule", "article_id": unmatched_id})
    assert unknown.status_code == 404 and "no rule 'no-such-rule'" in unknown.text
    both = httpx.post(served.url + "/api/judgements/missed", headers=headers, timeout=30,
                      json={"rule": "tariff", "article_id": unmatched_id, "url": url})
    assert both.status_code == 422
    nowhere = httpx.post(served.url + "/api/judgements/missed", headers=headers, timeout=30,
                         json={"rule": "tariff", "url": "https://example.test/never-stored"})
    assert nowhere.status_code == 404


def test_replay_says_which_judgements_a_rule_change_fixes_and_breaks(served: Served, tmp_path: Path) -> None:
    match_id, article_id = _a_match(served, "fta-round")
    other_id, other_article = _a_match(served, "fta-round", skip=1)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for judged, verdict in ((match_id, "not_relevant"), (other_id, "relevant")):
        assert httpx.post(served.url + f"/api/matches/{judged}/judgement", headers=headers, timeout=30,
                          json={"verdict": verdict}).status_code == 201
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "fta-round.yaml").write_text(  # a "change" that stops the rule from matching anything shipped
        "id: fta-round\ntitle: FTA rounds\nmatch: [a phrase no article of the test site contains]\n",
        encoding="utf-8")
    done = monitor(["rules", "replay", "--since", "all", "--rules", str(rules)], served.env, served.tmp)
    assert done.returncode == 0, done.stderr
    assert f"fixed    fta-round            #{article_id} judged not relevant by operator" in done.stdout
    assert f"broken   fta-round            #{other_article} judged relevant by operator" in done.stdout
    assert "fixed, " in done.stdout and "broken)" in done.stdout


def test_case_55_feedback_abuse(served: Served) -> None:
    match_id, _ = _a_match(served, "tariff")
    url = served.url + f"/api/matches/{match_id}/judgement"
    assert httpx.post(url, json={"verdict": "relevant"}, timeout=30).status_code == 401  # no token
    assert httpx.post(served.url + "/judge", data={"match_id": str(match_id), "verdict": "relevant"},
                      timeout=30).status_code == 401  # the page's form, not signed in
    headers = {"Authorization": "Bearer bob-token-0123456789abcdef"}
    foreign = httpx.post(served.url + "/api/matches/987654321/judgement", json={"verdict": "relevant"},
                         headers=headers, timeout=30)
    assert foreign.status_code == 404
    huge = httpx.post(url, json={"verdict": "relevant", "comment": "x" * 10_240}, headers=headers, timeout=30)
    assert huge.status_code == 422
    with _web(served, ALICE) as page:
        assert page.post("/judge", data={"match_id": str(match_id), "verdict": "relevant",
                                         "comment": "y" * 10_240}).status_code == 422
        assert page.post("/judge", data={"match_id": str(match_id), "verdict": "maybe"}).status_code == 422
        # a long run of digits is refused, never cut down to another match's id
        assert page.post("/judge", data={"match_id": f"{match_id}{'0' * 25}", "verdict": "relevant"}
                         ).status_code == 422
        outside = page.post("/judge", data={"match_id": str(match_id), "verdict": "relevant",
                                            "back": "//evil.test/x"}, follow_redirects=False)
        assert outside.headers["location"].startswith("/?done=")  # never back to another site
    hostile = "line one\nline two \"quoted\" \\ \u2028 <script>alert(1)</script> :warning: [bold]x[/bold]"
    codes = []
    with httpx.Client(timeout=30, headers=headers) as client:
        for _ in range(1000):  # a flood: far more than MONITOR_FEEDBACK_PER_MINUTE in a minute
            answer = client.post(url, json={"verdict": "relevant", "comment": hostile})
            codes.append(answer.status_code)
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) >= 1
                break
    assert codes.count(201) <= FLOOD_LIMIT and codes[-1] == 429
    assert served.get("/healthz", token=None).status_code == 200  # the service keeps answering
    with _db(served) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM judgements WHERE author = 'bob' AND comment LIKE 'line one%'"
                              ).fetchone()[0]
    assert stored == codes.count(201)
    lines = _export(served)  # still valid JSON lines, the comment kept exactly
    assert any(hostile in json.dumps(line["comments"], ensure_ascii=False)
               or hostile in (line.get("comments") or {}).values()  # type: ignore[operator]
               for line in lines)
    page = httpx.get(served.url + "/", cookies={"monitor_token": ALICE}, timeout=30).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
