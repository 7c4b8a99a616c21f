"""The fast scorer: same numbers as the saved pipelines, explanations that point at the right words."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation import corpora
from moderation import scorer as scorer_module
from moderation.build import DEFAULT_CHECKS
from moderation.evaluation import run_checks
from moderation.features import TOKEN_PATTERN, char_wb_grams, normalise_context
from moderation.policy import PUBLISH, REVIEW
from moderation.scorer import Scorer
from moderation.text import normalise_text
from moderation.training import examples
from moderation.validation import InputError

ARTICLE = {
    "title": "Sahel : le Niger et le Mali renforcent leur coopération militaire",
    "body": "Les deux armées annoncent des patrouilles communes contre les groupes terroristes le long de la frontière.",
}
# Spaced letters, a link and a number run on from one comment (or line) into the next.
THREAD = [
    "Bravo aux soldats s", "a l o p e\nla frontière est longue p", "u t e, voir https://bet.example/a",
    "b c 12", "34 les patrouilles\n\n  communes  ", "d\ne\nf",
]


def pipeline_scores(scorer, text, article=None):
    """What plain Pipeline.predict_proba says for the same input."""
    article_text = "\n".join(v for v in (article or {}).values() if isinstance(v, str)).strip()
    thread = "\n".join((article or {}).get("comments", []))
    return {label: scorer.pipelines[label].predict_proba([(text, article_text, thread)])[0, 1] for label in ("toxic", "off_topic")}


@pytest.mark.parametrize("text", [
    "Les patrouilles communes, enfin une bonne nouvelle pour la frontière.",
    "Espèce de C0NN4RD, retourne dormir",
    "gagne 500000 FCFA/jour sur https://bet.example/bonus WhatsApp +225 07 00 00 00 00",
    "😂😂😂", "12 34", "ok", "x" * 5000,
])
def test_fast_path_gives_the_pipeline_numbers(scorer, text):
    for article in (None, ARTICLE, dict(ARTICLE, comments=["Bravo aux soldats", "La frontière est longue"]),
                    dict(ARTICLE, comments=THREAD)):
        fast = scorer.score(text, article)
        slow = pipeline_scores(scorer, text, article)
        for label in slow:
            assert fast[label] == pytest.approx(slow[label], abs=1e-9)


def test_fast_path_matches_on_the_projects_own_comments(scorer):
    frame = corpora.load(["data"]).frame.sample(150, random_state=3)
    for text, article, thread in examples(frame):
        parts = article.split("\n", 1) + [""]
        fast = scorer.score(text, {"title": parts[0], "body": parts[1], "comments": thread.split("\n") if thread else []})
        for label in ("toxic", "off_topic"):
            slow = scorer.pipelines[label].predict_proba([(text, article, thread)])[0, 1]
            assert fast[label] == pytest.approx(slow, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=200).filter(lambda t: t.strip() and "\x00" not in t))
def test_fast_path_matches_on_arbitrary_unicode(scorer, text):
    try:
        fast = scorer.score(text)
    except InputError:
        return
    slow = pipeline_scores(scorer, text)
    assert fast["toxic"] == pytest.approx(slow["toxic"], abs=1e-9)
    assert fast["off_topic"] == pytest.approx(slow["off_topic"], abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=60).filter(lambda t: "\x00" not in t), max_size=6))
def test_fast_path_matches_on_arbitrary_threads(scorer, comments):
    article = dict(ARTICLE, comments=comments)
    fast = scorer.score("Les patrouilles communes, enfin", article)
    slow = pipeline_scores(scorer, "Les patrouilles communes, enfin", article)
    assert fast["off_topic"] == pytest.approx(slow["off_topic"], abs=1e-9)


def test_a_context_document_is_normalised_line_by_line():
    assert normalise_context("\n".join(THREAD[:2])) == "bravo aux soldats s alope la frontiere est longue p"
    assert normalise_context("  \n\n") == ""


def test_a_thread_gaining_one_comment_at_a_time_scores_as_on_a_cold_scorer(scorer):
    pool = THREAD + corpora.load(["data"]).frame["text"].sample(24, random_state=7).tolist()
    warm = Scorer(scorer.pipelines, scorer.policy, scorer.version)
    for start in range(len(pool) - 20):
        article = dict(ARTICLE, comments=pool[start:start + 20])
        cold = Scorer(scorer.pipelines, scorer.policy, scorer.version)
        for text in ("Les patrouilles communes, enfin", pool[start + 20]):
            moved, fresh = warm.score(text, article), cold.score(text, article)
            assert moved["off_topic"] == pytest.approx(fresh["off_topic"], abs=1e-12)
            assert (moved["toxic"], moved["labels"], moved["decision"]) == (fresh["toxic"], fresh["labels"], fresh["decision"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([*THREAD, "", "Bravo", "Bravo !", "la frontière est longue"]), min_size=20, max_size=40),
       st.lists(st.tuples(st.integers(0, 2), st.integers(-1, 1)), min_size=1, max_size=20))
def test_a_thread_moving_any_way_on_one_article_scores_as_the_pipeline(scorer, pool, moves):
    warm = Scorer(scorer.pipelines, scorer.policy, scorer.version)
    start, size = 0, 12
    for shift, growth in moves:  # a comment or two published, an old one gone, the same lines again...
        start, size = start + shift, max(0, size + growth)
        article = dict(ARTICLE, comments=pool[start:start + size])
        fast = warm.score("Les patrouilles communes, enfin", article)
        slow = pipeline_scores(scorer, "Les patrouilles communes, enfin", article)
        assert fast["off_topic"] == pytest.approx(slow["off_topic"], abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=12))
def test_char_grams_are_the_vectorizers_own(scorer, word):
    analyzer = scorer.pipelines["toxic"].named_steps["features"].char_.build_analyzer()
    assert sorted(char_wb_grams(word, 2, 5)) == sorted(analyzer(word))


def test_output_has_the_documented_shape(scorer):
    result = scorer.score("Espèce de C0NN4RD, retourne dormir", ARTICLE)
    assert set(result) == {"toxic", "off_topic", "decision", "labels", "explanation", "model_version"}
    assert 0 <= result["toxic"] <= 1 and 0 <= result["off_topic"] <= 1
    assert set(result["explanation"]) == {"toxic", "off_topic"}
    for terms in result["explanation"].values():
        for term in terms:
            assert set(term) == {"term", "weight", "spans"} and term["weight"] > 0


def test_explanation_highlights_the_obfuscated_insult_where_it_was_written(scorer):
    text = "Franchement, espèce de C0NN4RD!!"
    result = scorer.score(text, ARTICLE)
    assert "toxic" in result["labels"]
    top = {term["term"]: term for term in result["explanation"]["toxic"]}
    assert "connard" in top
    assert [text[a:b] for a, b in top["connard"]["spans"]] == ["C0NN4RD"]


def test_every_highlight_is_the_term_as_written(scorer):
    frame = corpora.load(["data"]).frame.sample(300, random_state=5)
    for text in frame["text"]:
        for terms in scorer.score(text)["explanation"].values():
            for term in terms:
                for start, end in term["spans"]:
                    assert normalise_text(text[start:end]) == term["term"], (text, term)


def test_explanation_of_spam_points_at_the_link(scorer):
    text = "Gagnez 50 000 F par jour ici https://gain-rapide.example/go"
    result = scorer.score(text, ARTICLE)
    assert "off_topic" in result["labels"]
    link = next(term for term in result["explanation"]["off_topic"] if term["term"] == "xurlx")
    assert [text[a:b] for a, b in link["spans"]] == ["https://gain-rapide.example/go"]


@pytest.mark.parametrize("reply", ["@Awa merci", "@Jean oui, tout à fait", "@Kader225 bravo pour l'analyse"])
def test_a_friendly_reply_to_someone_is_not_flagged(scorer, reply):
    assert "toxic" not in scorer.score(reply, ARTICLE)["labels"]


def bulk_items() -> list:
    """What a bulk import sends: comments with and without their article, threads that move, repeats, odd Unicode."""
    frame = corpora.load(["data"]).frame.sample(150, random_state=11)
    items = [{"text": row.text, "article": {"title": row.article_title, "body": row.article_body}}
             if isinstance(row.article_title, str) and row.article_title else row.text for row in frame.itertuples()]
    odd = ["😂😂😂", "!!!", "\u200bok\u200b", "e\u0301\u0301 ça", "ﬁnance Ｍａｌｉ Straße", "مرحبا بكم في الموقع", "12 34",
           "x" * 5000, "s a l o p e", "« Personne ne dit que les X sont des Y »", "t'es pas un con", "Espèce de C0NN4RD!!",
           "voir https://bet.example/a ou @Awa, +225 07 00 00 00 00", "fils de pute", "🐒🐒 singe"]
    threads = [{"text": text, "article": dict(ARTICLE, comments=THREAD[start:start + 4])}
               for start, text in enumerate(["Bravo aux soldats", "Les patrouilles communes, enfin", "ok", "la frontière"])]
    return [*items[:60], *odd, *threads, *items[60:], *items[:10], *threads[:2], {"text": "ok", "article": ARTICLE}]


def test_score_many_gives_what_score_gives_for_each_comment_in_order(scorer, monkeypatch):
    monkeypatch.setattr(scorer_module, "BATCH_SIZE", 16)  # batches end mid-thread and between repeats
    items = bulk_items()
    many = scorer.score_many(items)
    assert len(many) == len(items)
    for item, batched in zip(items, many):
        single = scorer.score(item) if isinstance(item, str) else scorer.score(item["text"], item.get("article"))
        for label in ("toxic", "off_topic"):
            assert batched[label] == pytest.approx(single[label], abs=1e-9), item
        assert batched["explanation"] == single["explanation"], item
        assert (batched["decision"], batched["labels"], batched["model_version"]) == \
            (single["decision"], single["labels"], single["model_version"])


def test_score_many_refuses_a_bad_item_by_its_place_or_keeps_the_error_there(scorer):
    items = ["Bravo aux soldats", {"text": ""}, {"text": "ok", "article": "titre"}, 42, {"article": ARTICLE},
             {"text": "Espèce de C0NN4RD", "article": ARTICLE}]
    with pytest.raises(InputError, match=r"^item 1: 'text' is empty$"):
        scorer.score_many(items)
    results = scorer.score_many(items, return_errors=True)
    assert [str(result) for result in results[1:5]] == [
        "'text' is empty", "'article' must be an object, not str", "an item must be a string or an object with 'text', not int",
        "'text' is required"]
    assert all(isinstance(result, InputError) for result in results[1:5])
    assert results[0] == scorer.score("Bravo aux soldats")
    assert results[5] == scorer.score("Espèce de C0NN4RD", ARTICLE)
    assert scorer.score_many([]) == []


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_a_normalised_comment_has_the_same_words_for_every_block(text):
    """The scorer splits a comment once: the word block's tokens must be the words the character block reads."""
    normalised = normalise_text(text)
    assert re.findall(TOKEN_PATTERN, normalised) == normalised.split()


@pytest.mark.parametrize(("text", "article", "message"), [
    (None, None, "'text' is required"),
    (42, None, "'text' must be a string"),
    ("   ", None, "'text' is empty"),
    ("a" * 20_001, None, "20,001 characters long; the limit is 20,000"),
    ("nul\x00byte", None, "NUL character at position 3"),
    ("lone \ud800", None, r"lone surrogate \(U\+D800\) at position 5"),
    ("ok", "article", "'article' must be an object"),
    ("ok", {"title": 3}, "'article.title' must be a string"),
    ("ok", {"comments": "x"}, "'article.comments' must be a list of strings"),
])
def test_bad_input_is_refused_with_the_reason(scorer, text, article, message):
    with pytest.raises(InputError, match=message):
        scorer.score(text, article)


def test_the_trained_model_passes_every_check(scorer, trained):
    checks = corpora.load_checks(DEFAULT_CHECKS)
    failures = run_checks(scorer, checks)
    assert failures == [], "\n".join(f"{f['label']} should {f['expect']}: {f['score']} {f['text']}" for f in failures)
    assert len(checks) >= 100


def seed_parts(lines):
    """Title, body and reader comments of the seed page (the comments follow 'Infos à la une')."""
    marker = lines.index("Infos à la une")
    end = lines.index("Communiqués")
    return lines[0], "\n".join(lines[1:marker]), lines[marker + 1:end]


def test_seed_comments_are_scored_sensibly(scorer, seed_page):
    title, body, comments = seed_parts(seed_page)
    assert len(comments) == 3
    article = {"title": title, "body": body}
    jibe = min(comments, key=len)  # the one-line jibe
    opinions = [c for c in comments if c is not jibe]
    assert "off_topic" in scorer.score(jibe, article)["labels"]
    assert scorer.score(jibe, article)["decision"] == REVIEW
    for opinion in opinions:
        result = scorer.score(opinion, article)
        assert result["decision"] == PUBLISH, (opinion, result["toxic"], result["off_topic"])
