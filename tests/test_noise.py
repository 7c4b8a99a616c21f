"""The training-time noise channel: a phone-typed copy keeps the words and loses the typography."""

import re

from moderation.noise import noisy

TIDY = "C'est vraiment une honte : pourquoi le ministre ne dit-il rien ? Toujours les mêmes promesses, Élections après élections."


def test_a_copy_is_the_same_on_every_run_and_differs_by_key():
    assert noisy(TIDY, "a") == noisy(TIDY, "a")
    assert len({noisy(TIDY, str(key)) for key in range(20)}) > 10


def test_a_copy_has_no_accents_capitals_or_punctuation_and_a_stretched_letter():
    for key in range(20):
        copy = noisy(TIDY, str(key))
        assert copy == copy.lower() and not re.search(r"mêmes|élections|après", copy), copy
        assert not re.search(r"[?:,.'-]", copy), copy
        assert re.search(r"(\w)\1\1", copy), copy


def test_copies_use_sms_spelling_and_typos_yet_keep_most_words():
    copies = [noisy(TIDY, str(key)) for key in range(50)]
    assert any(" pk " in f" {copy} " for copy in copies) and any(" tjrs " in f" {copy} " for copy in copies)
    plain = re.sub(r"[^\w\s]", " ", TIDY.lower().replace("é", "e").replace("ê", "e").replace("'", "")).split()
    typos = 0
    for copy in copies:
        words = copy.split()
        assert len(set(words) & set(plain)) >= len(set(plain)) // 2, copy
        typos += any(len(word) >= 4 and word not in plain and not re.search(r"(\w)\1\1", word) for word in words)
    assert typos >= 5


def test_a_phone_typed_insult_is_flagged_like_the_tidy_one(scorer):
    insult = "Espèce de crétin, ferme ta sale gueule avec ton référendum sur la Constitution !"
    threshold = scorer.policy.thresholds["toxic"].review
    assert scorer.score(insult)["toxic"] >= threshold
    assert sum(scorer.score(noisy(insult, str(key)))["toxic"] >= threshold for key in range(10)) >= 9
