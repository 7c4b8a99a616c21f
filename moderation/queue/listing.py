"""Reading the queue: waiting comments in priority order, filtered, a page at a time.

A page is read in index order (status, priority, id) and the count stops at COUNT_CAP, so the
first page of a 100,000-comment queue costs the same as that of a small one.
"""

import math
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ..auth.models import User
from ..comments.models import PENDING, Comment, Revision, Score
from ..database import MAX_ID

PAGE_SIZE = 25
COUNT_CAP = 2000
LABEL_FLAGS = {"toxic": Comment.toxic_flag, "off_topic": Comment.off_topic_flag}
LABEL_SCORES = {"toxic": Comment.toxic, "off_topic": Comment.off_topic}


@dataclass
class Filters:
    """What a moderator narrowed the queue to; `errors` names any filter that could not be read."""

    label: str | None = None
    article: int | None = None
    language: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args) -> "Filters":
        """Read filters from query-string arguments, keeping what is valid."""
        filters = cls()
        label = args.get("label") or None
        if label is not None and label not in LABEL_FLAGS:
            filters.errors["label"] = label
        else:
            filters.label = label
        article = args.get("article") or None
        if article is not None:
            if article.isascii() and article.isdigit() and int(article) <= MAX_ID:
                filters.article = int(article)
            else:
                filters.errors["article"] = article
        filters.language = (args.get("language") or "").strip()[:16] or None
        for name in ("min_score", "max_score"):
            value = args.get(name) or None
            if value is None:
                continue
            try:
                number = float(value)
            except ValueError:
                number = math.nan
            if 0.0 <= number <= 1.0:
                setattr(filters, name, number)
            else:
                filters.errors[name] = value
        return filters

    def as_args(self) -> dict[str, str]:
        """The active filters as query-string arguments (for links that keep them)."""
        values = {"label": self.label, "article": self.article, "language": self.language,
                  "min_score": self.min_score, "max_score": self.max_score}
        return {name: str(value) for name, value in values.items() if value is not None}

    def conditions(self) -> list:
        """SQL conditions for these filters."""
        found = []
        if self.label:
            found.append(LABEL_FLAGS[self.label])
        if self.article is not None:
            found.append(Comment.article_id == self.article)
        if self.language:
            found.append(Comment.language == self.language)
        scored = LABEL_SCORES[self.label] if self.label else Comment.top_score
        if self.min_score is not None:
            found.append(scored >= self.min_score)
        if self.max_score is not None:
            found.append(scored <= self.max_score)
        return found


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue and where it sits in the whole."""

    comments: list[Comment]
    explanations: dict[int, dict]
    total: int
    page: int
    pages: int
    more: bool

    @property
    def capped(self) -> bool:
        """Whether more comments wait than were counted."""
        return self.total > COUNT_CAP


def available_to(moderator: User, now: datetime):
    """Waiting comments nobody else has open."""
    return and_(Comment.status == PENDING,
                or_(Comment.claimed_by_id.is_(None), Comment.claimed_by_id == moderator.id, Comment.claimed_until < now))


def waiting(session: Session, moderator: User, filters: Filters, page: int, now: datetime) -> QueuePage:
    """A page of waiting comments, highest priority first, with each one's explanation.

    The total is counted up to COUNT_CAP + 1: beyond that a moderator learns "over 2,000", and
    pages past the counted ones are still reachable with "next".
    """
    conditions = [available_to(moderator, now), *filters.conditions()]
    counted = select(Comment.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
    total = session.scalar(select(func.count()).select_from(counted))
    page = max(page, 1) if total > COUNT_CAP else min(max(page, 1), max(1, math.ceil(total / PAGE_SIZE)))
    rows = list(session.scalars(
        select(Comment).where(*conditions).order_by(Comment.priority.desc(), Comment.id.desc())
        .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
    ))
    comments = rows[:PAGE_SIZE]
    pages = max(1, math.ceil(min(total, COUNT_CAP) / PAGE_SIZE))
    return QueuePage(comments, explanations(session, comments), total, page, pages, len(rows) > PAGE_SIZE)


def explanations(session: Session, comments: list[Comment]) -> dict[int, dict]:
    """The current revision's explanation of each comment, by comment id."""
    if not comments:
        return {}
    rows = session.execute(
        select(Revision.comment_id, Score.explanation)
        .join(Score, Score.revision_id == Revision.id)
        .join(Comment, and_(Comment.id == Revision.comment_id, Comment.revision == Revision.number))
        .where(Revision.comment_id.in_([comment.id for comment in comments]))
        .order_by(Score.id)
    )
    return {comment_id: explanation for comment_id, explanation in rows}


def claimed_elsewhere(session: Session, moderator: User, now: datetime) -> int:
    """How many waiting comments other moderators have open right now."""
    return session.scalar(select(func.count()).select_from(Comment).where(
        Comment.status == PENDING, Comment.claimed_by_id != moderator.id, Comment.claimed_until >= now))
