"""The holdout: the rows no model trained by this project learns from, the same ones on every run.

Two kinds of row are held out: about a fifth of the articles (by a hash of `article_id`, or of the
text for rows without one), and a few writing batches whole, so the figures show how the model does
on writing from a sitting it has not seen as well as on stories it has not seen.
"""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

HOLDOUT_SHARE = 0.2
# Writing batches (files of data/comments) held out whole, beside the held-out articles: one newsroom desk's batch and
# one small topical one, written in sittings of their own, so their figures show how the model does on writing it has
# not seen. The augmentation batches stay in training: held out by hash (site, harassment, sport, templates), five
# checks failed, as the kinds of comment they teach were gone.
HELD_OUT_BATCHES = ("sport", "site")
# Only files of a folder of this name are writing batches; public corpora are split by row.
BATCH_FOLDER = "comments"
# A site's own rows (its moderators' decisions, its imported history) are judged by the refresh's split in time, not here.
SITE_ROWS = "site:"


def _fraction(key: str, salt: str) -> float:
    """A stable number in [0, 1) for a key: the same row falls in the same split on every run."""
    digest = hashlib.sha256(f"{salt}:{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def group_keys(frame: pd.DataFrame) -> pd.Series:
    """Rows of one article stay together, whichever file they come from; rows without one are their own group."""
    return frame["article_id"].where(frame["article_id"] != "", "text:" + frame["text"])


def is_batch(path: str) -> bool:
    """Whether a file is a writing batch: a file of a `comments/` folder, wherever the checkout is."""
    return Path(path).parent.name == BATCH_FOLDER


def holdout_batches(frame: pd.DataFrame) -> set[str]:
    """The files of the frame that are writing batches held out whole."""
    return {path for path in frame["file"].unique() if is_batch(path) and Path(path).stem in HELD_OUT_BATCHES}


def article_holdout_mask(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose article (or text, without one) is among the held-out fifth."""
    return group_keys(frame).map(lambda key: _fraction(key, "holdout") < HOLDOUT_SHARE).to_numpy(dtype=bool)


def holdout_mask(frame: pd.DataFrame) -> np.ndarray:
    """Rows that no model trained by this project ever learns from: held-out articles and held-out batches."""
    held_out = article_holdout_mask(frame) | frame["file"].isin(holdout_batches(frame)).to_numpy()
    return held_out & ~frame["file"].str.startswith(SITE_ROWS).to_numpy(dtype=bool)
