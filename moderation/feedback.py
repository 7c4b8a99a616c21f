"""What a site's moderators taught: their decisions and the site's imported history, as dated, weighted training rows.

The weekly refresh learns from these rows and judges on the newest decisions, which it never
trains on: `split_by_time` cuts at a moment, so every row learnt from is older than every
row judged on. A moderator's decision weighs SITE_WEIGHT times a row of `data/`, twice that
when it overrode the model (that is where the model is wrong), and half as much for every
HALF_LIFE_DAYS of age, so the site's moderators of this season count more than last year's. A
public corpus imported as history keeps the share of weight `training` gives that corpus.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from .comments.models import OVERRIDE
from .corpora import COLUMNS, LABELS
from .history import HISTORY_FORMAT, HistoryComment, HistoryImport, labels_of, last_decisions
from .splits import SITE_ROWS
from .training import source_weight

# In a plain TF-IDF model, 800 of a French forum's own posts at weight 3 took ROC-AUC on its other posts from 0.697 to
# 0.751 (issue 11); through import and refresh, 800 of CyberAgression's gained 0.006-0.022 (benchmarks/bench_site_history.py).
SITE_WEIGHT = 3.0
OVERRIDE_WEIGHT = 2.0
HALF_LIFE_DAYS = 182.0
RECENT_SHARE = 0.2
DECISIONS_FILE = f"{SITE_ROWS}decisions"
HISTORY_FILE = f"{SITE_ROWS}history"
SITE_FILES = (DECISIONS_FILE, HISTORY_FILE)


@dataclass
class Split:
    """The site's rows, cut in time: learnt from before `cut`, judged on from `cut` on."""

    train: pd.DataFrame
    recent: pd.DataFrame
    cut: datetime | None


def gather(session: Session) -> pd.DataFrame:
    """Every comment a moderator decided (the last decision on it) and every imported comment with a label, oldest first.

    Canonical columns (as `corpora` gives them) plus `at` (when it was decided, or written for
    imported rows; NaT when unknown), `override`, `scale` (an imported corpus's share of weight) and `file` (SITE_FILES).
    """
    frame = pd.concat([_decided(session), _imported(session)], ignore_index=True)
    known = frame[list(LABELS)].notna().any(axis=1)
    frame = frame[known].reset_index(drop=True)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.sort_values("at", kind="stable", na_position="first").reset_index(drop=True)


def split_by_time(frame: pd.DataFrame, share: float = RECENT_SHARE) -> Split:
    """The newest `share` of the moderators' decisions to judge on; everything older (and undated history) to learn from.

    The cut is the moment of the first decision judged on, so no row learnt from is as new as it.
    """
    decided = frame[frame["file"] == DECISIONS_FILE]
    if len(decided) < 2 or share <= 0:
        return Split(frame.copy(), frame.iloc[0:0].copy(), None)
    times = decided["at"].sort_values(kind="stable")
    cut = times.iloc[min(len(times) - 1, int(len(times) * (1 - share)))]
    recent = (frame["file"] == DECISIONS_FILE) & (frame["at"] >= cut)
    learnt = frame["at"].isna() | (frame["at"] < cut)
    return Split(frame[learnt].reset_index(drop=True), frame[recent].reset_index(drop=True), cut.to_pydatetime())


def weights(frame: pd.DataFrame, now: datetime) -> np.ndarray:
    """Each row's training weight, relative to a row of data/: newer and overriding decisions weigh more.

    An undated imported row counts as HALF_LIFE_DAYS old.
    """
    age_days = ((pd.Timestamp(now) - frame["at"]) / timedelta(days=1)).fillna(HALF_LIFE_DAYS).clip(lower=0).to_numpy()
    overriding = np.where(frame["override"].to_numpy(dtype=bool), OVERRIDE_WEIGHT, 1.0)
    return SITE_WEIGHT * frame["scale"].to_numpy(dtype=float) * overriding * 0.5 ** (age_days / HALF_LIFE_DAYS)


def _decided(session: Session) -> pd.DataFrame:
    """The last moderator decision on each comment, with the text it was taken on and the comment's article."""
    rows = []
    for decision, text, comment, article in session.execute(last_decisions()):
        rows.append({**_canonical(text, labels_of(decision.status, decision.reason), article.external_id, article.title,
                                  article.body, comment.language, f"{DECISIONS_FILE}:{comment.external_id}"),
                     "at": decision.created_at, "override": decision.verdict == OVERRIDE, "scale": 1.0, "file": DECISIONS_FILE})
    return _frame(rows)


def _imported(session: Session) -> pd.DataFrame:
    """Imported comments, with the labels their file gave or their decision implied."""
    rows = []
    query = select(HistoryComment, HistoryImport.format).join(HistoryImport).order_by(HistoryComment.id)
    for row, kind in session.execute(query):
        labels = {label: getattr(row, label) for label in LABELS}
        scale = 1.0 if kind == HISTORY_FORMAT else source_weight(kind, row.language or "") / source_weight("canonical", "")
        rows.append({**_canonical(row.text, labels, row.article_id, row.article_title, row.article_body, row.language,
                                  f"{HISTORY_FILE}:{row.import_id}"),
                     "at": row.created_at, "override": False, "scale": scale, "file": HISTORY_FILE})
    return _frame(rows)


def _canonical(text: str, labels: dict, article_id, title, body, language, source: str) -> dict:
    """One row in `corpora`'s columns: unknown labels are NaN, missing strings are empty."""
    return {"text": text, **{label: np.nan if labels.get(label) is None else float(labels[label]) for label in LABELS},
            "article_id": article_id or "", "article_title": title or "", "article_body": body or "",
            "language": language or "", "source": source, "category": "", "created_at": ""}


def _frame(rows: list[dict]) -> pd.DataFrame:
    """A frame of gathered rows, with its columns even when there are none."""
    return pd.DataFrame(rows, columns=[*COLUMNS, "at", "override", "scale", "file"])
