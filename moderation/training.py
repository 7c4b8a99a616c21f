"""Training: from a canonical dataset to fitted pipelines, thresholds and held-out metrics.

Rows are split by a hash of their article (or text), so the same rows are held out on every
run and a refresh can compare models on the same ground. Thresholds are chosen on
out-of-fold predictions (folds by article), then the final model is fitted on all training rows.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve
from sklearn.pipeline import FeatureUnion, Pipeline

from .corpora import LABELS, DataError, Dataset
from .features import ContextFeatures, Normaliser, TextFeatures
from .identity import swapped
from .lexicon import WORD_LIST_PATH, WordList, read_word_list, unambiguous
from .noise import noisy
from .policy import LabelThresholds, Policy
from .splits import _fraction, group_keys, holdout_mask
from .text import normalise_text
from .vectors import package_vectors

THRESHOLD_FOLDS = 3
# Real text from other places, weighted below the site-like data/. The French tweets (MLMA fr, FTR) count at 0.15:
# they lift held-out FTR from 0.61 to 0.78 ROC-AUC; more weight teaches "a group's name = toxic" (at MLMA 0.25 and
# FTR 0.5, identity mentions, counter-speech and denials failed the checks). The English corpora stay at 0: at 0.05
# to 0.2 they failed English counter-speech, quotes and untargeted swearing. CyberAgression (non-commercial) is only
# ever passed by hand. A "format/language" entry overrides its format's weight for rows in that language. A site's own
# rows ("site", from the refresh) carry their own weights in a `row_weight` column (see feedback.py).
SOURCE_WEIGHTS = {"canonical": 1.0, "site": 1.0, "mlma": 0.15, "mlma/en": 0.0, "ftr": 0.15, "toxic_spans": 0.0, "davidson": 0.0,
                  "jigsaw": 0.25, "cyberagression": 0.25}
# Measured on, never trained on: a score on rows the model has seen says nothing.
BENCHMARK_FORMATS = frozenset({"hateday"})
THREAD_SIZE = 20
CALIBRATION_FOLDS = 3
REGULARISATION = {"toxic": 16.0, "off_topic": 8.0}
# A comment clearly about its own story becomes an off-topic example when shown under another.
MOVED_MIN_SIMILARITY = 0.2
MOVED_WEIGHT = 0.5
# Copies of each comment naming another identity group, so a group's name carries no weight.
SWAPPED_COPIES = 2
SWAPPED_WEIGHT = 0.5
# French word vectors beside the TF-IDF blocks (see vectors.py): +0.02 ROC-AUC on the HateDay dev set, +0.04 on FTR.
WORD_VECTORS = True
# The most of all the training weight a site's own rows may carry (see _bound_site_share).
MAX_SITE_SHARE = 0.5
# A phone-typed copy of each written comment, so typography carries no label.
NOISY_WEIGHT = 0.3


@dataclass
class TrainedModel:
    """What training produces: one pipeline per label and the thresholds chosen for them."""

    pipelines: dict[str, Pipeline]
    policy: Policy
    reject_suggestions: dict[str, float | None] = field(default_factory=dict)


def contexts(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Article text and a thread of accepted comments for every row, as the scorer would get them.

    Accepted comments of an article are split in two halves; a row is shown the half it is
    not in, so no comment is ever its own context.
    """
    articles = (frame["article_title"] + "\n" + frame["article_body"]).str.strip().tolist()
    halves = frame["text"].map(lambda text: _fraction(text, "thread") < 0.5).to_numpy()
    accepted = ((frame["toxic"] == 0) & (frame["off_topic"] == 0)).to_numpy()
    threads = [""] * len(frame)
    for article_id, positions in frame.groupby("article_id").indices.items():
        if article_id == "":
            continue
        pools = {
            half: "\n".join(frame["text"].iloc[[p for p in positions if accepted[p] and halves[p] == half]].head(THREAD_SIZE))
            for half in (True, False)
        }
        for position in positions:
            threads[position] = pools[not halves[position]]
    return articles, threads


def examples(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """Pipeline input rows (text, article, thread) for a frame."""
    articles, threads = contexts(frame)
    return list(zip(frame["text"].tolist(), articles, threads))


def source_weight(kind: str, language: str) -> float:
    """Training weight of a row from a source of this format, in this language."""
    return SOURCE_WEIGHTS.get(f"{kind}/{language}", SOURCE_WEIGHTS.get(kind, 1.0))


def sample_weights(frame: pd.DataFrame, formats: dict[str, str]) -> np.ndarray:
    """Per-row weight from the format of the row's source and the row's language."""
    kinds = frame["file"].map(lambda path: formats.get(path, "canonical"))
    return np.array([source_weight(kind, language) for kind, language in zip(kinds, frame["language"])], dtype=float)


def _bound_site_share(frame: pd.DataFrame, formats: dict[str, str], progress) -> None:
    """Scale a site's rows down, in place, so they weigh at most MAX_SITE_SHARE of all the weight.

    Past that, data/'s identity, counter-speech and negation examples are outweighed and the
    model starts flagging "les musulmans" for the words a site's abusers use them with.
    """
    site = frame["file"].map(formats).eq("site").to_numpy()
    own, rest = frame.loc[site, "weight"].sum(), frame.loc[~site, "weight"].sum()
    limit = MAX_SITE_SHARE / (1 - MAX_SITE_SHARE) * rest
    if own > limit > 0:
        frame.loc[site, "weight"] *= limit / own
        progress(f"the site's rows weigh {own:,.0f}, scaled to {limit:,.0f} ({MAX_SITE_SHARE:.0%} of all the weight)")


def _classifier(label: str, splits) -> CalibratedClassifierCV:
    """Logistic regression whose scores are made probabilities by sigmoid calibration."""
    return CalibratedClassifierCV(
        LogisticRegression(C=REGULARISATION[label], solver="liblinear", max_iter=1000),
        method="sigmoid", cv=splits, ensemble=False,
    )


def _folds(keys: list[str], count: int, salt: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs that keep every key on one side."""
    fold_of = np.array([int(_fraction(key, salt) * count) for key in keys])
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(count) if (fold_of == k).any()]


@dataclass
class _Rows:
    """One label's training rows: inputs, targets, weights, and the keys that keep copies together."""

    inputs: list = field(default_factory=list)
    targets: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    articles: list = field(default_factory=list)
    realistic: list = field(default_factory=list)

    def add(self, row, target, weight, article, realistic=True, text=None):
        """Append one row; `realistic` rows are the ones thresholds are judged on.

        `text` names the comment a copy was made from, so copies stay on one side of a fold.
        """
        self.inputs.append(row)
        self.targets.append(target)
        self.weights.append(weight)
        self.texts.append(text or row[0])
        self.articles.append(article)
        self.realistic.append(realistic)


class _Design:
    """One label's feature matrix, built once and reused for every fit."""

    def __init__(self, label: str, rows: _Rows, transform):
        """Transform the rows once."""
        self.label = label
        self.rows = rows
        self.matrix = transform(rows.inputs)
        self.targets = np.asarray(rows.targets, dtype=int)
        self.weights = np.asarray(rows.weights, dtype=float)

    def fit(self, index=None) -> CalibratedClassifierCV:
        """Fit the calibrated classifier on the given rows (all by default)."""
        index = np.arange(len(self.targets)) if index is None else index
        splits = _folds([self.rows.texts[i] for i in index], CALIBRATION_FOLDS, "calibration")
        classifier = _classifier(self.label, splits)
        return classifier.fit(self.matrix[index], self.targets[index], sample_weight=self.weights[index])

    def out_of_fold(self, progress=lambda message: None) -> np.ndarray:
        """Each row's probability from a model that never saw its article."""
        probabilities = np.zeros(len(self.targets))
        for number, (train_index, test_index) in enumerate(_folds(self.rows.articles, THRESHOLD_FOLDS, "threshold"), 1):
            probabilities[test_index] = self.fit(train_index).predict_proba(self.matrix[test_index])[:, 1]
            progress(f"{self.label}: threshold fold {number} of {THRESHOLD_FOLDS} scored")
        return probabilities


def _toxic_rows(frame: pd.DataFrame, rows, news: np.ndarray) -> _Rows:
    """Toxic training rows: the comments alone, plus copies naming another group.

    Thresholds are judged on the original news comments only.
    """
    out = _Rows()
    for index, row in enumerate(rows):
        target, weight, article = frame["toxic"].iloc[index], frame["weight"].iloc[index], frame["group"].iloc[index]
        out.add(row, target, weight, article, bool(news[index]))
        if news[index] and NOISY_WEIGHT:
            out.add((noisy(row[0]), *row[1:]), target, weight * NOISY_WEIGHT, article, realistic=False, text=row[0])
        for copy in swapped(row[0], SWAPPED_COPIES):
            out.add((copy, *row[1:]), target, weight * SWAPPED_WEIGHT, article, realistic=False, text=row[0])
    return out


def _off_topic_rows(frame: pd.DataFrame, rows, normalised, context: ContextFeatures, news: np.ndarray) -> _Rows:
    """Off-topic training rows: each comment with full, article-only and no context, plus moved ones.

    Thresholds are judged on the news comments in their full context.
    """
    out = _Rows()
    for index, (text, article, thread) in enumerate(rows):
        variants = [(text, article, thread), (text, article, ""), (text, "", "")] if article else [(text, "", "")]
        for number, variant in enumerate(variants):
            out.add(variant, frame["off_topic"].iloc[index], frame["weight"].iloc[index] / len(variants),
                    frame["group"].iloc[index], realistic=number == 0 and bool(news[index]))
    for group, variant in _moved_rows(frame, rows, normalised, context):
        out.add(variant, 1, MOVED_WEIGHT, group, realistic=False)
    return out


def _moved_rows(frame, rows, normalised, context: ContextFeatures):
    """Comments clearly about their own article, shown under a different article."""
    by_article = {}
    for index, (_text, article, thread) in enumerate(rows):
        if article:
            by_article.setdefault(frame["article_id"].iloc[index], (article, thread))
    article_ids = sorted(by_article)
    if len(article_ids) < 2:
        return []
    article_vectors = {}
    moved = []
    for index, (text, article, _thread) in enumerate(rows):
        own = frame["article_id"].iloc[index]
        if not article or frame["off_topic"].iloc[index] != 0 or frame["toxic"].iloc[index] == 1:
            continue
        comment, article_text = normalised[index][:2]
        if article_text not in article_vectors:
            article_vectors[article_text] = context.vector(article_text)
        if context.row(comment, article_vectors[article_text], {})[1] < MOVED_MIN_SIMILARITY:
            continue
        others = [a for a in article_ids if a != own]
        other = others[int(_fraction(text, "moved") * len(others))]
        moved.append((frame["group"].iloc[index], (text, *by_article[other])))
    return moved


def _thresholds(targets, probabilities) -> tuple[float, float | None]:
    """Review threshold in the middle of the near-best F1 plateau; a reject suggestion at 95% precision.

    F1 is flat near its peak, so its arg-max alone jumps between runs; the median of the
    thresholds within 0.01 of the best F1 is stable.
    """
    precision, recall, cuts = precision_recall_curve(targets, probabilities)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    review = float(np.median(cuts[f1 >= f1.max() - 0.01]))
    confident = np.flatnonzero((precision[:-1] >= 0.95) & (recall[:-1] > 0))
    reject = float(cuts[confident[0]]) if len(confident) else None
    return round(review, 4), None if reject is None else round(max(reject, review), 4)


def word_list(frame: pd.DataFrame) -> WordList:
    """The vendored bad-word list, less the entries that are as common in this data's clean comments as in its toxic ones.

    Judged on the comments not marked English: the list is French, and "con" means something else in English.
    """
    judged = frame[frame["toxic"].notna() & (frame["language"] != "en")]
    return unambiguous(read_word_list(WORD_LIST_PATH, normalise_text), judged["text"].map(normalise_text).tolist(),
                       judged["toxic"].tolist())


def train(dataset: Dataset, progress=lambda message: None) -> TrainedModel:
    """Fit both labels' pipelines on the non-held-out rows of a dataset."""
    formats = {source.path: source.format for source in dataset.sources}
    benchmarks = sorted(path for path, kind in formats.items() if kind in BENCHMARK_FORMATS)
    if benchmarks:
        raise DataError(f"{benchmarks[0]}: a real-text benchmark, to measure on with `evaluate`; a model trained on it "
                        "would be judged on rows it has seen, so it is never trained on")
    frame = dataset.frame[~holdout_mask(dataset.frame)].reset_index(drop=True)
    progress(f"{len(frame)} training rows ({len(dataset.frame) - len(frame)} held out)")
    frame["weight"] = sample_weights(frame, formats)
    if "row_weight" in frame:
        frame["weight"] *= frame["row_weight"].fillna(1.0).to_numpy(dtype=float)
    _bound_site_share(frame, formats, progress)
    unweighted = sorted(set(frame.loc[frame["weight"] == 0, "file"]))
    if unweighted:
        progress(f"left out at weight 0: {', '.join(unweighted)}")
        frame = frame[frame["weight"] > 0].reset_index(drop=True)
    if frame.empty:
        raise DataError("every source given has weight 0 (see SOURCE_WEIGHTS in moderation/training.py): nothing to train on")
    frame["group"] = group_keys(frame)
    rows = examples(frame)
    normaliser = Normaliser(word_list=word_list(frame))
    progress(f"word list: {len(normaliser.word_list.words) + len(normaliser.word_list.phrases)} entries kept")
    normalised = normaliser.transform(rows)
    text_features = TextFeatures(vectors=package_vectors() if WORD_VECTORS else None).fit(normalised)
    context_features = ContextFeatures().fit(normalised)
    progress(f"vocabulary: {len(text_features.word_.vocabulary_)} words, {len(text_features.char_.vocabulary_)} character n-grams")
    feature_steps = {"toxic": text_features, "off_topic": FeatureUnion([("text", text_features), ("context", context_features)])}
    # Thresholds are judged on data/'s news comments when there are any: not on keyword-collected tweets, and not on a
    # site's own rows, so a refresh's candidate is held to the same thresholds' meaning as the model it may replace
    # (a site that wants its own sets them in the admin pages).
    news = frame["file"].map(formats).eq("canonical").to_numpy()

    pipelines, thresholds, suggestions = {}, {}, {}
    for label in LABELS:
        known = frame[label].notna().to_numpy()
        subset = frame[known].reset_index(drop=True)
        subset_rows = [rows[i] for i in np.flatnonzero(known)]
        if label == "toxic":
            label_rows = _toxic_rows(subset, subset_rows, news[known])
        else:
            label_rows = _off_topic_rows(subset, subset_rows, normalised[known], context_features, news[known])
        steps = feature_steps[label]
        design = _Design(label, label_rows, lambda batch, steps=steps: steps.transform(normaliser.transform(batch)))
        judged = np.asarray(label_rows.realistic) if any(label_rows.realistic) else np.ones(len(design.targets), bool)
        progress(f"{label}: {len(design.targets)} rows in {design.matrix.shape[1]} features")
        review, suggestions[label] = _thresholds(design.targets[judged], design.out_of_fold(progress)[judged])
        thresholds[label] = LabelThresholds(review)
        pipelines[label] = Pipeline([("normalise", normaliser), ("features", steps), ("classifier", design.fit())])
        progress(f"{label}: fitted on {len(design.targets)} rows, review threshold {review}")
    return TrainedModel(pipelines, Policy(thresholds), suggestions)
