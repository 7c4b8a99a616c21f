"""Training: from a canonical dataset to fitted pipelines, thresholds and held-out metrics.

Rows are split by a hash of their article (or text), so the same rows are held out on every
run and a refresh can compare models on the same ground. Thresholds are chosen on a second
hashed split of the training rows, then the final model is fitted on all training rows.
"""

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve
from sklearn.pipeline import FeatureUnion, Pipeline

from .corpora import LABELS, Dataset
from .features import ContextFeatures, Normaliser, TextFeatures
from .policy import LabelThresholds, Policy

HOLDOUT_SHARE = 0.2
VALIDATION_SHARE = 0.2
# Keyword-collected tweets add vocabulary; at full weight they teach "politics = toxic".
SOURCE_WEIGHTS = {"canonical": 1.0, "mlma": 0.25, "davidson": 0.1, "jigsaw": 0.25}
THREAD_SIZE = 20
CALIBRATION_FOLDS = 5
REGULARISATION = {"toxic": 16.0, "off_topic": 8.0}
# A comment clearly about its own story becomes an off-topic example when shown under another.
MOVED_MIN_SIMILARITY = 0.2
MOVED_WEIGHT = 0.5


@dataclass
class TrainedModel:
    """What training produces: one pipeline per label and the thresholds chosen for them."""

    pipelines: dict[str, Pipeline]
    policy: Policy
    reject_suggestions: dict[str, float | None] = field(default_factory=dict)


def _fraction(key: str, salt: str) -> float:
    """A stable number in [0, 1) for a key: the same row falls in the same split on every run."""
    digest = hashlib.sha256(f"{salt}:{key}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def group_keys(frame: pd.DataFrame) -> pd.Series:
    """Rows of one article stay together; rows without one are their own group."""
    return frame["article_id"].where(frame["article_id"] != "", "text:" + frame["text"])


def holdout_mask(frame: pd.DataFrame) -> np.ndarray:
    """Rows that no model trained by this project ever learns from."""
    keys = frame["source"] + "|" + group_keys(frame)
    return keys.map(lambda key: _fraction(key, "holdout") < HOLDOUT_SHARE).to_numpy(dtype=bool)


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


def sample_weights(frame: pd.DataFrame, formats: dict[str, str]) -> np.ndarray:
    """Per-row weight from the format of the row's source."""
    return frame["source"].map(lambda source: SOURCE_WEIGHTS.get(formats.get(source, "canonical"), 1.0)).to_numpy(float)


def _classifier(label: str, splits) -> CalibratedClassifierCV:
    """Logistic regression whose scores are made probabilities by sigmoid calibration."""
    return CalibratedClassifierCV(
        LogisticRegression(C=REGULARISATION[label], solver="liblinear", max_iter=1000),
        method="sigmoid", cv=splits, ensemble=False,
    )


def _group_splits(groups: list[str], folds: int):
    """Calibration folds that never put two copies of one text on both sides."""
    fold_of = np.array([int(_fraction(group, "fold") * folds) for group in groups])
    return [(np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)) for k in range(folds) if (fold_of == k).any()]


class _Design:
    """Feature matrices and targets for one label, built once and reused for each fit."""

    def __init__(self, label, rows, targets, weights, groups, transform):
        self.label = label
        self.matrix = transform(rows)
        self.targets = np.asarray(targets, dtype=int)
        self.weights = np.asarray(weights, dtype=float)
        self.groups = list(groups)

    def fit(self, mask=None) -> CalibratedClassifierCV:
        """Fit the calibrated classifier on the selected rows."""
        index = np.arange(len(self.targets)) if mask is None else np.flatnonzero(mask)
        groups = [self.groups[i] for i in index]
        classifier = _classifier(self.label, _group_splits(groups, CALIBRATION_FOLDS))
        return classifier.fit(self.matrix[index], self.targets[index], sample_weight=self.weights[index])


def _off_topic_rows(frame, rows, normalised, context: ContextFeatures):
    """Off-topic training rows: each comment with full, article-only and no context, plus moved ones."""
    out, targets, weights, groups = [], [], [], []
    base = frame["off_topic"].to_numpy()
    row_weights = frame["weight"].to_numpy()
    for index, (text, article, thread) in enumerate(rows):
        variants = [(text, article, thread), (text, article, ""), (text, "", "")] if article else [(text, "", "")]
        for variant in variants:
            out.append(variant)
            targets.append(base[index])
            weights.append(row_weights[index] / len(variants))
            groups.append(text)
    moved = _moved_rows(frame, rows, normalised, context)
    for variant in moved:
        out.append(variant)
        targets.append(1)
        weights.append(MOVED_WEIGHT)
        groups.append(variant[0])
    return out, targets, weights, groups


def _moved_rows(frame, rows, normalised, context: ContextFeatures):
    """Comments clearly about their own article, shown under a different article."""
    by_article = {}
    for index, (text, article, thread) in enumerate(rows):
        if article:
            by_article.setdefault(frame["article_id"].iloc[index], (article, thread))
    article_ids = sorted(by_article)
    if len(article_ids) < 2:
        return []
    article_vectors = {}
    moved = []
    for index, (text, article, thread) in enumerate(rows):
        own = frame["article_id"].iloc[index]
        if not article or frame["off_topic"].iloc[index] != 0 or frame["toxic"].iloc[index] == 1:
            continue
        comment, article_text, _ = normalised[index]
        if article_text not in article_vectors:
            article_vectors[article_text] = context.vector(article_text)
        if context.row(comment, article_vectors[article_text], {})[1] < MOVED_MIN_SIMILARITY:
            continue
        others = [a for a in article_ids if a != own]
        other = others[int(_fraction(text, "moved") * len(others))]
        moved.append((text, *by_article[other]))
    return moved


def _thresholds(targets, probabilities) -> tuple[float, float | None]:
    """Review threshold with the best F1 on validation; a reject suggestion at 95% precision."""
    precision, recall, cuts = precision_recall_curve(targets, probabilities)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    review = float(cuts[int(np.argmax(f1))])
    confident = np.flatnonzero((precision[:-1] >= 0.95) & (recall[:-1] > 0))
    reject = float(cuts[confident[0]]) if len(confident) else None
    return round(review, 4), None if reject is None else round(max(reject, review), 4)


def train(dataset: Dataset, progress=lambda message: None) -> TrainedModel:
    """Fit both labels' pipelines on the non-held-out rows of a dataset."""
    formats = {source.path: source.format for source in dataset.sources}
    frame = dataset.frame[~holdout_mask(dataset.frame)].reset_index(drop=True)
    frame["weight"] = sample_weights(frame, formats)
    progress(f"{len(frame)} training rows ({len(dataset.frame) - len(frame)} held out)")
    rows = examples(frame)
    normaliser = Normaliser()
    normalised = normaliser.transform(rows)
    progress("normalised the text")

    text_features = TextFeatures().fit(normalised)
    context_features = ContextFeatures().fit(normalised)
    union = FeatureUnion([("text", text_features), ("context", context_features)])
    progress(f"vocabulary: {len(text_features.word_.vocabulary_)} words, {len(text_features.char_.vocabulary_)} character n-grams")
    feature_steps = {"toxic": text_features, "off_topic": union}
    validation = (group_keys(frame).map(lambda key: _fraction(key, "validation") < VALIDATION_SHARE)).to_numpy(bool)

    pipelines, thresholds, suggestions = {}, {}, {}
    for label in LABELS:
        known = frame[label].notna().to_numpy()
        if label == "toxic":
            design_rows = [rows[i] for i in np.flatnonzero(known)]
            targets = frame.loc[known, label].to_numpy()
            weights = frame.loc[known, "weight"].to_numpy()
            groups = frame.loc[known, "text"].tolist()
            is_validation = validation[known]
        else:
            subset = frame[known].reset_index(drop=True)
            subset_rows = [rows[i] for i in np.flatnonzero(known)]
            design_rows, targets, weights, groups = _off_topic_rows(subset, subset_rows, normalised[known], context_features)
            validation_texts = set(subset.loc[validation[known], "text"])
            is_validation = np.array([group in validation_texts for group in groups])
        transform = lambda batch, steps=feature_steps[label]: steps.transform(normaliser.transform(batch))
        design = _Design(label, design_rows, targets, weights, groups, transform)
        probe = design.fit(~is_validation)
        probabilities = probe.predict_proba(design.matrix[is_validation])[:, 1]
        review, reject = _thresholds(design.targets[is_validation], probabilities)
        thresholds[label] = LabelThresholds(review)
        suggestions[label] = reject
        classifier = design.fit()
        pipelines[label] = Pipeline([("normalise", normaliser), ("features", feature_steps[label]), ("classifier", classifier)])
        progress(f"{label}: fitted on {len(design.targets)} rows, review threshold {review}")
    return TrainedModel(pipelines, Policy(thresholds), suggestions)
