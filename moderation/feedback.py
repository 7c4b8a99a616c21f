"""What a site's moderators taught: their decisions and the site's imported history, as dated, weighted training rows.

The weekly refresh learns from these rows and judges on the newest decisions, which it never
trains on: `split_by_time` cuts at a moment, so every row learnt from is older than every
row judged on. Until the moderators have taken MIN_DECISIONS decisions, it judges on a share of
the imported history instead, so a site that starts from its archive is judged on its own text.

A moderator's decision weighs SITE_WEIGHT times a row of `data/`, twice that when it overrode
the model (that is where the model is wrong), and half as much for every HALF_LIFE_DAYS of age,
so the site's moderators of this season count more than last year's. A public corpus imported
as history keeps the share of weight `training` gives that corpus. Beyond MAX_ROWS, a sample
drawn by weight is learnt from (`sample`), and training caps the site's share of all the weight.
"""

import hashlib
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
MIN_DECISIONS = 250  # below this, RECENT_SHARE of them is too few rows to judge a model on
MAX_ROWS = 20_000  # the site's rows one refresh learns from, so a site of millions trains in minutes (see `sample`)
DECISIONS_FILE = f"{SITE_ROWS}decisions"
HISTORY_FILE = f"{SITE_ROWS}history"
SITE_FILES = (DECISIONS_FILE, HISTORY_FILE)


@dataclass
class Split:
    """The site's rows, cut in time: learnt from before `cut`, judged on from `cut` on (`cut` is None for undated history)."""

    train: pd.DataFrame
    recent: pd.DataFrame
    cut: datetime | None
    judged: str = DECISIONS_FILE

    @property
    def described(self) -> str:
        """What the judged rows are, in the refresh's messages."""
        return "the site's recent decisions" if self.judged == DECISIONS_FILE else "the site's held-out history"


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

    The cut is the moment of the first row judged on, so no row learnt from is as new as it. With
    fewer than MIN_DECISIONS decisions and a larger imported history, the history is judged on
    instead: its newest `share` when every row is dated, else a `share` chosen by a hash of the text.
    """
    files = frame["file"]
    judged = DECISIONS_FILE
    if (files == DECISIONS_FILE).sum() < MIN_DECISIONS and (files == HISTORY_FILE).sum() > (files == DECISIONS_FILE).sum():
        judged = HISTORY_FILE
    candidates = frame[files == judged]
    if len(candidates) < 2 or share <= 0:
        return Split(frame.copy(), frame.iloc[0:0].copy(), None, judged)
    if candidates["at"].isna().any():
        recent = (files == judged) & (frame["text"].map(lambda text: _fraction(text) < share))
        return Split(frame[~recent].reset_index(drop=True), frame[recent].reset_index(drop=True), None, judged)
    times = candidates["at"].sort_values(kind="stable")
    cut = times.iloc[min(len(times) - 1, int(len(times) * (1 - share)))]
    recent = (files == judged) & (frame["at"] >= cut)
    learnt = frame["at"].isna() | (frame["at"] < cut)
    return Split(frame[learnt].reset_index(drop=True), frame[recent].reset_index(drop=True), cut.to_pydatetime(), judged)


def weights(frame: pd.DataFrame, now: datetime) -> np.ndarray:
    """Each row's training weight, relative to a row of data/: newer and overriding decisions weigh more.

    An undated imported row counts as HALF_LIFE_DAYS old.
    """
    age_days = ((pd.Timestamp(now) - frame["at"]) / timedelta(days=1)).fillna(HALF_LIFE_DAYS).clip(lower=0).to_numpy()
    overriding = np.where(frame["override"].to_numpy(dtype=bool), OVERRIDE_WEIGHT, 1.0)
    return SITE_WEIGHT * frame["scale"].to_numpy(dtype=float) * overriding * 0.5 ** (age_days / HALF_LIFE_DAYS)


def sample(frame: pd.DataFrame, weights: np.ndarray, limit: int = MAX_ROWS) -> pd.DataFrame:
    """The rows with their weight in `row_weight`; beyond `limit` rows, `limit` of them drawn by weight.

    Drawn with probability proportional to weight (newer and overriding decisions more often),
    each drawn row then weighs the mean weight of all: the site counts as `limit` rows of itself,
    however many it has. The draw is the same on every run over the same rows.
    """
    if len(frame) <= limit or not weights.sum():
        return frame.assign(row_weight=weights)
    chosen = np.random.default_rng(len(frame)).choice(len(frame), size=limit, replace=False, p=weights / weights.sum())
    return frame.iloc[np.sort(chosen)].reset_index(drop=True).assign(row_weight=float(weights.mean()))


def _decided(session: Session) -> pd.DataFrame:
    """The last moderator decision on each comment, with the text it was taken on and the comment's article.

    A comment held only as toxic and published says it is not toxic; whether it is on topic was
    not the question, so it teaches off_topic nothing (learnt as on topic, chatter under a bare
    headline taught the model that greetings and chatter belong). Published after an off-topic
    flag, or read whole as the QA sample or on a pre-moderated article, it is on topic.
    """
    rows = []
    for decision, text, comment, article in session.execute(last_decisions()):
        labels = labels_of(decision.status, decision.reason)
        if labels.get("off_topic") == 0 and not (comment.off_topic_flag or comment.review_reason in ("sample", "premoderated")):
            del labels["off_topic"]
        rows.append({**_canonical(text, labels, article.external_id, article.title,
                                  article.body, comment.language, f"{DECISIONS_FILE}:{comment.external_id}"),
                     "at": decision.created_at, "override": decision.verdict == OVERRIDE, "scale": 1.0, "file": DECISIONS_FILE})
    return _frame(rows)


def _imported(session: Session) -> pd.DataFrame:
    """Imported comments, with the labels their file gave or their decision implied (read in columns: there may be millions)."""
    columns = ("text", *LABELS, "article_id", "article_title", "article_body", "language", "created_at", "import_id", "format")
    query = (select(*(getattr(HistoryComment, name) for name in columns[:-1]), HistoryImport.format)
             .join(HistoryImport).order_by(HistoryComment.id))
    frame = pd.DataFrame.from_records(session.execute(query).all(), columns=columns)
    if frame.empty:
        return _frame([])
    scales = {(kind, language): 1.0 if kind == HISTORY_FORMAT else source_weight(kind, language or "") / source_weight("canonical", "")
              for kind, language in set(zip(frame["format"], frame["language"]))}
    frame["scale"] = [scales[key] for key in zip(frame["format"], frame["language"])]
    for name in ("article_id", "article_title", "article_body", "language"):
        frame[name] = frame[name].fillna("")
    frame[list(LABELS)] = frame[list(LABELS)].astype(float)
    return frame.assign(at=frame["created_at"], created_at="", source=HISTORY_FILE + ":" + frame["import_id"].astype(str),
                        category="", override=False, file=HISTORY_FILE)[[*COLUMNS, "at", "override", "scale", "file"]]


def _canonical(text: str, labels: dict, article_id, title, body, language, source: str) -> dict:
    """One row in `corpora`'s columns: unknown labels are NaN, missing strings are empty."""
    return {"text": text, **{label: np.nan if labels.get(label) is None else float(labels[label]) for label in LABELS},
            "article_id": article_id or "", "article_title": title or "", "article_body": body or "",
            "language": language or "", "source": source, "category": "", "created_at": ""}


def _fraction(text: str) -> float:
    """A number in [0, 1) drawn from the text, the same on every run."""
    return int.from_bytes(hashlib.sha256(f"judged:{text}".encode()).digest()[:8], "big") / 2**64


def _frame(rows: list[dict]) -> pd.DataFrame:
    """A frame of gathered rows, with its columns even when there are none."""
    return pd.DataFrame(rows, columns=[*COLUMNS, "at", "override", "scale", "file"])
