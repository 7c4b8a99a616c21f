"""The demo: articles and comments from the project's own data/, received as a site would send them.

Comments pass through the service layer like any other, so the queue, the history and the
decisions are those the policy gives. Arrival times are spread over the past two weeks.
"""

import random
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from .registry import PROJECT_ROOT
from .scorer import Scorer
from .service import IncomingComment, receive_comment

DATA = PROJECT_ROOT / "data"
DEMO_COMMENTS = 1500
DEMO_DAYS = 14


def demo_comments(data_dir: Path = DATA, count: int = DEMO_COMMENTS, seed: int = 7) -> list[IncomingComment]:
    """A fixed sample of the project's comments with their articles, as incoming comments."""
    articles = pd.concat([pd.read_csv(path, dtype=str, keep_default_na=False) for path in sorted((data_dir / "articles").glob("*.csv"))])
    by_id = articles.set_index("article_id")
    rows = []
    for path in sorted((data_dir / "comments").glob("*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        rows.extend((path.stem, index, row) for index, row in zip(frame.index, frame.to_dict("records")) if row["article_id"] in by_id.index)
    chosen = random.Random(seed).sample(rows, min(count, len(rows)))
    return [
        IncomingComment(
            id=f"demo-{stem}-{index}", text=row["text"], article_id=row["article_id"],
            article_title=by_id.at[row["article_id"], "title"], article_body=by_id.at[row["article_id"], "body"],
            author_id=row.get("author") or None, author_name=row.get("author") or None, language=row.get("language") or None,
        )
        for stem, index, row in chosen
    ]


def load_demo(session: Session, scorer: Scorer, now: datetime, progress=lambda message: None) -> int:
    """Receive the demo comments, oldest first, at times spread over the past two weeks; return how many."""
    comments = demo_comments()
    draws = random.Random(11)
    offsets = sorted((draws.uniform(0, DEMO_DAYS * 86400) for _ in comments), reverse=True)
    for number, (incoming, offset) in enumerate(zip(comments, offsets), start=1):
        at = now - timedelta(seconds=offset)
        receive_comment(session, scorer, IncomingComment(**{**incoming.__dict__, "created_at": at}), now=at)
        if number % 500 == 0:
            progress(f"demo: {number} of {len(comments)} comments received")
    return len(comments)
