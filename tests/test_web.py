"""The web page and the Atom feed, served by a real `monitor serve` over a polled database: the page in a
real headless Chromium (Debian's `chromium`), the feed through feedparser."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest
from test_api import TOKEN, Served, serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("web")) as running:
        yield running


def _browse(profile: Path, url: str) -> str:
    """The DOM after Chromium loaded ``url`` (cookies kept in ``profile`` between calls)."""
    assert CHROMIUM is not None
    result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", url],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium; "
                                              ".ci/run installs it)")
def test_the_page_in_a_real_browser_signs_in_filters_and_highlights(served: Served, tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    signed_out = _browse(profile, served.url + "/")
    assert 'name="token"' in signed_out and "Recent matches" not in signed_out
    page = _browse(profile, f"{served.url}/login?token={TOKEN}")  # the start-up link: cookie, then the page
    assert "Recent matches" in page and page.count('class="match"') >= 5 and "<mark>" in page
    assert 'id="feeds"' in page and ">wire<" in page and 'class="ok"' in page
    # the hostile title is text: escaped in the DOM, no script element from content
    assert "&lt;script&gt;alert(1)&lt;/script&gt; tariffs on steel" in page and "<script>alert" not in page

    # a match marked "not relevant" through the page's form shows on the page, with its comment escaped
    assert 'action="/judge"' in page and 'value="not_relevant"' in page and 'id="missed"' in page
    with httpx.Client(base_url=served.url, cookies={"monitor_token": TOKEN}) as form:
        match_id = int(page.split('name="match_id" value="')[1].split('"')[0])
        sent = form.post("/judge", data={"match_id": str(match_id), "verdict": "not_relevant",
                                         "comment": "<i>customs office</i>", "back": "/"})
        assert sent.status_code == 303 and sent.headers["location"] == "/?done=judged"
    judged = _browse(profile, served.url + "/?done=judged")
    assert 'id="notice"' in judged and "marked <strong>not relevant</strong> by operator" in judged
    assert "&lt;i&gt;customs office&lt;/i&gt;" in judged and "<i>customs office</i>" not in judged

    filtered = _browse(profile, served.url + "/?rule=trilateral-summit&feed=&lang=&q=")  # the form's GET
    rules = {part.split('"')[0] for part in filtered.split('data-rule="')[1:]}
    assert rules == {"trilateral-summit"} and "<mark>" in filtered
    assert '<option value="trilateral-summit" selected="">' in filtered


def test_the_page_needs_the_token_and_escapes_everything(served: Served) -> None:
    assert httpx.get(served.url + "/").status_code == 401  # the sign-in form
    wrong = httpx.post(served.url + "/login", data={"token": "nope"})
    assert wrong.status_code == 401 and "not right" in wrong.text
    with httpx.Client(base_url=served.url) as browser:
        signed = browser.post("/login", data={"token": TOKEN})
        assert signed.status_code == 303 and "httponly" in signed.headers["set-cookie"].lower()
        page = browser.get("/", params={"q": "<script>"})
        echoed = browser.get("/", params={"q": '"><b>x</b>', "rule": "<i>r</i>"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert page.headers["x-content-type-options"] == "nosniff"
    assert echoed.status_code == 200 and "<b>x</b>" not in echoed.text and "<i>r</i>" not in echoed.text
    assert 'value="&#34;&gt;&lt;b&gt;x&lt;/b&gt;"' in echoed.text


def test_the_atom_feed_parses_with_feedparser_and_takes_the_filters(served: Served) -> None:
    response = httpx.get(served.url + "/feeds/matches.atom", params={"rule": "tariff", "access_token": TOKEN})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(io.BytesIO(response.content))
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10" and parsed.entries
    assert all(e.title.startswith("[tariff] ") and e.tags[0].term == "tariff" for e in parsed.entries)
    assert all("Why: " in e.summary for e in parsed.entries)
    hostile = [e for e in parsed.entries if "alert(1)" in e.title]
    assert hostile and hostile[0].title == "[tariff] <script>alert(1)</script> tariffs on steel"
    assert TOKEN not in response.text  # the self link leaves the token out
    assert httpx.get(served.url + "/feeds/matches.atom").status_code == 401
    assert httpx.get(served.url + "/feeds/matches.atom", params={"access_token": "wrong"}).status_code == 401
    with_header = served.get("/feeds/matches.atom", params={"limit": 3})
    assert len(feedparser.parse(io.BytesIO(with_header.content)).entries) == 3
    assert served.get("/api/matches", params={"access_token": TOKEN}, token=None).status_code == 401  # Atom only
