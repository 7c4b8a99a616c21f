"""The fast scoring path: one comment in, calibrated scores, a decision and an explanation out.

scikit-learn's Pipeline.predict_proba spends most of a single comment's time building sparse
matrices and validating input. Here the fitted vocabularies, IDF weights and coefficients are
laid out once per block, and a comment costs a normalisation, one lookup per word n-gram (and
per word for its character n-grams, cached) and a few numpy sums. The numbers are those of
the saved pipelines (tests hold them to 1e-9).
"""

import math
import re
import threading
from collections import Counter, defaultdict
from functools import lru_cache
from itertools import chain

import numpy as np

from .corpora import LABELS
from .features import CONTEXT_FEATURES, TOKEN_PATTERN, char_wb_grams, context_lines, normalise_context, topic_words, word_ngrams
from .lexicon import ABUSE_MARK, LEXICON_MARK, WordList, abusive_positions
from .policy import Policy
from .text import FUNCTION_WORDS, QUOTED, marked_words, normalise, normalise_text
from .validation import check_article, check_text

# Articles and threads in play, and their lines: a thread is 20 comments, most of them one line long.
CONTEXT_CACHE_SIZE = 512
THREAD_LINE_CACHE_SIZE = 4096
WORD_CACHE_SIZE = 16384  # words whose known character n-grams are kept: the common ones of a site's comments
REBUILD_AFTER = 64
EXPLANATION_TERMS = 5
EXPLANATION_MIN_WEIGHT = 0.05
RELEVANCE_TERM = "(article relevance)"
LENGTH_TERM = "(length)"
QUOTED_TERM = "(quoted words)"
NEGATED_TERM = "(negated words)"
_TOKEN = re.compile(TOKEN_PATTERN)
_CHUNK = re.compile(r"\S+")
_CONTEXT_GROUPS = {name: RELEVANCE_TERM for name in CONTEXT_FEATURES[:6]} | {name: LENGTH_TERM for name in CONTEXT_FEATURES[6:]}


class Scorer:
    """Scores comments with one model version, applying a policy to the scores."""

    def __init__(self, pipelines: dict, policy: Policy, version: str, metadata: dict | None = None):
        self.version = version
        self.metadata = metadata or {}
        self.policy = policy
        self.pipelines = pipelines
        text_features = pipelines["toxic"].named_steps["features"]
        union = pipelines["off_topic"].named_steps["features"]
        if dict(union.transformer_list)["text"] is not text_features:
            raise ValueError("both labels must share one fitted TextFeatures step")
        self._context = dict(union.transformer_list)["context"]
        self._word_list = getattr(pipelines["toxic"].named_steps["normalise"], "word_list", None) or WordList()
        self._word_range = text_features.word_.ngram_range
        self._char_range = text_features.char_.ngram_range
        weights = {label: _calibrated_parts(pipelines[label]) for label in LABELS}
        coefficients = [weights[label][0] for label in LABELS]
        self._words = _Block(text_features.word_, coefficients, 0)
        offset = len(text_features.word_.vocabulary_)
        self._chars = _Block(text_features.char_, coefficients, offset)
        offset += len(text_features.char_.vocabulary_)
        self._marks = _table(text_features.marks_, coefficients, offset)
        offset += len(text_features.marks_.vocabulary_)
        self._vectors = text_features.vectors
        if self._vectors is not None:
            width = self._vectors.table.shape[1]
            dense_weights = np.array([c[offset:offset + width] for c in coefficients])
            # Each vector's push on both labels, so a comment costs one mean and a lookup per word.
            self._projections = self._vectors.table @ dense_weights.T
            self._vector_scale = text_features.vector_scale
            offset += width
        self._context_weights = weights["off_topic"][0][offset:].tolist()
        self._intercepts = [weights[label][1] for label in LABELS]
        self._calibration = [weights[label][2] for label in LABELS]
        self._article_vector = lru_cache(maxsize=CONTEXT_CACHE_SIZE)(self._normalised_vector)
        self._line_words = lru_cache(maxsize=THREAD_LINE_CACHE_SIZE)(_line_topic_words)
        self._known_chars = lru_cache(maxsize=WORD_CACHE_SIZE)(self._char_grams_in_vocabulary)
        self._threads: dict[str, _Thread] = {}  # by article text: the last thread seen there
        self._threads_lock = threading.Lock()

    def _normalised_vector(self, article_text: str) -> dict[str, float]:
        """Context vector of an article; cached, since many comments share one article."""
        return self._context.vector(normalise_context(article_text))

    def _thread_vector(self, article_text: str, thread_text: str) -> "_Thread | dict":
        """Context vector of a thread, moved on from the last thread seen on the same article.

        A thread is the latest comments, so it changes whenever one is published, by a comment or
        two: only the lines that came and went are counted (their topic words cached by line). The
        pipeline normalises a thread line by line too, so these counts are exactly its own.
        """
        if not thread_text:
            return {}
        previous = self._threads.get(article_text)
        thread = _Thread.moved(previous, context_lines(thread_text), self._line_words, self._context.weight)
        with self._threads_lock:
            self._threads.pop(article_text, None)
            self._threads[article_text] = thread
            if len(self._threads) > CONTEXT_CACHE_SIZE:
                del self._threads[next(iter(self._threads))]
        return thread

    def score(self, text: str, article: dict | None = None) -> dict:
        """Scores, labels, decision and explanation for one comment."""
        check_text(text)
        article_text, thread_text = check_article(article)
        normalised = normalise(text)
        decisions, per_token = [0.0, 0.0], [defaultdict(float), defaultdict(float)]
        extra = [defaultdict(float), defaultdict(float)]
        chunks = self._add_text(decisions, per_token, normalised.text)
        self._add_vectors(decisions, per_token, chunks)
        words = [chunk[0] for chunk in chunks]
        listed = {mark: [chunks[i][1:] for i in positions]
                  for mark, positions in ((ABUSE_MARK, abusive_positions(words)), (LEXICON_MARK, self._word_list.positions(words)))}
        self._add_marks(decisions, per_token, extra, marked_words(text, normalised, self._word_list), listed)
        self._add_context(decisions, extra[1], normalised.text, article_text, thread_text)
        scores, explanation = {}, {}
        for index, label in enumerate(LABELS):
            a, b = self._calibration[index]
            scores[label] = 1.0 / (1.0 + math.exp(a * (decisions[index] + self._intercepts[index]) + b))
            explanation[label] = _explain(normalised, per_token[index], -a, extra[index])
        return {
            "toxic": scores["toxic"],
            "off_topic": scores["off_topic"],
            "decision": self.policy.decide(scores),
            "labels": self.policy.labels(scores),
            "explanation": explanation,
            "model_version": self.version,
        }

    def score_many(self, items) -> list[dict]:
        """Score many comments: items are dicts with "text" and optional "article", or plain strings."""
        return [self.score(item) if isinstance(item, str) else self.score(item.get("text"), item.get("article")) for item in items]

    def _add_text(self, decisions, per_token, text: str) -> list[tuple[str, int, int]]:
        """Add the word and character TF-IDF blocks of a normalised comment; return its words."""
        words = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
        columns, tokens, shares = [], [], []
        for gram, first, last in word_ngrams([word[0] for word in words], *self._word_range):
            column = self._words.columns.get(gram)
            if column is not None:
                columns += [column] * (last - first + 1)
                tokens += range(first, last + 1)
                shares += [1.0 / (last - first + 1)] * (last - first + 1)
        self._words.add(decisions, per_token, words, np.array(columns, dtype=np.intp), np.array(tokens, dtype=np.intp),
                        np.array(shares))
        chunks = [(m.group(), m.start(), m.end()) for m in _CHUNK.finditer(text)]
        if chunks:
            known = [self._known_chars(chunk[0]) for chunk in chunks]
            self._chars.add(decisions, per_token, chunks, np.concatenate(known),
                            np.repeat(np.arange(len(chunks)), [len(columns) for columns in known]))
        return chunks

    def _char_grams_in_vocabulary(self, word: str) -> np.ndarray:
        """The columns of a word's character n-grams that the model knows (cached: words recur)."""
        columns = self._chars.columns
        return np.array([columns[gram] for gram in char_wb_grams(word, *self._char_range) if gram in columns], dtype=np.intp)

    def _add_vectors(self, decisions, per_token, chunks: list[tuple[str, int, int]]) -> None:
        """Add the word-vector block; each word with a vector is credited its share of the mean."""
        if self._vectors is None:
            return
        index = self._vectors.index
        found = [(index[word], start, end) for word, start, end in chunks if word in index]
        if not found:
            return
        rows = [row for row, _, _ in found]
        norm = float(np.linalg.norm(self._vectors.table[rows].mean(axis=0)))
        if not norm:
            return
        shares = (self._projections[rows] * (self._vector_scale / (norm * len(rows)))).tolist()
        for (_, start, end), share in zip(found, shares):
            for label in (0, 1):
                decisions[label] += share[label]
                per_token[label][(start, end)] += share[label]

    def _add_marks(self, decisions, per_token, extra, marks: str, listed: dict[str, list[tuple[int, int]]]) -> None:
        """Add the TF-IDF block of marked words (L2-normalised like the others).

        A word-list mark is credited to the listed words themselves, so they are highlighted.
        """
        counts = Counter(marks.split())
        found = [(gram, (1.0 + math.log(count)) * self._marks[gram][0]) for gram, count in counts.items() if gram in self._marks]
        norm = math.sqrt(sum(value * value for _, value in found))
        for gram, value in found:
            for index in (0, 1):
                contribution = value / norm * self._marks[gram][index + 1]
                decisions[index] += contribution
                spans = next((spans for mark, spans in listed.items() if gram.endswith(mark)), None)
                if spans:
                    for span in spans:
                        per_token[index][span] += contribution / len(spans)
                else:
                    extra[index][QUOTED_TERM if gram.startswith(QUOTED) else NEGATED_TERM] += contribution

    def _add_context(self, decisions, extra, text, article_text, thread_text) -> None:
        """Add the off-topic context features and their contributions by explanation term."""
        values = self._context.row(text, self._article_vector(article_text), self._thread_vector(article_text, thread_text))
        for name, value, weight in zip(CONTEXT_FEATURES, values, self._context_weights):
            decisions[1] += value * weight
            extra[_CONTEXT_GROUPS[name]] += value * weight


class _Thread:
    """A thread's topic-word counts and squared norm, read as its unit TF-IDF vector (get, items, len).

    Made from the previous thread of the same article by the lines that came and went; summed
    afresh every REBUILD_AFTER moves, and when most lines changed, so rounding cannot build up.
    """

    __slots__ = ("lines", "counts", "squares", "moves", "weight", "norm")

    def __init__(self, lines: list[str], counts: dict[str, int], squares: float, moves: int, weight):
        self.lines, self.counts, self.moves, self.weight = lines, counts, moves, weight
        self.squares = squares if counts else 0.0
        self.norm = math.sqrt(self.squares)

    @classmethod
    def moved(cls, previous: "_Thread | None", lines: list[str], words_of, weight) -> "_Thread":
        """The thread of `lines`, from `previous` when only a few lines differ."""
        if previous is not None and previous.moves < REBUILD_AFTER:
            before, now = Counter(previous.lines), Counter(lines)
            gone, came = before - now, now - before
            if not gone and not came:  # nothing published since: the same thread
                return previous
            if gone.total() + came.total() <= len(lines) // 2:
                return previous._changed_by(lines, gone, came, words_of)
        counts = Counter(chain.from_iterable(words_of(line) for line in lines))
        return cls(lines, counts, sum(weight(word, count) ** 2 for word, count in counts.items()), 0, weight)

    def _changed_by(self, lines: list[str], gone: Counter, came: Counter, words_of) -> "_Thread":
        """A new thread: this one without the `gone` lines and with the `came` ones."""
        delta = Counter()
        for changed, sign in ((gone, -1), (came, 1)):
            for line, times in changed.items():
                for word in words_of(line):
                    delta[word] += sign * times
        counts, squares = dict(self.counts), self.squares
        for word, change in delta.items():
            if change:
                old = counts.get(word, 0)
                squares += self.weight(word, old + change) ** 2 - self.weight(word, old) ** 2
                if old + change:
                    counts[word] = old + change
                else:
                    del counts[word]
        return _Thread(lines, counts, squares, self.moves + 1, self.weight)

    def get(self, word: str, default: float = 0.0) -> float:
        """The word's weight in the unit vector."""
        count = self.counts.get(word)
        return self.weight(word, count) / self.norm if count else default

    def items(self):
        """(word, weight) pairs of the unit vector."""
        return ((word, self.weight(word, count) / self.norm) for word, count in self.counts.items())

    def __len__(self) -> int:
        return len(self.counts)


def _line_topic_words(line: str) -> tuple[str, ...]:
    """Topic words of one line of a thread (a tuple, as the cache shares it between threads)."""
    return tuple(topic_words(normalise_text(line)))


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


class _Block:
    """One TF-IDF block of the model laid out for scoring: n-gram -> column, each column's IDF and weights on both labels."""

    def __init__(self, vectorizer, coefficients, offset: int):
        self.columns = vectorizer.vocabulary_
        self.idf = vectorizer.idf_
        self.weights = np.array([c[offset:offset + len(self.idf)] for c in coefficients])

    def add(self, decisions, per_token, spans, columns: np.ndarray, tokens: np.ndarray, shares: np.ndarray | None = None) -> None:
        """Add the block, L2-normalised, to both labels' decisions and to each token's weight.

        Each (columns[i], tokens[i]) is an n-gram occurrence touching a token, which takes shares[i]
        of it (all of it when shares is None). An n-gram counted n times has TF-IDF
        (1 + log n) * idf; each occurrence carries 1/n of its contribution.
        """
        if not len(columns):
            return
        unique, inverse = np.unique(columns, return_inverse=True)
        counts = np.bincount(inverse) if shares is None else np.rint(np.bincount(inverse, weights=shares))
        values = (1.0 + np.log(counts)) * self.idf[unique]
        per_occurrence = (values / (counts * math.sqrt(values @ values)))[inverse]
        if shares is not None:
            per_occurrence *= shares
        contributions = self.weights[:, unique][:, inverse] * per_occurrence
        by_token = [np.bincount(tokens, weights=row, minlength=len(spans)) for row in contributions]
        for label in (0, 1):
            decisions[label] += float(by_token[label].sum())
        for (_, start, end), toxic, off_topic in zip(spans, by_token[0].tolist(), by_token[1].tolist()):
            if toxic or off_topic:
                per_token[0][(start, end)] += toxic
                per_token[1][(start, end)] += off_topic


def _explain(normalised, per_token, scale, extra) -> list[dict]:
    """The words (and context effects) that pushed a score up most, with spans in the original text."""
    by_term = defaultdict(lambda: [0.0, []])
    for (start, end), weight in per_token.items():
        # Function words weigh in n-grams ("les X sont des Y") but highlighting them tells a moderator nothing.
        if normalised.text[start:end] in FUNCTION_WORDS:
            continue
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
