"""What a moderator is shown as the reason for a flag: content words, not grammar, on real comments."""

import csv

import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from moderation.text import normalise_text

from .conftest import SHARED

DEV_SET = SHARED / "benchmarks" / "hateday_fr.csv"
# French grammar words, listed apart from the scorer's own list so that the test can catch what that list misses.
FRENCH_GRAMMAR = set(
    "le la les l un une des du de d au aux ce cet cette ces mon ma mes ton ta tes son sa ses notre nos votre vos leur leurs "
    "je j me m moi tu t te toi il elle on nous vous ils elles lui eux se s en y qui que qu quoi dont ou lequel laquelle "
    "et ou mais donc or ni car si comme que quand lorsque puisque parce "
    "a dans par pour sur sous avec sans chez entre vers contre depuis pendant avant apres "
    "est es suis sont sommes etes etre ete etait etaient sera seront ai as avons avez ont avait avaient aura fait faire "
    "ne n pas plus tres trop bien tout tous toute toutes meme aussi deja encore ca cela ceci c voila ici la".split()
)
GRAMMAR = FRENCH_GRAMMAR | (set(ENGLISH_STOP_WORDS) - {"con"})  # "con" is a French insult, not "pros and cons"
TOP_TERMS = 3
MAX_GRAMMAR_SHARE = 0.05


def test_grammar_words_are_almost_never_among_the_reasons_for_a_flag(scorer):
    """On the real French tweets of the dev set, at most 5% of the top three toxic terms of flagged comments are grammar
    words ("you", "our", "qui", "les"): the highlight points at what a moderator has to judge."""
    if not DEV_SET.exists():
        pytest.skip(f"the dev set {DEV_SET} is absent (it lives in ../shared/benchmarks beside the checkout)")
    with DEV_SET.open(encoding="utf-8") as file:
        texts = [row["content"] for row in csv.DictReader(file)]
    terms = []
    for result in scorer.score_many(texts):
        if "toxic" in result["labels"]:
            terms += [entry["term"] for entry in result["explanation"]["toxic"][:TOP_TERMS] if not entry["term"].startswith("(")]
    grammar = [term for term in terms if normalise_text(term) in GRAMMAR]
    assert len(terms) > 100, "too few flagged comments to judge the explanations"
    assert len(grammar) / len(terms) <= MAX_GRAMMAR_SHARE, sorted(set(grammar))
