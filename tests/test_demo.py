"""`monitor demo`: offline, no credentials — bundled real feeds served on 127.0.0.1, matched with the shipped
rules into a temporary database, alerts printed with their explanations, the web page served."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support.proc import stop

ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env.update({"PYTHONPATH": str(ROOT), "MONITOR_RULES_DIR": str(ROOT / "rules"), "MONITOR_WORKERS": "2",
                "TMPDIR": str(tmp_path), "HOME": str(tmp_path),
                # no network: any attempt to reach beyond loopback through a proxy fails at once
                "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    return env


def test_demo_prints_explained_alerts_in_three_languages_and_leaves_nothing_behind(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "monitor", "demo", "--no-serve"], env=_env(tmp_path),
                         cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    alerts = re.findall(r"^#\d+ \S+ \S+ \[([a-z-]+)\] ([a-z-]+): (.*)$", out, re.MULTILINE)
    rules = {rule for rule, _, _ in alerts}
    feeds = {feed for _, feed, _ in alerts}
    assert rules == {"trilateral-summit", "fta-round", "export-control", "tariff"}, out
    assert {"korea-wire", "greater-china", "world-wire", "summit-days-archive"} <= feeds, out
    assert out.count("    why: ") == len(alerts)  # every alert says why
    titles = " ".join(title for _, _, title in alerts)
    assert "S Korea, China, Japan vow to ramp up cooperation in rare summit" in titles  # feed text only
    assert "한중관계 해빙 무드" in titles and "李克強東京晤安倍" in titles
    # near misses and negatives stay quiet
    assert not [t for rule, _, t in alerts if rule == "trilateral-summit" and "Camp David" in t]  # US-Japan-ROK
    assert "대중음악 평론가" not in titles and "plane used for skydiving" not in titles
    assert re.search(r"monitor demo: \d+ alerts in \d+\.\ds", out)
    assert not list(tmp_path.glob("monitor-demo-*"))  # the temporary database is gone


def test_demo_serves_the_web_page_until_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "demo.out"
    with out.open("wb") as handle:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "demo"], env=_env(tmp_path), cwd=tmp_path,
                                stdout=handle, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while "login?token=" not in out.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        found = re.search(r"(http://127\.0\.0\.1:\d+)/login\?token=(\S+)", out.read_text())
        assert found, out.read_text()
        request = urllib.request.Request(f"{found.group(1)}/", headers={"Authorization": f"Bearer {found.group(2)}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            page = response.read().decode()
        assert "why" in page.lower() and "한중관계 해빙 무드" in page
    finally:
        errors = stop(proc)
    assert proc.returncode == 0, errors
    assert not list(tmp_path.glob("monitor-demo-*"))
