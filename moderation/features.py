"""The model's features: word, character and marked-word TF-IDF of the comment, and its relevance to the article.

Each transformer here is a scikit-learn step of the saved pipelines, and also exposes the
per-comment arithmetic the fast scorer uses, so both paths compute the very same numbers.
"""

import math
from collections import Counter

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from .lexicon import WordList
from .text import PLACEHOLDERS, QUOTED, marked_words, normalise, normalise_text
from .vectors import WordVectors

TOKEN_PATTERN = r"(?u)\w+|[^\w\s]"
MARK_PATTERN = r"\S+"
CONTEXT_FEATURES = (
    "has_article", "article_similarity", "article_similarity_sqrt",
    "has_thread", "thread_similarity", "thread_similarity_sqrt",
    "length", "very_short",
)
# Words shorter than this carry no topic ("le", "et", "lol"); longer ones are cut to a stem.
_MIN_TOPIC_WORD = 3
_STEM = 6


class Normaliser(BaseEstimator, TransformerMixin):
    """Turns raw (text, article, thread) rows into normalised strings, plus the comment's marked words.

    `word_list` is the bad-word list entries kept for this model (see lexicon.unambiguous).
    """

    def __init__(self, word_list: WordList | None = None):
        self.word_list = word_list

    def fit(self, X, y=None):
        """Stateless: nothing to learn."""
        return self

    def transform(self, X):
        """Normalise each column of each row, normalising repeated articles and threads only once."""
        seen: dict[str, str] = {}
        out = np.empty((len(X), 4), dtype=object)
        for index, row in enumerate(X):
            text, article, thread = _as_row(row)
            normalised = normalise(text)
            out[index, 0] = normalised.text
            for column, value in ((1, article), (2, thread)):
                if value not in seen:
                    seen[value] = normalise_context(value)
                out[index, column] = seen[value]
            out[index, 3] = marked_words(text, normalised, self.word_list)
        return out


def context_lines(document: str) -> list[str]:
    """The lines of an article or of a thread (its comments joined by newlines), each normalised on its own."""
    return document.split("\n")


def normalise_context(document: str) -> str:
    """An article or thread normalised line by line and joined by spaces.

    No rule (spaced letters, a URL) then reaches across two comments, so a thread's topic words
    are its comments' words in order, and the scorer can normalise each comment once and cache it.
    """
    return " ".join(filter(None, map(normalise_text, context_lines(document))))


def _as_row(row) -> tuple[str, str, str]:
    """A bare string is a comment with no article and no thread."""
    if isinstance(row, str):
        return row, "", ""
    text, article, thread = (list(row) + ["", ""])[:3]
    return text, article or "", thread or ""


def word_ngrams(tokens: list[str], low: int, high: int):
    """Yield (gram, first_token, last_token) for the word n-grams the vectorizer counts."""
    for size in range(low, high + 1):
        for first in range(len(tokens) - size + 1):
            yield " ".join(tokens[first:first + size]), first, first + size - 1


def char_wb_grams(word: str, low: int, high: int) -> list[str]:
    """Character n-grams of one space-padded word, as scikit-learn's char_wb analyzer counts them."""
    padded = f" {word} "
    grams = []
    for size in range(low, high + 1):
        if size >= len(padded):
            grams.append(padded)
            break
        grams.extend(padded[start:start + size] for start in range(len(padded) - size + 1))
    return grams


class TextFeatures(BaseEstimator, TransformerMixin):
    """Word (1-2 grams), accent-folded character (2-5 grams within words) and marked-word TF-IDF.

    With `vectors`, a fourth block: the unit mean of the comment's word vectors, times `vector_scale`.
    """

    def __init__(self, word_min_df=2, char_min_df=2, char_max_features=200_000, vectors: WordVectors | None = None,
                 vector_scale=1.0):
        self.word_min_df = word_min_df
        self.char_min_df = char_min_df
        self.char_max_features = char_max_features
        self.vectors = vectors
        self.vector_scale = vector_scale

    def __setstate__(self, state):
        """Models saved before the word-vector block load as models without it."""
        super().__setstate__({"vectors": None, "vector_scale": 1.0, **state})

    def fit(self, X, y=None):
        """Learn the vocabularies from the normalised comments and their marked words."""
        texts = _texts(X)
        self.word_ = TfidfVectorizer(
            lowercase=False, token_pattern=TOKEN_PATTERN, ngram_range=(1, 2),
            min_df=self.word_min_df, sublinear_tf=True,
        ).fit(texts)
        self.char_ = TfidfVectorizer(
            lowercase=False, analyzer="char_wb", ngram_range=(2, 5), min_df=self.char_min_df,
            max_features=self.char_max_features, sublinear_tf=True,
        ).fit(texts)
        self.marks_ = self._marks_vectorizer([row[3] for row in X])
        return self

    def _marks_vectorizer(self, marks: list[str]) -> TfidfVectorizer:
        """TF-IDF of marked words; a corpus without any still gets an (unused) vocabulary."""
        vectorizer = TfidfVectorizer(lowercase=False, token_pattern=MARK_PATTERN, min_df=self.word_min_df, sublinear_tf=True)
        try:
            return vectorizer.fit(marks)
        except ValueError:
            return vectorizer.set_params(vocabulary=[QUOTED]).fit(marks)

    def transform(self, X):
        """The three TF-IDF blocks side by side."""
        texts = _texts(X)
        blocks = [self.word_.transform(texts), self.char_.transform(texts), self.marks_.transform([row[3] for row in X])]
        if self.vectors is not None:
            blocks.append(sp.csr_matrix(self._dense(texts)))
        return sp.hstack(blocks, format="csr")

    def _dense(self, texts: list[str]) -> np.ndarray:
        """The word-vector block: one scaled unit mean per comment, zeros where no word has a vector."""
        dense = np.zeros((len(texts), self.vectors.table.shape[1]))
        for index, text in enumerate(texts):
            mean = self.vectors.mean(text.split())
            if mean is not None:
                dense[index] = mean * self.vector_scale
        return dense

    def get_feature_names_out(self, input_features=None):
        """Prefixed names, so a weight can be traced to its block."""
        names = [f"{block}:{name}" for block, vectorizer in (("word", self.word_), ("char", self.char_), ("mark", self.marks_))
                 for name in vectorizer.get_feature_names_out()]
        if self.vectors is not None:
            names += [f"vector:{dimension}" for dimension in range(self.vectors.table.shape[1])]
        return np.asarray(names, dtype=object)


def _texts(X):
    """The comment column of normalised rows."""
    return [row[0] for row in X]


class ContextFeatures(BaseEstimator, TransformerMixin):
    """How much a comment shares with its article and with the thread of accepted comments."""

    def fit(self, X, y=None):
        """Learn document frequencies of topic words over comments and their articles."""
        documents = Counter()
        articles = set()
        for text, article, _thread, _marks in X:
            documents.update(set(topic_words(text)))
            if article and article not in articles:
                articles.add(article)
                documents.update(set(topic_words(article)))
        total = len(X) + len(articles)
        self.idf_ = {word: math.log((1 + total) / (1 + count)) + 1 for word, count in documents.items()}
        self.unseen_idf_ = math.log(1 + total) + 1
        return self

    def transform(self, X):
        """One dense row of context features per comment."""
        return np.array(
            [self.row(text, self.vector(article), self.vector(thread)) for text, article, thread, _marks in X],
            dtype=float,
        ).reshape(len(X), len(CONTEXT_FEATURES))

    def get_feature_names_out(self, input_features=None):
        """Names of the context features."""
        return np.asarray([f"context:{name}" for name in CONTEXT_FEATURES], dtype=object)

    def vector(self, normalised: str) -> dict[str, float]:
        """Unit-length TF-IDF vector of a normalised document's topic words."""
        return self.counts_vector(Counter(topic_words(normalised)))

    def counts_vector(self, counts: Counter) -> dict[str, float]:
        """Unit-length TF-IDF vector of topic-word counts."""
        weights = {word: self.weight(word, count) for word, count in counts.items()}
        norm = math.sqrt(sum(value * value for value in weights.values()))
        return {word: value / norm for word, value in weights.items()} if norm else {}

    def weight(self, word: str, count: int) -> float:
        """TF-IDF weight of a topic word counted `count` times (sublinear, like the text blocks); 0 for none."""
        if count == 0:
            return 0.0
        idf = self.idf_.get(word, self.unseen_idf_)
        return idf if count == 1 else (1 + math.log(count)) * idf

    def row(self, text: str, article: dict[str, float], thread: dict[str, float]) -> list[float]:
        """The context features of one normalised comment against prepared article and thread vectors."""
        comment = self.vector(text)
        on_article = _cosine(comment, article)
        on_thread = _cosine(comment, thread)
        words = len(text.split())
        return [
            float(bool(article)), on_article, math.sqrt(on_article),
            float(bool(thread)), on_thread, math.sqrt(on_thread),
            math.log1p(words) / 4, float(words <= 3),
        ]


def topic_words(normalised: str) -> list[str]:
    """Crudely stemmed content words: enough to see that "terroristes" and "terrorisme" agree."""
    return [word[:_STEM] for word in normalised.split() if len(word) >= _MIN_TOPIC_WORD and word not in PLACEHOLDERS]


def _cosine(left: dict[str, float], right: dict[str, float]) -> float:
    """Cosine of two unit vectors stored as dicts."""
    if len(left) > len(right):
        left, right = right, left
    return sum(value * right.get(word, 0.0) for word, value in left.items())
