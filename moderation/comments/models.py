"""Articles, their comments, each comment's revisions and scores, and the append-only decisions."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..auth.models import User
from ..database import Base, UTCDateTime, utcnow

PUBLISHED = "published"
PENDING = "pending"
REJECTED = "rejected"
STATUSES = (PUBLISHED, PENDING, REJECTED)
REASONS = ("toxic", "off_topic", "spam", "other")
BY_MODEL = "model"
BY_MODERATOR = "moderator"
CONFIRM = "confirm"
OVERRIDE = "override"


class Article(Base):
    """A story on the site; its text is the context comments are scored against."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    title: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(Text)
    premoderated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Comment(Base):
    """A reader comment as it stands now: its current text, scores and status.

    The current revision's text and scores are copied here so the queue is one indexed query.
    """

    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_queue", "status", "priority", "id"),
        Index("ix_comments_article_queue", "article_id", "status", "priority", "id"),
        Index("ix_comments_thread", "article_id", "status", "received_at"),
        Index("ix_comments_claims", "status", "claimed_until"),
        Index("ix_comments_author", "author_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"))
    author_id: Mapped[str | None] = mapped_column(String(255))
    author_name: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    text: Mapped[str] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    toxic: Mapped[float] = mapped_column(Float)
    off_topic: Mapped[float] = mapped_column(Float)
    top_score: Mapped[float] = mapped_column(Float)
    toxic_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    off_topic_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    suggestion: Mapped[str] = mapped_column(String(16))
    review_reason: Mapped[str | None] = mapped_column(String(16))
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(16))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    article: Mapped[Article] = relationship(lazy="joined", innerjoin=True)
    claimed_by: Mapped[User | None] = relationship(lazy="select")

    @property
    def scores(self) -> dict[str, float]:
        """The current revision's scores by label."""
        return {"toxic": self.toxic, "off_topic": self.off_topic}

    @property
    def labels(self) -> list[str]:
        """Labels whose score reached their review threshold when the comment was scored."""
        return [label for label, flagged in (("toxic", self.toxic_flag), ("off_topic", self.off_topic_flag)) if flagged]


class Revision(Base):
    """One text a comment has had: the first, then every edit."""

    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("comment_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Score(Base):
    """What one model version said about one revision, with the explanation it gave."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    toxic: Mapped[float] = mapped_column(Float)
    off_topic: Mapped[float] = mapped_column(Float)
    labels: Mapped[list] = mapped_column(JSON)
    explanation: Mapped[dict] = mapped_column(JSON)
    decision: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Decision(Base):
    """One status given to a comment, by the model's policy or a moderator; never updated or deleted."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_moderator", "moderator_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str] = mapped_column(String(16))
    moderator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(String(32))
    verdict: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    comment: Mapped[Comment] = relationship(lazy="joined", innerjoin=True)
    moderator: Mapped[User | None] = relationship(lazy="joined")
