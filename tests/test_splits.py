"""The holdout: whole articles and whole writing batches that no model of this project learns from."""

from pathlib import Path

from moderation import corpora
from moderation.training import HELD_OUT_BATCHES, article_holdout_mask, group_keys, holdout_batches, holdout_mask

from .conftest import ROOT


def test_held_out_batches_are_whole_files_and_articles_stay_on_one_side():
    frame = corpora.load([ROOT / "data"]).frame
    batches = holdout_batches(frame)
    assert {Path(path).stem for path in batches} == set(HELD_OUT_BATCHES)
    held = holdout_mask(frame)
    assert held[frame["file"].isin(batches).to_numpy()].all()
    by_article = article_holdout_mask(frame)
    keys = group_keys(frame)
    assert not set(keys[by_article]) & set(keys[~held]), "a held-out article has a row in training"
    assert 0.15 < held.mean() < 0.35 and held.mean() > by_article.mean()


def test_public_corpora_are_split_by_row_never_held_out_as_a_batch():
    frame = corpora.load([ROOT / "data"]).frame
    public = frame["file"].str.contains("/public/", regex=False).to_numpy()
    assert not frame.loc[public, "file"].isin(holdout_batches(frame)).any()
    assert 0.1 < holdout_mask(frame)[public].mean() < 0.3


def test_a_batch_of_the_same_name_elsewhere_is_not_held_out(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "sport.csv").write_text("text,toxic,off_topic\nBeau match hier soir,0,0\n", encoding="utf-8")
    assert holdout_batches(corpora.load([folder]).frame) == set()
