"""The fast scoring path: one comment in, calibrated scores, a decision and an explanation out.

scikit-learn's Pipeline.predict_proba spends most of a single comment's time building sparse
matrices and validating input. Here the fitted vocabularies, IDF weights and coefficients are
laid out once as one dictionary per block, and a comment costs a normalisation, one lookup per
n-gram and a few sums. The numbers are those of the saved pipelines (tests hold them to 1e-9).
"""

import math
import re
from collections import defaultdict
from functools import lru_cache

from .corpora import LABELS
from .features import CONTEXT_FEATURES, TOKEN_PATTERN, char_wb_grams, word_ngrams
from .policy import Policy
from .text import normalise, normalise_text
from .validation import check_article, check_text

EXPLANATION_TERMS = 5
EXPLANATION_MIN_WEIGHT = 0.05
RELEVANCE_TERM = "(article relevance)"
LENGTH_TERM = "(length)"
_TOKEN = re.compile(TOKEN_PATTERN)
_CHUNK = re.compile(r"\S+")
_CONTEXT_GROUPS = {name: RELEVANCE_TERM for name in CONTEXT_FEATURES[:6]} | {name: LENGTH_TERM for name in CONTEXT_FEATURES[6:]}


class Scorer:
    """Scores comments with one model version, applying a policy to the scores."""

    def __init__(self, pipelines: dict, policy: Policy, version: str):
        self.version = version
        self.policy = policy
        self.pipelines = pipelines
        text_features = pipelines["toxic"].named_steps["features"]
        union = pipelines["off_topic"].named_steps["features"]
        if dict(union.transformer_list)["text"] is not text_features:
            raise ValueError("both labels must share one fitted TextFeatures step")
        self._context = dict(union.transformer_list)["context"]
        self._word_range = text_features.word_.ngram_range
        self._char_range = text_features.char_.ngram_range
        weights = {label: _calibrated_parts(pipelines[label]) for label in LABELS}
        n_words = len(text_features.word_.vocabulary_)
        self._words = _table(text_features.word_, [weights[label][0] for label in LABELS], 0)
        self._chars = _table(text_features.char_, [weights[label][0] for label in LABELS], n_words)
        n_text = n_words + len(text_features.char_.vocabulary_)
        self._context_weights = weights["off_topic"][0][n_text:].tolist()
        self._intercepts = [weights[label][1] for label in LABELS]
        self._calibration = [weights[label][2] for label in LABELS]
        self._context_vector = lru_cache(maxsize=512)(self._normalised_vector)

    def _normalised_vector(self, document: str) -> dict[str, float]:
        """Context vector of an article or thread; cached, since many comments share one article."""
        return self._context.vector(normalise_text(document)) if document else {}

    def score(self, text: str, article: dict | None = None) -> dict:
        """Scores, labels, decision and explanation for one comment."""
        check_text(text)
        article_text, thread_text = check_article(article)
        normalised = normalise(text)
        decisions = [0.0, 0.0]
        per_token = [defaultdict(float), defaultdict(float)]
        tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(normalised.text)]
        self._add_block(decisions, per_token, _word_occurrences(tokens, self._word_range), self._words)
        self._add_block(decisions, per_token, _char_occurrences(normalised.text, self._char_range), self._chars)
        extra = self._add_context(decisions, normalised.text, article_text, thread_text)
        scores, weights = {}, {}
        for index, label in enumerate(LABELS):
            a, b = self._calibration[index]
            decision = decisions[index] + self._intercepts[index]
            scores[label] = 1.0 / (1.0 + math.exp(a * decision + b))
            weights[label] = (-a, per_token[index])
        labels = self.policy.labels(scores)
        return {
            "toxic": scores["toxic"],
            "off_topic": scores["off_topic"],
            "decision": self.policy.decide(scores),
            "labels": labels,
            "explanation": {
                label: _explain(normalised, weights[label][1], weights[label][0], extra if label == "off_topic" else {})
                for label in LABELS
            },
            "model_version": self.version,
        }

    def score_many(self, items) -> list[dict]:
        """Score many comments: items are dicts with "text" and optional "article", or plain strings."""
        return [self.score(item) if isinstance(item, str) else self.score(item.get("text"), item.get("article")) for item in items]

    @staticmethod
    def _add_block(decisions, per_token, occurrences, table):
        """Add one L2-normalised TF-IDF block to both labels' decision values and token weights."""
        found = []
        squares = 0.0
        for gram, places in occurrences.items():
            entry = table.get(gram)
            if entry is None:
                continue
            value = (1.0 + math.log(len(places))) * entry[0]
            squares += value * value
            found.append((value, entry, places))
        if not squares:
            return
        norm = math.sqrt(squares)
        for value, entry, places in found:
            scaled = value / norm
            for index in (0, 1):
                contribution = scaled * entry[index + 1]
                decisions[index] += contribution
                share = contribution / len(places)
                for place in places:
                    for token in place:
                        per_token[index][token] += share / len(place)

    def _add_context(self, decisions, text, article_text, thread_text) -> dict[str, float]:
        """Add the off-topic context features; return their contributions by explanation term."""
        values = self._context.row(text, self._context_vector(article_text), self._context_vector(thread_text))
        extra = defaultdict(float)
        for name, value, weight in zip(CONTEXT_FEATURES, values, self._context_weights):
            decisions[1] += value * weight
            extra[_CONTEXT_GROUPS[name]] += value * weight
        return extra


def _calibrated_parts(pipeline):
    """Coefficients, intercept and sigmoid calibration (a, b) of a pipeline's classifier."""
    calibrated = pipeline.named_steps["classifier"].calibrated_classifiers_[0]
    calibrator = calibrated.calibrators[0]
    estimator = calibrated.estimator
    return estimator.coef_[0], float(estimator.intercept_[0]), (float(calibrator.a_), float(calibrator.b_))


def _table(vectorizer, coefficients, offset) -> dict[str, tuple[float, float, float]]:
    """gram -> (idf, toxic weight, off-topic weight) for one vectorizer's vocabulary."""
    idf = vectorizer.idf_.tolist()
    toxic, off_topic = (c[offset:offset + len(idf)].tolist() for c in coefficients)
    return {gram: (idf[i], toxic[i], off_topic[i]) for gram, i in vectorizer.vocabulary_.items()}


def _word_occurrences(tokens, ngram_range) -> dict[str, list[tuple]]:
    """Each word n-gram with, per occurrence, the (start, end) of the tokens it covers."""
    occurrences = defaultdict(list)
    words = [token[0] for token in tokens]
    for gram, first, last in word_ngrams(words, *ngram_range):
        occurrences[gram].append(tuple((tokens[i][1], tokens[i][2]) for i in range(first, last + 1)))
    return occurrences


def _char_occurrences(text: str, ngram_range) -> dict[str, list[tuple]]:
    """Each character n-gram with, per occurrence, the (start, end) of the word it lies in."""
    occurrences = defaultdict(list)
    for match in _CHUNK.finditer(text):
        place = ((match.start(), match.end()),)
        for gram in char_wb_grams(match.group(), *ngram_range):
            occurrences[gram].append(place)
    return occurrences


def _explain(normalised, per_token, scale, extra) -> list[dict]:
    """The words (and context effects) that pushed a score up most, with spans in the original text."""
    by_term = defaultdict(lambda: [0.0, []])
    for (start, end), weight in per_token.items():
        entry = by_term[normalised.text[start:end]]
        entry[0] += weight * scale
        entry[1].append(list(normalised.span(start, end)))
    for term, weight in extra.items():
        by_term[term][0] += weight * scale
    ranked = sorted(by_term.items(), key=lambda item: -item[1][0])
    return [
        {"term": term, "weight": round(weight, 4), "spans": sorted(spans)}
        for term, (weight, spans) in ranked[:EXPLANATION_TERMS]
        if weight >= EXPLANATION_MIN_WEIGHT
    ]
