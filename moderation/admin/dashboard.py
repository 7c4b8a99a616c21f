"""The figures admins watch: volume per day, backlog, automatic versus human decisions, overrides, who decided what."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ..auth.models import User
from ..comments.models import BY_MODEL, BY_MODERATOR, OVERRIDE, PENDING, Comment, Decision, Revision, Score

DAYS = 14


@dataclass(frozen=True)
class Day:
    """One day's counts."""

    day: date
    received: int
    by_model: int
    by_moderators: int
    overrides: int

    @property
    def override_rate(self) -> float | None:
        """Share of the day's moderator decisions that went against the model."""
        return self.overrides / self.by_moderators if self.by_moderators else None


@dataclass(frozen=True)
class VersionAgreement:
    """How often moderators agreed with one model version, on the revisions it scored."""

    version: str
    decided: int
    overrides: int

    @property
    def override_rate(self) -> float:
        """Share of moderator decisions on this version's scores that went against it."""
        return self.overrides / self.decided

    @property
    def agreement(self) -> float:
        """Share of moderator decisions on this version's scores that agreed with it."""
        return 1 - self.override_rate


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard shows, over the last DAYS days (and per model version, since the site began)."""

    days: list[Day]
    waiting: int
    oldest_waiting: datetime | None
    moderators: list[tuple[str, int, int]]
    versions: list[VersionAgreement]

    @property
    def peak(self) -> int:
        """The largest daily count, for scaling the charts."""
        return max([1] + [max(day.received, day.by_model + day.by_moderators) for day in self.days])

    @property
    def override_rate(self) -> float | None:
        """Share of all moderator decisions in the period that went against the model."""
        decided = sum(day.by_moderators for day in self.days)
        return sum(day.overrides for day in self.days) / decided if decided else None


def dashboard(session: Session, now: datetime) -> Dashboard:
    """Count the last DAYS days of comments and decisions."""
    since = (now - timedelta(days=DAYS - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    received = _per_day(session, select(func.date(Comment.received_at), func.count())
                        .where(Comment.received_at >= since).group_by(func.date(Comment.received_at)))
    decided = session.execute(
        select(func.date(Decision.created_at),
               func.sum(case((Decision.decided_by == BY_MODEL, 1), else_=0)),
               func.sum(case((Decision.decided_by == BY_MODERATOR, 1), else_=0)),
               func.sum(case((Decision.verdict == OVERRIDE, 1), else_=0)))
        .where(Decision.created_at >= since, Decision.status != PENDING)
        .group_by(func.date(Decision.created_at))
    ).all()
    decisions = {_as_date(day): (int(model or 0), int(people or 0), int(overrides or 0)) for day, model, people, overrides in decided}
    days = [since.date() + timedelta(days=offset) for offset in range(DAYS)]
    waiting, oldest = session.execute(select(func.count(), func.min(Comment.received_at)).where(Comment.status == PENDING)).one()
    moderators = session.execute(
        select(User.username, func.count(), func.sum(case((Decision.verdict == OVERRIDE, 1), else_=0)))
        .join(Decision, Decision.moderator_id == User.id).where(Decision.created_at >= since)
        .group_by(User.username).order_by(func.count().desc())
    ).all()
    return Dashboard(
        days=[Day(day, received.get(day, 0), *decisions.get(day, (0, 0, 0))) for day in days],
        waiting=waiting, oldest_waiting=oldest,
        moderators=[(name, count, int(overrides or 0)) for name, count, overrides in moderators],
        versions=by_version(session),
    )


def by_version(session: Session) -> list[VersionAgreement]:
    """Moderator decisions and overrides per model version, newest version first, since the site began.

    A decision counts for the version that scored the revision it decided: an edit scored by a newer
    model is judged against that model, not the one that scored the first text.
    """
    scored = (select(Score.model_version, Revision.comment_id, Revision.number)
              .join(Revision, Revision.id == Score.revision_id).distinct().subquery())
    rows = session.execute(
        select(scored.c.model_version, func.count(), func.sum(case((Decision.verdict == OVERRIDE, 1), else_=0)))
        .select_from(Decision).join(scored, (scored.c.comment_id == Decision.comment_id) & (scored.c.number == Decision.revision))
        .where(Decision.decided_by == BY_MODERATOR)
        .group_by(scored.c.model_version).order_by(scored.c.model_version.desc())
    ).all()
    return [VersionAgreement(version, count, int(overrides or 0)) for version, count, overrides in rows]


def _per_day(session: Session, query) -> dict[date, int]:
    """A day -> count mapping from a grouped query."""
    return {_as_date(day): count for day, count in session.execute(query)}


def _as_date(value) -> date:
    """SQLite's date() gives text, PostgreSQL's a date."""
    return value if isinstance(value, date) else date.fromisoformat(value)

