"""Rules reload for the running service: the rules directory is re-read when its files change (or on
request, SIGHUP); a directory that no longer compiles is reported and the previous rules keep running."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from monitor.errors import ConfigError
from monitor.rules.check import check_examples
from monitor.rules.engine import RuleSet
from monitor.rules.loader import load_rules

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]


def signature(directory: Path) -> Signature:
    """Name, modification time (ns) and size of every rule file: what changes when a file is edited,
    added, removed or replaced."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return ()
    found = []
    for path in entries:
        if path.suffix in (".yaml", ".yml"):
            try:
                stat = path.stat()
            except OSError:  # removed between listing and stat: the next check sees the new state
                continue
            found.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(found)


def warn_failing_examples(rules: RuleSet) -> None:
    """Log (warning) every inline example the loaded rules get wrong; the rules run all the same."""
    _, failures = check_examples(rules)
    for failure in failures:
        log.warning("event=rule_example_failed %s", failure)


class RulesWatcher:
    """Remembers the directory's signature at the last load attempt; ``check`` reloads when it changed."""

    def __init__(self, directory: Path, load: Callable[[Path], RuleSet] = load_rules,
                 validate: Callable[[RuleSet], list[str]] | None = None) -> None:
        self.directory = directory
        self._load = load
        self._validate = validate  # problems beyond the rule files themselves (routes to unknown destinations)
        self._signature = signature(directory)
        self.last_error: str | None = None

    def load(self) -> RuleSet:
        """The first load (errors propagate: the service must not start without rules)."""
        self._signature = signature(self.directory)
        rules = self._checked(self._load(self.directory))
        warn_failing_examples(rules)
        return rules

    def _checked(self, rules: RuleSet) -> RuleSet:
        problems = self._validate(rules) if self._validate else []
        if problems:
            raise ConfigError("; ".join(problems))
        return rules

    def check(self, force: bool = False) -> RuleSet | None:
        """New rules when the files changed (or ``force``) and compile; None when unchanged or broken (the
        error is logged once per broken state and kept in ``last_error``)."""
        current = signature(self.directory)
        if current == self._signature and not force:
            return None
        self._signature = current
        try:
            rules = self._checked(self._load(self.directory))
        except ConfigError as exc:
            self.last_error = str(exc)
            log.error("event=rules_reload_failed error=%s keeping=previous rules", exc)
            return None
        self.last_error = None
        log.info("event=rules_reloaded rules=%d directory=%s", len(rules.rules), self.directory)
        warn_failing_examples(rules)
        return rules
