"""The fast scoring path: comments in, calibrated scores, a decision and an explanation out.

scikit-learn's Pipeline.predict_proba spends most of its time building sparse matrices and
validating input. Here the fitted vocabularies, IDF weights and coefficients are laid out once,
and comments are scored in batches: each comment costs a normalisation, a split into words and
its marked words in Python; the words of the whole batch are then looked up together (each
distinct word once) and every block is summed with numpy over the batch at once. A single
comment is a batch of one, so `score` and `score_many` give the same numbers, which are those of
the saved pipelines (tests hold them to 1e-9).
"""

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter

import numpy as np
import scipy.sparse as sp

from .corpora import LABELS
from .features import CONTEXT_FEATURES, char_wb_grams, context_lines, normalise_context, topic_words
from .lexicon import WordList
from .policy import Policy
from .text import FUNCTION_WORDS, QUOTED, Normalised, listed_positions, normalise, normalise_text, word_marks
from .validation import InputError, check_article, check_text

# Articles and threads in play, and their lines: a thread is 20 comments, most of them one line long.
CONTEXT_CACHE_SIZE = 512
THREAD_LINE_CACHE_SIZE = 4096
WORD_CACHE_SIZE = 16384  # words whose known character n-grams are kept: the common ones of a site's comments
REBUILD_AFTER = 64
# Comments summed together: enough to spread the cost of each numpy call, few enough that their arrays stay small.
BATCH_SIZE = 256
EXPLANATION_TERMS = 5
EXPLANATION_MIN_WEIGHT = 0.05
RELEVANCE_TERM = "(article relevance)"
LENGTH_TERM = "(length)"
QUOTED_TERM = "(quoted words)"
NEGATED_TERM = "(negated words)"
# The explanation's terms that are effects rather than words; on equal weight, words come first, then these in this order.
EFFECT_TERMS = (QUOTED_TERM, NEGATED_TERM, RELEVANCE_TERM, LENGTH_TERM)
_CHUNK = re.compile(r"\S+")
_APART = "\x00"  # between two comments' words, so that no word n-gram reaches from one into the next
# Each context feature's effect term: the first six measure relevance, the last two length.
_CONTEXT_GROUPS = ([EFFECT_TERMS.index(RELEVANCE_TERM)] * len(CONTEXT_FEATURES[:6])
                   + [EFFECT_TERMS.index(LENGTH_TERM)] * len(CONTEXT_FEATURES[6:]))


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
        self._word_columns = text_features.word_.vocabulary_
        self._char_columns = text_features.char_.vocabulary_
        # The word and character blocks side by side, as in the pipelines: one column space, one IDF array.
        self._char_offset = len(self._word_columns)
        offset = self._char_offset + len(self._char_columns)
        self._idf = np.concatenate([text_features.word_.idf_, text_features.char_.idf_])
        self._text_weights = np.array([c[:offset] for c in coefficients])
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
        return self._score_batch([_checked(text, article)])[0]

    def score_many(self, items, return_errors: bool = False) -> list:
        """What `score` gives for each item, in order, scored in batches: about twice as fast as one at a time.

        Items are plain strings or dicts with "text" and optional "article". An invalid item
        raises its InputError, saying which item, before anything is scored; with
        return_errors=True its InputError takes its place in the list instead, and the other
        items are scored all the same (as asyncio.gather's return_exceptions does).
        """
        checked = [_checked_item(index, item, return_errors) for index, item in enumerate(items)]
        valid = [comment for comment in checked if not isinstance(comment, InputError)]
        scored = iter(chain.from_iterable(self._score_batch(valid[start:start + BATCH_SIZE])
                                          for start in range(0, len(valid), BATCH_SIZE)))
        return [comment if isinstance(comment, InputError) else next(scored) for comment in checked]

    def _score_batch(self, comments: list[tuple[str, str, str]]) -> list[dict]:
        """Score checked (text, article text, thread text) comments together."""
        read = [self._read(text) for text, _, _ in comments]
        batch = _Batch(read)
        weights = np.zeros((2, len(batch.strings)))  # each word's push on both labels, for the explanation
        decisions = self._add_text(batch, weights) + self._add_vectors(batch, weights)
        effects = np.zeros((2, len(read), len(EFFECT_TERMS)))
        decisions += self._add_marks(read, batch, weights, effects)
        decisions[1] += self._add_context(comments, read, effects[1])
        weights = (weights * self._scales()[:, None]).tolist()
        effects = (effects * self._scales()[:, None, None]).transpose(1, 0, 2).tolist()
        return [self._result(values, _explain(comment, [row[first:first + len(comment.words)] for row in weights], effect))
                for comment, values, effect, first in zip(read, decisions.T.tolist(), effects, batch.firsts)]

    def _read(self, text: str) -> "_Comment":
        """The Python part of a comment's scoring: normalised, split into words, marked."""
        normalised = normalise(text)
        # Normalised, punctuation is space and a symbol stands alone, so these are also the tokens the word block reads.
        words = _CHUNK.findall(normalised.text)
        listed = listed_positions(words, self._word_list)
        return _Comment(normalised, words, listed, word_marks(text, normalised, words, listed))

    def _scales(self) -> np.ndarray:
        """Log-odds of each label's calibrated score per unit of decision value."""
        return np.array([-a for a, _ in self._calibration])

    def _result(self, decisions: list[float], explanation: dict) -> dict:
        """The calibrated scores, the policy's decision and labels, the explanation."""
        scores = {}
        for index, label in enumerate(LABELS):
            a, b = self._calibration[index]
            scores[label] = 1.0 / (1.0 + math.exp(a * (decisions[index] + self._intercepts[index]) + b))
        return {
            "toxic": scores["toxic"],
            "off_topic": scores["off_topic"],
            "decision": self.policy.decide(scores),
            "labels": self.policy.labels(scores),
            "explanation": explanation,
            "model_version": self.version,
        }

    def _add_text(self, batch: "_Batch", weights: np.ndarray) -> np.ndarray:
        """The word and character TF-IDF blocks of every comment, each L2-normalised; each word is credited its share.

        Each occurrence of an n-gram touches one or more words, each taking `share` of it. An
        n-gram counted n times in a comment has TF-IDF (1 + log n) * idf; each occurrence
        carries 1/n of its contribution.
        """
        entries, columns, shares = self._word_grams(batch)
        char_entries, char_columns = self._char_grams(batch)
        entries, columns = np.concatenate([entries, char_entries]), np.concatenate([columns, char_columns])
        shares = np.concatenate([shares, np.ones(len(char_entries))])
        comments = batch.comment_of[entries]
        width = len(self._idf)
        unique, inverse = np.unique(comments * width + columns, return_inverse=True)
        counts = np.rint(np.bincount(inverse, weights=shares))
        unique_columns = unique % width
        values = (1.0 + np.log(counts)) * self._idf[unique_columns]
        blocks = unique // width * 2 + (unique_columns >= self._char_offset)  # (comment, block): normalised apart
        norms = np.sqrt(np.bincount(blocks, weights=values * values))
        per_occurrence = (self._text_weights[:, unique_columns] * (values / (counts * norms[blocks])))[:, inverse] * shares
        return self._credit(batch, weights, entries, comments, per_occurrence)

    def _word_grams(self, batch: "_Batch") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(entry, column, share) of each word touched by each word n-gram the model knows, over the whole batch."""
        entries, columns, shares = [], [], []
        for size in range(self._word_range[0], self._word_range[1] + 1):
            grams = batch.stream if size == 1 else map(" ".join, zip(*(batch.stream[k:] for k in range(size))))
            found = np.array(list(map(self._word_columns.get, grams)), dtype=float)
            starts = np.flatnonzero(~np.isnan(found))
            known = found[starts].astype(np.intp)
            for k in range(size):
                entries.append(batch.stream_entries[starts + k])
                columns.append(known)
                shares.append(np.full(len(starts), 1.0 / size))
        return np.concatenate(entries), np.concatenate(columns), np.concatenate(shares)

    def _char_grams(self, batch: "_Batch") -> tuple[np.ndarray, np.ndarray]:
        """(entry, column) of each character n-gram the model knows, each distinct word's looked up once."""
        known = [self._known_chars(word) for word in batch.distinct]
        lengths = np.array([len(columns) for columns in known], dtype=np.intp)
        starts = np.cumsum(lengths) - lengths  # where each distinct word's columns begin in `flat`
        flat = np.concatenate([*known, np.zeros(0, dtype=np.intp)])
        per_entry = lengths[batch.word_ids]
        begins = np.cumsum(per_entry) - per_entry  # where each entry's columns begin in the result
        positions = np.arange(per_entry.sum()) + np.repeat(starts[batch.word_ids] - begins, per_entry)
        return np.repeat(np.arange(len(per_entry)), per_entry), flat[positions]

    def _char_grams_in_vocabulary(self, word: str) -> np.ndarray:
        """The columns of a word's character n-grams that the model knows (cached: words recur)."""
        columns, offset = self._char_columns, self._char_offset
        return np.array([columns[gram] + offset for gram in char_wb_grams(word, *self._char_range) if gram in columns],
                        dtype=np.intp)

    def _add_vectors(self, batch: "_Batch", weights: np.ndarray) -> np.ndarray:
        """The word-vector block: the unit mean of each comment's word vectors; each word is credited its share."""
        if self._vectors is None:
            return np.zeros((2, len(batch.comments)))
        index = self._vectors.index
        rows = np.array([index.get(word, -1) for word in batch.distinct], dtype=np.intp)[batch.word_ids]
        entries = np.flatnonzero(rows >= 0)
        rows, comments = rows[entries], batch.comment_of[entries]
        counts = np.bincount(comments, minlength=len(batch.comments))
        if len(counts) == 1:  # the API's lone comment: setting up a sparse matrix would cost more than the sum
            sums = self._vectors.table[rows].sum(axis=0, keepdims=True)
        else:  # entries run comment by comment, so they are already the rows of a sparse matrix
            by_comment = sp.csr_matrix((np.ones(len(rows)), rows, np.concatenate([[0], np.cumsum(counts)])),
                                       shape=(len(counts), len(self._vectors.table)))
            sums = by_comment @ self._vectors.table
        norms = np.linalg.norm(sums / np.maximum(counts, 1)[:, None], axis=1)
        factors = np.divide(self._vector_scale, norms * counts, out=np.zeros(len(counts)), where=norms > 0)
        return self._credit(batch, weights, entries, comments, self._projections[rows].T * factors[comments])

    @staticmethod
    def _credit(batch: "_Batch", weights: np.ndarray, entries: np.ndarray, comments: np.ndarray, contributions) -> np.ndarray:
        """Add contributions (one row per label) to their words' weights; return their sums by comment."""
        decisions = np.zeros((2, len(batch.comments)))
        for label in (0, 1):
            weights[label] += np.bincount(entries, weights=contributions[label], minlength=weights.shape[1])
            decisions[label] = np.bincount(comments, weights=contributions[label], minlength=len(batch.comments))
        return decisions

    def _add_marks(self, read: list["_Comment"], batch: "_Batch", weights: np.ndarray, effects: np.ndarray) -> np.ndarray:
        """The TF-IDF block of marked words (L2-normalised like the others), comment by comment: few have any.

        A word-list mark is credited to the listed words themselves, so they are highlighted.
        """
        decisions = np.zeros((2, len(read)))
        credited = ([], [], [])  # entry, toxic, off_topic
        for number, comment in enumerate(read):
            if not comment.marks:
                continue
            counts = Counter(comment.marks)
            found = [(gram, (1.0 + math.log(count)) * self._marks[gram][0])
                     for gram, count in counts.items() if gram in self._marks]
            norm = math.sqrt(sum(value * value for _, value in found))
            for gram, value in found:
                contributions = [value / norm * self._marks[gram][label + 1] for label in (0, 1)]
                decisions[:, number] += contributions
                listed = next((positions for mark, positions in comment.listed.items() if gram.endswith(mark)), None)
                if listed:
                    credited[0].extend(batch.firsts[number] + position for position in listed)
                    for label in (0, 1):
                        credited[label + 1].extend([contributions[label] / len(listed)] * len(listed))
                else:
                    effect = EFFECT_TERMS.index(QUOTED_TERM if gram.startswith(QUOTED) else NEGATED_TERM)
                    effects[:, number, effect] += contributions
        entries = np.array(credited[0], dtype=np.intp)
        for label in (0, 1):
            weights[label] += np.bincount(entries, weights=credited[label + 1], minlength=weights.shape[1])
        return decisions

    def _add_context(self, comments: list[tuple[str, str, str]], read: list["_Comment"], effects: np.ndarray) -> list[float]:
        """The off-topic context features of each comment; each article and thread worked out once per batch."""
        vectors, decisions = {}, []
        for number, ((_, article_text, thread_text), comment) in enumerate(zip(comments, read)):
            if (article_text, thread_text) not in vectors:
                vectors[article_text, thread_text] = (self._article_vector(article_text),
                                                      self._thread_vector(article_text, thread_text))
            values = self._context.row(comment.normalised.text, *vectors[article_text, thread_text])
            decision = 0.0
            for group, value, weight in zip(_CONTEXT_GROUPS, values, self._context_weights):
                decision += value * weight
                effects[number, group] += value * weight
            decisions.append(decision)
        return decisions


@dataclass(frozen=True, slots=True)
class _Comment:
    """A comment as read for scoring: normalised, its words, and what the word lists found."""

    normalised: Normalised
    words: list[str]
    listed: dict[str, list[int]]
    marks: list[str]

    def spans(self) -> list[tuple[int, int]]:
        """Each word's span in the normalised text: found again only for comments whose explanation shows words."""
        return [match.span() for match in _CHUNK.finditer(self.normalised.text)]


class _Batch:
    """The words of a batch of comments laid end to end ("entries"), with the comment and distinct word of each.

    For the word n-grams, the words also run as one stream with a separator before each comment.
    """

    def __init__(self, comments: list[_Comment]):
        self.comments = comments
        self.strings: list[str] = []
        self.firsts: list[int] = []  # each comment's first entry
        self.stream: list[str] = []
        stream_entries = []
        for comment in comments:
            first = len(self.strings)
            self.firsts.append(first)
            self.strings += comment.words
            self.stream.append(_APART)
            self.stream += comment.words
            stream_entries.append(-1)
            stream_entries += range(first, len(self.strings))
        self.comment_of = np.repeat(np.arange(len(comments)), [len(comment.words) for comment in comments])
        self.distinct = list(dict.fromkeys(self.strings))
        ids = {word: number for number, word in enumerate(self.distinct)}
        self.word_ids = np.fromiter(map(ids.__getitem__, self.strings), dtype=np.intp, count=len(self.strings))
        self.stream_entries = np.array(stream_entries, dtype=np.intp)


def _checked(text, article) -> tuple[str, str, str]:
    """A comment's text, article text and thread text; an InputError says what is wrong with them."""
    check_text(text)
    return (text, *check_article(article))


def _checked_item(index: int, item, return_errors: bool):
    """One item of score_many, checked: (text, article text, thread text), or its InputError when kept in its place."""
    try:
        if isinstance(item, str):
            return _checked(item, None)
        if not isinstance(item, dict):
            raise InputError(f"an item must be a string or an object with 'text', not {type(item).__name__}")
        return _checked(item.get("text"), item.get("article"))
    except InputError as error:
        if return_errors:
            return error
        raise InputError(f"item {index}: {error}", error.field) from None


def _explain(comment: _Comment, weights: list[list[float]], effects: list[list[float]]) -> dict:
    """Per label, the words (and effects) that pushed the score up most, with spans in the original text.

    `weights` are each word's push on each label, and `effects` each effect term's, in log-odds
    of the calibrated score. A word's weight is summed over its occurrences, all of which are
    highlighted; on a tie, the word seen first ranks first.
    """
    occurrences: dict[str, list[int]] = {}
    for index, word in enumerate(comment.words):
        # Function words weigh in n-grams ("les X sont des Y") but highlighting them tells a moderator nothing.
        if word in FUNCTION_WORDS:
            continue
        if word in occurrences:
            occurrences[word].append(index)
        else:
            occurrences[word] = [index]
    explanation, spans = {}, []
    for label, label_weights, label_effects in zip(LABELS, weights, effects):
        totals = [(word, sum(map(label_weights.__getitem__, indexes))) for word, indexes in occurrences.items()]
        terms = []
        for term, weight in sorted([*totals, *zip(EFFECT_TERMS, label_effects)], key=itemgetter(1), reverse=True):
            if len(terms) == EXPLANATION_TERMS or weight < EXPLANATION_MIN_WEIGHT:
                break
            spans = spans or comment.spans()
            where = _original_spans(comment, spans, occurrences.get(term, ()))
            terms.append({"term": term, "weight": round(weight, 4), "spans": where})
        explanation[label] = terms
    return explanation


def _original_spans(comment: _Comment, spans: list[tuple[int, int]], indexes: list[int]) -> list[list[int]]:
    """The sorted [start, end) spans in the original text of the comment's entries at these indexes."""
    return [list(span) for span in sorted({comment.normalised.span(*spans[index]) for index in indexes})]


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
