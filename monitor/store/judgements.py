"""Analysts' judgements in SQL: a match marked relevant or not relevant, an article a rule missed. Every
judgement is kept (history); the newest one of an (article, rule) pair is the one in force."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, insert, select

from monitor.store.db import Database
from monitor.store.tables import ArticleRow, JudgementRow, MatchRow

_J = JudgementRow.__table__  # type: ignore[attr-defined]
_A = ArticleRow.__table__  # type: ignore[attr-defined]
_M = MatchRow.__table__  # type: ignore[attr-defined]
VERDICTS = ("relevant", "not_relevant", "missed")
MAX_COMMENT = 500


@dataclass(frozen=True)
class Judgement:
    id: int
    article_id: int
    rule: str
    match_id: int | None
    verdict: str  # relevant | not_relevant | missed
    comment: str | None
    author: str
    created_at: datetime
    title: str = ""
    url: str | None = None

    @property
    def label(self) -> bool:
        """What the judgement says the rule should do on the article: match (True) or not."""
        return self.verdict != "not_relevant"


@dataclass(frozen=True)
class MatchRef:
    """What a judgement of a match needs to know about it."""

    id: int
    article_id: int
    rule: str


def find_match(db: Database, match_id: int) -> MatchRef | None:
    with db.read() as session:
        row = session.execute(select(_M.c.id, _M.c.article_id, _M.c.rule_id).where(_M.c.id == match_id)).first()
    return MatchRef(row.id, row.article_id, row.rule_id) if row else None


def find_article(db: Database, article_id: int | None = None, url: str | None = None) -> int | None:
    """The id of a stored article, given its id or its link (the newest article with that link)."""
    query = select(_A.c.id)
    query = query.where(_A.c.id == article_id) if article_id is not None else query.where(_A.c.url == url)
    with db.read() as session:
        return session.execute(query.order_by(_A.c.id.desc()).limit(1)).scalar()


def matched(db: Database, article_id: int, rule: str) -> int | None:
    """The id of the stored match of ``rule`` on the article, if any."""
    with db.read() as session:
        return session.execute(select(_M.c.id).where(_M.c.article_id == article_id, _M.c.rule_id == rule)).scalar()


def add_judgement(db: Database, article_id: int, rule: str, match_id: int | None, verdict: str,
                  comment: str | None, author: str, now: datetime) -> Judgement:
    """Store one judgement (the caller has checked the verdict, the rule and the article)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    comment = (comment or "").strip()[:MAX_COMMENT] or None
    with db.write() as session:
        new_id = session.execute(insert(_J).returning(_J.c.id).values(
            article_id=article_id, rule_id=rule, match_id=match_id, verdict=verdict, comment=comment,
            author=author[:64], created_at=now)).scalar_one()
    return Judgement(new_id, article_id, rule, match_id, verdict, comment, author[:64], now)


def _select() -> Select[Any]:
    return select(_J, _A.c.title, _A.c.url).join(_A, _A.c.id == _J.c.article_id)


def _judgement(r: Row[Any]) -> Judgement:
    return Judgement(r.id, r.article_id, r.rule_id, r.match_id, r.verdict, r.comment, r.author, r.created_at,
                     r.title or "", r.url)


def list_judgements(db: Database, since: datetime | None = None, limit: int = 1_000_000,
                    newest_first: bool = False) -> list[Judgement]:
    """Judgements since a time if given (oldest first, or the newest first), at most ``limit``."""
    query = _select()
    if since is not None:
        query = query.where(_J.c.created_at >= since)
    order = _J.c.id.desc() if newest_first else _J.c.id
    with db.read() as session:
        rows = session.execute(query.order_by(order).limit(limit)).all()
    return [_judgement(row) for row in rows]


def in_force(judgements: Sequence[Judgement]) -> list[Judgement]:
    """The newest judgement of each (article, rule) pair, in the order the pairs were first judged."""
    newest: dict[tuple[int, str], Judgement] = {}
    for judgement in judgements:
        key = (judgement.article_id, judgement.rule)
        newest.pop(key, None)
        newest[key] = judgement
    return sorted(newest.values(), key=lambda j: j.id)


def judgements_of_articles(db: Database, article_ids: Sequence[int]) -> dict[int, list[Judgement]]:
    """The judgements of these articles (oldest first), by article id."""
    if not article_ids:
        return {}
    with db.read() as session:
        rows = session.execute(_select().where(_J.c.article_id.in_(list(article_ids))).order_by(_J.c.id)).all()
    found: dict[int, list[Judgement]] = {}
    for row in rows:
        judgement = _judgement(row)
        found.setdefault(judgement.article_id, []).append(judgement)
    return found


def count_recent(db: Database, author: str, since: datetime) -> int:
    """Judgements one token has sent since a time (for the per-token flood limit)."""
    with db.read() as session:
        return session.execute(select(func.count()).select_from(_J)
                               .where(_J.c.author == author, _J.c.created_at >= since)).scalar_one()
