"""`monitor rules …`: check rule files, test them on a corpus, score them on labels, replay them on history."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from monitor.cli_common import err, fail, opened_database, out, parse_since, settings_or_exit
from monitor.errors import ConfigError
from monitor.notify.destinations import load_destinations
from monitor.notify.routing import plan_deliveries
from monitor.rules.check import check_examples
from monitor.rules.corpus import CorpusDocument, Labels, read_documents, read_label_files
from monitor.rules.engine import RuleSet
from monitor.rules.evaluate import RuleScore, evaluate
from monitor.rules.loader import load_rules

if TYPE_CHECKING:
    from monitor.rules.feedback import Effect
    from monitor.store.db import Database

rules_app = typer.Typer(help="Check, test, score and replay rule files.", no_args_is_help=True)

RulesOption = Annotated[Path | None, typer.Option(
    "--rules", help="Rules directory (default: MONITOR_RULES_DIR, or ./rules).", file_okay=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON lines instead of text.")]


def _rules_dir(directory: Path | None) -> Path:
    return directory if directory is not None else settings_or_exit().rules_dir


def _load(directory: Path | None) -> RuleSet:
    try:
        return load_rules(_rules_dir(directory))
    except ConfigError as exc:
        raise fail(exc) from exc


def _documents(paths: Iterable[str]) -> Iterator[CorpusDocument]:
    for path in paths:
        yield from read_documents(path)


@rules_app.command("check")
def check(
    directory: Annotated[Path | None, typer.Argument(
        help="Rules directory (default: MONITOR_RULES_DIR, or ./rules).", file_okay=False)] = None,
) -> None:
    """Validate and compile every rule file, then run each rule's inline examples.

    Exit status: 0 all good; 1 an example failed; 2 a file is invalid (reported as file:line: message).
    """
    rules = _load(directory)
    if not rules.rules:
        err.print(f"[yellow]warning:[/yellow] {escape(str(_rules_dir(directory)))}: no rules (no *.yaml file with "
                  "'id' or 'rules'): nothing would ever match")
    count, failures = check_examples(rules)
    for failure in failures:
        err.print(f"[red]FAIL[/red] {escape(str(failure))}")
    passed = count - len(failures)
    out.print(f"{_rules_dir(directory)}: {len(rules.rules)} rules compiled; examples: {passed} passed, "
              f"{len(failures)} failed")
    if failures:
        raise typer.Exit(1)


@rules_app.command("test")
def test(
    corpus: Annotated[str, typer.Option(help="JSON-lines documents {id, title, text, lang?, url?, published?}; "
                                             "'-' reads standard input.")],
    rules_dir: RulesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Match documents against the rules: one line per document with the rules it matched and why."""
    rules = _load(rules_dir)
    try:
        for doc in read_documents(corpus):
            matches = rules.match(doc.article)
            if as_json:
                line = {"id": doc.id, "rules": [m.rule_id for m in matches],
                        "explanations": {m.rule_id: m.explanation.as_dict() for m in matches}}
                out.print(json.dumps(line, ensure_ascii=False), markup=False)
                continue
            out.print(f"{doc.id}: {', '.join(m.rule_id for m in matches) or '-'}", markup=False)
            for m in matches:
                terms = ", ".join(sorted({h.term for h in m.explanation.hits}))
                out.print(f"    {m.rule_id}: {terms} — “{m.explanation.snippet}”", markup=False)
    except ConfigError as exc:
        raise fail(exc) from exc


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _score_json(score: RuleScore) -> dict[str, object]:
    return {"rule": score.rule, "precision": score.precision, "recall": score.recall, "f1": score.f1,
            "true_positives": score.true_positives, "false_positives": [d for d, _ in score.false_positives],
            "false_negatives": [d for d, _ in score.false_negatives], "true_negatives": score.true_negatives,
            "left_out": score.left_out}


@rules_app.command("eval")
def eval_(
    corpus: Annotated[list[str] | None, typer.Option(
        help="JSON-lines documents (repeat for several files; '-' = stdin).")] = None,
    labels: Annotated[list[str] | None, typer.Option(
        help="JSON-lines labels {id, <rule id>: 0|1, unsure: [rule ids]} (repeat for several files).")] = None,
    feedback: Annotated[bool, typer.Option("--feedback", help="Score against every analyst judgement stored "
                                                              "in the database (with or instead of files).")] = False,
    by: Annotated[str | None, typer.Option("--by", help="'lang': also score each rule per language.")] = None,
    rules_dir: RulesOption = None,
    min_precision: Annotated[float | None, typer.Option(min=0, max=1, help="Exit 1 if a rule scores lower.")] = None,
    min_recall: Annotated[float | None, typer.Option(min=0, max=1, help="Exit 1 if a rule scores lower.")] = None,
    min_positives: Annotated[int, typer.Option(min=1, help="With --by lang, the minimums also hold for each "
                                                           "language with at least this many positives.")] = 10,
    as_json: JsonOption = False,
) -> None:
    """Precision, recall and F1 per rule on labelled documents (each document's `unsure` rules left out),
    with each false positive's deciding clause and each false negative's missing part listed."""
    if by not in (None, "lang"):
        raise typer.BadParameter("only 'lang' is supported", param_hint="--by")
    if not feedback and not (corpus and labels):
        raise typer.BadParameter("give --corpus and --labels, or --feedback", param_hint="--corpus")
    rules = _load(rules_dir)
    try:
        documents, known = _eval_inputs(corpus or [], labels or [], feedback, set(rules.ids()))
        result = evaluate(rules, documents, known)
    except ConfigError as exc:
        raise fail(exc) from exc
    scores = list(result.scores.values())
    per_lang = sorted(result.by_lang.items()) if by == "lang" else []
    if as_json:
        for score in scores:
            out.print(json.dumps(_score_json(score)), markup=False)
        for (_, lang), score in per_lang:
            out.print(json.dumps({**_score_json(score), "lang": lang}), markup=False)
    else:
        _print_scores(scores, per_lang)
        out.print(f"{result.documents} documents; {len(result.unlabelled)} without labels; "
                  f"{len(result.missing)} labelled documents not in the corpus")
    if not scores:
        err.print("[yellow]warning:[/yellow] no loaded rule has labels in this file")
    gated = [(s.rule, s) for s in scores]
    gated += [(f"{rule} ({lang})", s) for (rule, lang), s in per_lang if s.positives >= min_positives]
    low = [name for name, s in gated
           if (min_precision is not None and (s.precision or 0.0) < min_precision)
           or (min_recall is not None and (s.recall or 0.0) < min_recall)]
    if low:
        err.print(f"[red]below the required precision/recall:[/red] {', '.join(low)}")
        raise typer.Exit(1)


def _eval_inputs(corpus: list[str], labels: list[str], feedback: bool, rule_ids: set[str]
                 ) -> tuple[Iterable[CorpusDocument], dict[str, Labels]]:
    """The documents and labels to score: files, the stored judgements, or both."""
    known = read_label_files(labels, rule_ids) if labels else {}
    documents: Iterable[CorpusDocument] = _documents(corpus)
    if feedback:
        from monitor.rules.feedback import judged

        with opened_database(settings_or_exit()) as db:
            found = judged(db)
        for doc_id, entry in found.labels().items():
            known[doc_id] = entry
        documents = chain(documents, list(found.documents()))
    return documents, known


def _print_scores(scores: list[RuleScore], per_lang: list[tuple[tuple[str, str], RuleScore]]) -> None:
    table = Table("rule", "precision", "recall", "F1", "TP", "FP", "FN", "TN", "left out")
    for s in scores:
        table.add_row(s.rule, _ratio(s.precision), _ratio(s.recall), _ratio(s.f1), str(s.true_positives),
                      str(len(s.false_positives)), str(len(s.false_negatives)), str(s.true_negatives), str(s.left_out))
    out.print(table)
    if per_lang:
        table = Table("rule", "lang", "precision", "recall", "F1", "TP", "FP", "FN", "TN", "left out")
        for (rule, lang), s in per_lang:
            table.add_row(rule, escape(lang), _ratio(s.precision), _ratio(s.recall), _ratio(s.f1),
                          str(s.true_positives), str(len(s.false_positives)), str(len(s.false_negatives)),
                          str(s.true_negatives), str(s.left_out))
        out.print(table)
    for s in scores:
        for doc_id, why in s.false_positives:
            out.print(f"false positive  {s.rule}  {doc_id}: {why[:300]}", markup=False)
        for doc_id, why in s.false_negatives:
            out.print(f"false negative  {s.rule}  {doc_id}: {why[:300]}", markup=False)


@rules_app.command("replay")
def replay_(
    since: Annotated[str, typer.Option(help="Articles stored since: ISO date/time, duration (30d), or 'all'.")] = "30d",
    rules_dir: RulesOption = None,
    apply: Annotated[bool, typer.Option("--apply", help="Store the new matches (vanished ones are kept) and "
                                                        "queue their alerts (see --no-deliver).")] = False,
    no_deliver: Annotated[bool, typer.Option("--no-deliver", help="With --apply: store the new matches without "
                                                                  "queuing alerts for them (a back-fill).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run the rules over stored articles and print what differs from the stored matches: `new` (would match
    now) and `vanished` (stored, no longer matching). Stored matches are history: nothing is deleted.
    With --apply the new matches are stored and their alerts queued like a poll's (sent by `monitor
    deliver` or the running service), except for articles already alerted to the same destination."""
    from monitor.feeds_file import load_feeds
    from monitor.rules.replay import replay
    from monitor.store.db import Database
    from monitor.store.history import add_matches

    settings = settings_or_exit()
    rules = _load(rules_dir)
    when = None if since == "all" else parse_since(since)
    plan = None
    if apply and not no_deliver:
        try:
            destinations = load_destinations(settings.destinations_file)
        except ConfigError as exc:
            raise fail(exc) from exc
        plan = partial(plan_deliveries, destinations=destinations)
    try:
        tags = {feed.name: feed.tags for feed in load_feeds(settings.feeds_file)}
    except ConfigError as exc:
        err.print(f"[yellow]warning:[/yellow] feed tags unknown ({escape(str(exc))}); tag clauses will not hold")
        tags = {}
    db = Database(settings.database_url)
    db.migrate()
    counts = {"new": 0, "vanished": 0}
    pending = []
    stored = 0
    try:
        judgements = _judgement_effects(db, rules, lambda feed: tags.get(feed, ()))  # before --apply changes them
        for change in replay(db, rules, when, lambda feed: tags.get(feed, ())):
            counts[change.kind] += 1
            if as_json:
                out.print(json.dumps({"change": change.kind, "article": change.article.id, "rule": change.rule,
                                      "title": change.article.title, "url": change.article.url,
                                      "explanation": change.match.explanation.as_dict() if change.match else None},
                                     ensure_ascii=False), markup=False)
            else:
                out.print(f"{change.kind:8} {change.rule:20} #{change.article.id} {change.article.title[:120]}",
                          markup=False)
            if apply and change.match is not None:
                pending.append((change.article.id, change.match))
                if len(pending) >= 500:
                    stored += add_matches(db, pending, datetime.now(UTC), plan)
                    pending.clear()
        if apply:
            stored += add_matches(db, pending, datetime.now(UTC), plan)
    finally:
        db.dispose()
    summary = f"new: {counts['new']}  vanished: {counts['vanished']}"
    if apply:
        summary += f"  stored: {stored}"
    summary += _judgements_report(judgements, as_json)
    (err if as_json else out).print(summary)


def _judgement_effects(db: Database, rules: RuleSet, tags_of: Callable[[str], tuple[str, ...]]) -> list[Effect]:
    """What the current rules do to every stored judgement, against the matches stored now."""
    from monitor.rules.feedback import effects, judged

    return effects(judged(db), rules, tags_of)


def _judgements_report(found: list[Effect], as_json: bool) -> str:
    """Which analysts' judgements the current rules fix and which they break, one line each; returns the
    summary's part about them."""
    for effect in (e for e in found if e.kind != "kept"):
        j = effect.judgement
        if as_json:
            out.print(json.dumps({"judgement": effect.kind, "id": j.id, "article": j.article_id, "rule": j.rule,
                                  "verdict": j.verdict, "author": j.author, "stored": effect.stored,
                                  "now": effect.now, "title": j.title}, ensure_ascii=False), markup=False)
        else:
            now = "matches now" if effect.now else "no longer matches"
            out.print(f"{effect.kind:8} {j.rule:20} #{j.article_id} judged {j.verdict.replace('_', ' ')} by "
                      f"{j.author}, {now}: {j.title[:100]}", markup=False)
    fixed = sum(e.kind == "fixed" for e in found)
    broken = sum(e.kind == "broken" for e in found)
    return f"  judgements: {len(found)} ({fixed} fixed, {broken} broken)"
