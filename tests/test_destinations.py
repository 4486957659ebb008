"""destinations.yaml: the issue's example file, validation errors with file:line, secrets from the
environment that never show, routes checked against rules, and `monitor destinations check`."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from conftest import write_feeds
from test_cli import base_env, monitor

from monitor.errors import ConfigError
from monitor.notify.destinations import EMBEDDED, load_destinations, redacted, unknown_routes
from monitor.rules.loader import load_rules
from monitor.rules.reload import RulesWatcher

ROOT = Path(__file__).parent.parent
WEBHOOK = "https://hooks.slack.com/services/T000/B000/very-secret-part"
ENV = {"SLACK_WEBHOOK_URL": WEBHOOK, "SMTP_USER": "monitor", "SMTP_PASSWORD": "p: w}#x&<secret>"}

EXAMPLE = """\
destinations:
  - name: trade-alerts
    kind: slack
    webhook_url: ${SLACK_WEBHOOK_URL}     # or: token: ${SLACK_BOT_TOKEN} + channel: "#trade"
    mode: immediate
  - name: morning-digest
    kind: email
    smtp: {host: smtp.example.org, port: 587, tls: starttls, username: ${SMTP_USER}, password: ${SMTP_PASSWORD}}
    from: monitor@example.org
    to: [desk@example.org]
    mode: digest
    schedule: "0 8 * * *"
    timezone: Asia/Seoul
    quiet_hours: {start: "22:00", end: "07:00"}   # optional
default_routes: [trade-alerts, morning-digest]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "destinations.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_example_loads_with_secrets_from_the_environment(tmp_path: Path) -> None:
    destinations = load_destinations(write(tmp_path, EXAMPLE), ENV)
    slack, email = destinations.items
    assert destinations.default_routes == ("trade-alerts", "morning-digest")
    assert slack.webhook_url is not None and slack.webhook_url.get_secret_value() == WEBHOOK
    assert email.smtp is not None and email.smtp.password is not None
    assert email.smtp.password.get_secret_value() == ENV["SMTP_PASSWORD"]  # never parsed as YAML
    assert (email.mode, email.schedule, email.timezone, email.to) == ("digest", "0 8 * * *", "Asia/Seoul",
                                                                       ["desk@example.org"])
    shown = json.dumps([redacted(d) for d in destinations.items])
    assert "very-secret-part" not in shown and "secret>" not in shown and "hooks.slack.com" in shown
    assert "secret" not in repr(destinations)  # SecretStr in reprs and logs


def test_no_file_means_the_embedded_console_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_destinations(None) is EMBEDDED
    assert [(d.name, d.kind, d.mode) for d in EMBEDDED.items] == [("console", "console", "immediate")]
    with pytest.raises(ConfigError, match="destinations file not found"):
        load_destinations(tmp_path / "missing.yaml")


SLACK = "  - name: s\n    kind: slack\n"


@pytest.mark.parametrize(("body", "error"), [
    (SLACK + "    webhook_url: ${NOPE}\n", ":2: destinations[0] ('s'): field 'webhook_url': environment variable "
                                          "NOPE is not set"),
    (SLACK + "    webhook_url: http://hooks.example.test/very-secret-part\n",
     ":2: destinations[0] ('s'): webhook_url must be an https URL"),
    (SLACK + "    webhook_url: https://x.test/a\n    token: t\n    channel: c\n", "webhook_url, or token with channel"),
    (SLACK + "    token: xoxb-1\n", "a slack bot token needs channel"),
    (SLACK + "    webhook_url: https://x.test/a\n    mode: digest\n", "a digest destination needs schedule"),
    (SLACK + "    webhook_url: https://x.test/a\n    mode: digest\n    schedule: '0 25 * * *'\n",
     "is not a five-field cron expression"),
    (SLACK + "    webhook_url: https://x.test/a\n    timezone: Mars/Olympus\n", "unknown IANA time zone"),
    (SLACK + "    webhook_url: https://x.test/a\n    quiet_hours: {start: '22:00', end: '7am'}\n",
     "field 'quiet_hours.end': must be a time of day"),
    (SLACK + "    webhook_url: https://x.test/a\n    schedule: '0 8 * * *'\n", "schedule belongs to mode: digest"),
    (SLACK + "    webhook_url: https://x.test/a\n    to: [a@example.org]\n", "'to' belongs to an email destination"),
    ("  - name: e\n    kind: email\n    smtp: {host: smtp.example.org, tls: none}\n    from: a@example.org\n"
     "    to: [b@example.org]\n", "tls: none is allowed only for a loopback SMTP server"),
    ("  - name: e\n    kind: email\n    smtp: {host: 127.0.0.1}\n    from: \"a@example.org\\r\\nBcc: x@evil.test\"\n"
     "    to: [b@example.org]\n", "field 'from': must be a plain e-mail address"),
    ("  - name: e\n    kind: email\n    smtp: {host: 127.0.0.1}\n    from: a@example.org\n",
     "needs smtp, from and to"),
    ("  - name: Bad Name\n    kind: console\n", "field 'name'"),
    ("  - name: c\n    kind: pager\n", "field 'kind'"),
    ("  - name: c\n    kind: console\n    colour: red\n", "field 'colour'"),
    ("  - name: c\n    kind: console\n  - name: c\n    kind: console\n", "destination name 'c' is used twice"),
    ("  - name: c\n    kind: console\ndefault_routes: [d]\n", "default_routes names unknown destination 'd'"),
])
def test_errors_name_file_line_destination_and_field(tmp_path: Path, body: str, error: str) -> None:
    path = write(tmp_path, "destinations:\n" + body)
    with pytest.raises(ConfigError) as caught:
        load_destinations(path, {})
    message = str(caught.value)
    assert message.startswith(str(path)) and error in message, message
    assert "very-secret-part" not in message


def _rules_with_route(tmp_path: Path, route: str) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("*.md"))
    text = (rules / "tariff.yaml").read_text(encoding="utf-8")
    (rules / "tariff.yaml").write_text(text.replace("routes: []", f"routes: [{route}]"), encoding="utf-8")
    return rules


def test_rule_routes_must_name_a_destination(tmp_path: Path) -> None:
    destinations = load_destinations(write(tmp_path, EXAMPLE), ENV)
    good = load_rules(_rules_with_route(tmp_path / "a", "trade-alerts"))
    assert unknown_routes(good, destinations) == []
    bad = load_rules(_rules_with_route(tmp_path / "b", "trade-alertz"))
    (problem,) = unknown_routes(bad, destinations)
    assert "tariff.yaml: rule 'tariff' routes to unknown destination 'trade-alertz'" in problem


def test_a_reload_that_routes_to_an_unknown_destination_keeps_the_running_rules(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rules_dir = _rules_with_route(tmp_path, "console")
    watcher = RulesWatcher(rules_dir, validate=lambda rules: unknown_routes(rules, EMBEDDED))
    assert watcher.load().ids()
    text = (rules_dir / "tariff.yaml").read_text(encoding="utf-8")
    (rules_dir / "tariff.yaml").write_text(text.replace("routes: [console]", "routes: [slack-desk]") + "\n")
    with caplog.at_level(logging.ERROR):
        assert watcher.check() is None
    assert "event=rules_reload_failed" in caplog.text and "unknown destination 'slack-desk'" in caplog.text
    assert watcher.last_error is not None


def test_destinations_check_command(tmp_path: Path) -> None:
    feeds = write_feeds(tmp_path / "feeds.yaml", [{"name": "wire", "url": "http://127.0.0.1:9/feed.xml"}])
    env = base_env(tmp_path, feeds, MONITOR_DESTINATIONS_FILE=str(write(tmp_path, EXAMPLE)), **ENV)
    ok = monitor(["destinations", "check", "--json"], env, tmp_path)
    assert ok.returncode == 0, ok.stderr
    shown = [json.loads(line) for line in ok.stdout.splitlines()]
    assert [d["name"] for d in shown] == ["trade-alerts", "morning-digest"]
    assert shown[1]["next_digest"].endswith(" 08:00 KST")  # the schedule in its own time zone
    assert "very-secret-part" not in ok.stdout and "secret>" not in ok.stdout

    missing = dict(env)
    del missing["SMTP_PASSWORD"]
    refused = monitor(["destinations", "check"], missing, tmp_path)
    assert refused.returncode == 2 and "environment variable SMTP_PASSWORD is not set" in refused.stderr

    routed = dict(env, MONITOR_RULES_DIR=str(_rules_with_route(tmp_path, "nowhere")))
    wrong = monitor(["destinations", "check"], routed, tmp_path)
    assert wrong.returncode == 2 and "routes to unknown destination 'nowhere'" in wrong.stderr
    polled = monitor(["poll", "--once"], routed, tmp_path)  # the service refuses to start on it too
    assert polled.returncode == 2 and "routes to unknown destination 'nowhere'" in polled.stderr


def test_shipped_example_file_is_valid_and_empty_setting_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.settings import Settings

    example = load_destinations(ROOT / "deploy/destinations.example.yaml", ENV)
    assert [d.name for d in example.items] == ["trade-alerts", "morning-digest"]
    monkeypatch.setenv("MONITOR_DESTINATIONS_FILE", "")
    assert Settings().destinations_file is None
    monkeypatch.setenv("MONITOR_DESTINATIONS_FILE", "/etc/monitor/destinations.yaml")
    assert Settings().destinations_file == Path("/etc/monitor/destinations.yaml")
