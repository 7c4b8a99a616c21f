"""The holdout: whole articles and whole writing batches that no model of this project learns from."""

import shutil
from pathlib import Path

import pytest

from moderation import corpora
from moderation.splits import HELD_OUT_BATCHES, article_holdout_mask, group_keys, holdout_batches, holdout_mask

from .conftest import ROOT


@pytest.fixture(scope="module")
def frame():
    """Every row of data/, as `train --data data` reads it."""
    return corpora.load([ROOT / "data"]).frame


def test_held_out_batches_are_whole_files_and_articles_stay_on_one_side(frame):
    batches = holdout_batches(frame)
    assert {Path(path).stem for path in batches} == set(HELD_OUT_BATCHES)
    held = holdout_mask(frame)
    assert held[frame["file"].isin(batches).to_numpy()].all()
    by_article = article_holdout_mask(frame)
    keys = group_keys(frame)
    assert not set(keys[by_article]) & set(keys[~held]), "a held-out article has a row in training"
    assert 0.15 < held.mean() < 0.35 and held.mean() > by_article.mean()


def test_training_rows_hold_no_row_of_a_held_out_batch_or_article(frame):
    """`training.train` fits on the rows outside holdout_mask: none of them may come from a held-out batch or article."""
    training_rows = frame[~holdout_mask(frame)]
    assert not training_rows["file"].isin(holdout_batches(frame)).any()
    assert not group_keys(training_rows).isin(set(group_keys(frame)[article_holdout_mask(frame)])).any()
    # Page leftovers ("À la une", "Communiqués") are the same lines under every article, in every desk's batch.
    written = frame["category"] != "navigation"
    batch_texts = set(frame.loc[frame["file"].isin(holdout_batches(frame)) & written, "text"])
    assert len(batch_texts) > 600
    assert not training_rows["text"].isin(batch_texts).any(), "a held-out batch's comment is also in training"


def test_the_same_rows_are_held_out_on_every_run_whatever_their_order(frame):
    again = corpora.load([ROOT / "data"]).frame
    assert (holdout_mask(again) == holdout_mask(frame)).all()
    shuffled = frame.sample(frac=1, random_state=0)
    assert (holdout_mask(shuffled) == holdout_mask(frame)[shuffled.index.to_numpy()]).all()


def test_a_batch_is_known_by_its_name_in_any_comments_folder(tmp_path):
    folder = tmp_path / "elsewhere" / "comments"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "data" / "comments" / "site.csv", folder)
    moved = corpora.load([folder]).frame
    assert holdout_mask(moved).all()


def test_public_corpora_are_split_by_row_never_held_out_as_a_batch(frame):
    public = frame["file"].str.contains("/public/", regex=False).to_numpy()
    assert not frame.loc[public, "file"].isin(holdout_batches(frame)).any()
    assert 0.1 < holdout_mask(frame)[public].mean() < 0.3


def test_a_batch_of_the_same_name_outside_a_comments_folder_is_not_held_out(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "sport.csv").write_text("text,toxic,off_topic\nBeau match hier soir,0,0\n", encoding="utf-8")
    assert holdout_batches(corpora.load([folder]).frame) == set()
