"""The service layer for moderators: decisions, claims and articles, each change in one transaction.

`decide` records a moderator's decision, refusing a second one; `claim` holds comments for a
moderator for a few minutes. Receiving comments from the site is in `receiving`. The web
views, the API and the CLI call these and do not repeat them.
"""

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from . import webhooks
from .auth.models import User
from .comments.models import (
    BY_MODEL,
    BY_MODERATOR,
    CONFIRM,
    OVERRIDE,
    PENDING,
    PUBLISHED,
    REASONS,
    REJECTED,
    Article,
    Comment,
    Decision,
)
from .database import utcnow
from .policy import REJECT, priority
from .receiving import MAX_ID_CHARS, event_data
from .validation import MAX_ARTICLE_CHARS, InputError, check_optional_text, check_text

CLAIM_MINUTES = 5


class Refused(Exception):
    """A change the service will not make; the message says what a moderator or client can do."""


class UnknownComment(Refused):
    """No comment has this id."""

    def __init__(self, comment_id):
        super().__init__(f"there is no comment {comment_id}")


class AlreadyDecided(Refused):
    """A moderator has already decided this comment."""

    def __init__(self, status: str, moderator: str, at: datetime):
        self.status, self.moderator, self.at = status, moderator, at
        super().__init__(f"already {status} by {moderator} at {at:%Y-%m-%d %H:%M} UTC; nothing was changed")


class ClaimedByOther(Refused):
    """Another moderator has this comment open."""

    def __init__(self, moderator: str, until: datetime):
        self.moderator, self.until = moderator, until
        super().__init__(f"{moderator} has this comment open until {until:%H:%M} UTC")


class Edited(Refused):
    """The comment changed since the moderator opened it."""

    def __init__(self):
        super().__init__("the comment was edited since you opened it; read the new text before deciding")


def decide(session: Session, comment_id: int, moderator: User, status: str, reason: str | None = None,
           revision: int | None = None, now: datetime | None = None) -> Decision:
    """Record a moderator's approve (published) or reject (with a reason); a second decision is refused."""
    if status not in (PUBLISHED, REJECTED):
        raise InputError(f"a decision is '{PUBLISHED}' or '{REJECTED}', not {status!r}", "status")
    if status == REJECTED and reason not in REASONS:
        raise InputError(f"rejecting needs a reason: one of {', '.join(REASONS)}", "reason")
    if status == PUBLISHED:
        reason = None
    now = now or utcnow()
    try:
        comment = session.get(Comment, comment_id)
        if comment is None:
            raise UnknownComment(comment_id)
        if revision is not None and revision != comment.revision:
            raise Edited()
        verdict = CONFIRM if (status == REJECTED) == (comment.suggestion == REJECT) else OVERRIDE
        changed = session.execute(
            update(Comment)
            .where(Comment.id == comment_id, Comment.revision == comment.revision,
                   or_(Comment.status == PENDING, Comment.decided_by == BY_MODEL),
                   or_(Comment.claimed_by_id.is_(None), Comment.claimed_by_id == moderator.id, Comment.claimed_until < now))
            .values(status=status, decided_by=BY_MODERATOR, decided_at=now, claimed_by_id=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed != 1:
            session.rollback()
            raise _why_refused(session, comment_id, now)
        decision = Decision(comment_id=comment_id, revision=comment.revision, status=status, decided_by=BY_MODERATOR,
                            moderator_id=moderator.id, reason=reason, verdict=verdict, created_at=now)
        session.add(decision)
        session.flush()
        session.refresh(comment)
        webhooks.enqueue(session, [(comment.id, decision.id, event_data(
            comment.external_id, comment.article.external_id, status, BY_MODERATOR, reason, comment.scores))], now)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    session.refresh(comment)
    return decision


def _why_refused(session: Session, comment_id: int, now: datetime) -> Refused:
    """Explain, from the committed state, why a decision could not be recorded."""
    comment = session.get(Comment, comment_id, populate_existing=True)
    if comment.decided_by == BY_MODERATOR:
        last = session.scalars(select(Decision).where(Decision.comment_id == comment_id, Decision.decided_by == BY_MODERATOR)
                               .order_by(Decision.id.desc()).limit(1)).one()
        return AlreadyDecided(last.status, last.moderator.username, last.created_at)
    if comment.claimed_by_id is not None and comment.claimed_until and comment.claimed_until >= now:
        return ClaimedByOther(comment.claimed_by.username, comment.claimed_until)
    return Edited()


def claim(session: Session, moderator: User, comment_ids: list[int], now: datetime | None = None) -> list[int]:
    """Claim waiting comments for a moderator for a few minutes; return those now theirs."""
    now = now or utcnow()
    if not comment_ids:
        return []
    try:
        session.execute(
            update(Comment)
            .where(Comment.id.in_(comment_ids), Comment.status == PENDING,
                   or_(Comment.claimed_by_id.is_(None), Comment.claimed_by_id == moderator.id, Comment.claimed_until < now))
            .values(claimed_by_id=moderator.id, claimed_until=now + timedelta(minutes=CLAIM_MINUTES))
            .execution_options(synchronize_session=False)
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return list(session.scalars(select(Comment.id).where(Comment.id.in_(comment_ids), Comment.claimed_by_id == moderator.id)))


def set_premoderation(session: Session, article: Article, on: bool) -> None:
    """Switch an article's pre-moderation; its waiting comments move up or down the queue."""
    try:
        article.premoderated = on
        for comment in session.scalars(select(Comment).where(Comment.article_id == article.id, Comment.status == PENDING)):
            comment.priority = priority(comment.scores, comment.received_at, on)
        session.commit()
    except BaseException:
        session.rollback()
        raise


def save_article(session: Session, external_id: str, title: str | None = None, body: str | None = None,
                 url: str | None = None, premoderated: bool | None = None) -> tuple[Article, bool]:
    """Create or update an article from what the site sends; return it and whether it is new."""
    check_text(external_id, "id", MAX_ID_CHARS)
    for name, value, limit in (("title", title, 2_000), ("body", body, MAX_ARTICLE_CHARS), ("url", url, 2_000)):
        check_optional_text(value, name, limit)
    try:
        article = session.scalar(select(Article).where(Article.external_id == external_id))
        created = article is None
        if created:
            article = Article(external_id=external_id, title="", body="")
            session.add(article)
        for name, value in (("title", title), ("body", body), ("url", url)):
            if value is not None:
                setattr(article, name, value)
        session.flush()
        if premoderated is not None and premoderated != article.premoderated:
            set_premoderation(session, article, premoderated)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return article, created
