"""`monitor labels export`: analysts' judgements written as labels (and their articles as a corpus), so that
every rejected alert and every reported miss becomes a test the rules must pass."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Annotated

import typer

from monitor.cli_common import err, fail, opened_database, parse_since, settings_or_exit

labels_app = typer.Typer(help="Analysts' judgements as labelled test data.", no_args_is_help=True)


def _open(path: Path | None) -> IO[str] | None:
    if path is None:
        return None
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise fail(OSError(f"{path}: cannot write: {exc.strerror or exc}")) from exc


@labels_app.command("export")
def export(
    since: Annotated[str | None, typer.Option(help="Judgements sent since: ISO date/time or a duration (30d).")]
    = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the labels here (default: "
                                                                       "standard output).", dir_okay=False)] = None,
    corpus: Annotated[Path | None, typer.Option(help="Also write the judged articles here, as a corpus for "
                                                     "`monitor rules eval --corpus`.", dir_okay=False)] = None,
) -> None:
    """Write the judgements in force (the newest per article and rule) in the labels format of `monitor rules
    eval`: one JSON line per article, {id: "article-N", <rule>: 1 (relevant, missed) | 0 (not relevant),
    evidence, comments, judged_by, judged_at, url, title}."""
    from monitor.rules.feedback import corpus_line, json_line, judged, label_lines

    settings = settings_or_exit()
    with opened_database(settings) as db:
        found = judged(db, parse_since(since))
    labels_file, corpus_file = _open(output), _open(corpus)
    try:
        for line in label_lines(found):
            text = json_line(line)
            (labels_file or sys.stdout).write(text + "\n")
        if corpus_file is not None:
            for stored in found.articles.values():
                corpus_file.write(json_line(corpus_line(stored)) + "\n")
    finally:
        for handle in (labels_file, corpus_file):
            if handle is not None:
                handle.close()
    err.print(f"{len(found.judgements)} judgements of {len(found.articles)} articles exported")
