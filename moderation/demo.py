"""The demo: articles and comments from the project's own data/, received as a site would send them.

Comments pass through the service layer like any other, so their scores, statuses and the
model's decisions are those the policy gives. Arrival times are spread over the past two
weeks, and two demo moderators (accounts that cannot log in) have worked the queue up to two
days ago, deciding by the labels in data/, so the history and the dashboard show a site in use.
"""

import random
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from .auth.models import User
from .comments.models import PENDING, PUBLISHED, REJECTED
from .receiving import IncomingComment, receive_comment
from .registry import PROJECT_ROOT
from .scorer import Scorer
from .service import decide

DATA = PROJECT_ROOT / "data"
DEMO_COMMENTS = 1500
DEMO_DAYS = 14
WORKED_UNTIL = timedelta(days=2)
DEMO_MODERATORS = ("demo-awa", "demo-kofi")


@dataclass(frozen=True)
class DemoComment:
    """A demo comment and what data/ says it is."""

    incoming: IncomingComment
    toxic: bool
    off_topic: bool


def demo_comments(data_dir: Path = DATA, count: int = DEMO_COMMENTS, seed: int = 7) -> list[DemoComment]:
    """A fixed sample of the project's comments with their articles and labels."""
    articles = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False) for path in sorted((data_dir / "articles").glob("*.csv"))])
    by_id = articles.set_index("article_id")
    rows = []
    for path in sorted((data_dir / "comments").glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        rows.extend((path.stem, index, row) for index, row in zip(frame.index, frame.to_dict("records")) if row["article_id"] in by_id.index)
    chosen = random.Random(seed).sample(rows, min(count, len(rows)))
    return [
        DemoComment(
            IncomingComment(
                id=f"demo-{stem}-{index}", text=row["text"], article_id=row["article_id"],
                article_title=by_id.at[row["article_id"], "title"], article_body=by_id.at[row["article_id"], "body"],
                author_id=row.get("author") or None, author_name=row.get("author") or None, language=row.get("language") or None,
            ),
            toxic=row.get("toxic") == "1", off_topic=row.get("off_topic") == "1",
        )
        for stem, index, row in chosen
    ]


def load_demo(session: Session, scorer: Scorer, now: datetime, progress=lambda message: None) -> int:
    """Receive the demo comments, oldest first, and let the demo moderators decide the older ones; return how many."""
    comments = demo_comments()
    draws = random.Random(11)
    offsets = sorted((draws.uniform(0, DEMO_DAYS * 86400) for _ in comments), reverse=True)
    moderators = _demo_moderators(session)
    for number, (demo, offset) in enumerate(zip(comments, offsets), start=1):
        at = now - timedelta(seconds=offset)
        received = receive_comment(session, scorer, replace(demo.incoming, created_at=at), now=at)
        if received.outcome == "created" and received.comment.status == PENDING and at < now - WORKED_UNTIL:
            _decide_as_labelled(session, received.comment.id, demo, draws.choice(moderators), at + timedelta(minutes=draws.uniform(5, 240)))
        if number % 500 == 0:
            progress(f"demo: {number} of {len(comments)} comments received")
    return len(comments)


def _demo_moderators(session: Session) -> list[User]:
    """The demo moderators, created deactivated (with a random password) so nobody can log in as them."""
    found = list(session.scalars(select(User).where(User.username.in_(DEMO_MODERATORS))))
    for name in DEMO_MODERATORS[len(found):]:
        user = User(username=name, role="moderator", active=False)
        user.set_password(secrets.token_urlsafe(24))
        session.add(user)
        found.append(user)
    session.commit()
    return found


def _decide_as_labelled(session: Session, comment_id: int, demo: DemoComment, moderator: User, at: datetime) -> None:
    """Decide a waiting comment the way data/ labels it."""
    if demo.toxic:
        decide(session, comment_id, moderator, REJECTED, "toxic", now=at)
    elif demo.off_topic:
        decide(session, comment_id, moderator, REJECTED, "off_topic", now=at)
    else:
        decide(session, comment_id, moderator, PUBLISHED, now=at)
