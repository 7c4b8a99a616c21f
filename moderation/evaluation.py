"""Measuring a model: per-label metrics on labelled rows, the must-flag / must-pass checks, and the off-topic swap test."""

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from .corpora import LABELS
from .splits import _fraction, holdout_mask
from .training import contexts, examples

SWAP_LANGUAGES = ("fr", "en")


def label_metrics(targets, probabilities, threshold: float) -> dict:
    """ROC-AUC, PR-AUC, and precision/recall/F1 and confusion counts at the review threshold."""
    targets = np.asarray(targets, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    flagged = probabilities >= threshold
    tp = int((flagged & (targets == 1)).sum())
    fp = int((flagged & (targets == 0)).sum())
    fn = int((~flagged & (targets == 1)).sum())
    tn = int((~flagged & (targets == 0)).sum())
    both_classes = 0 < targets.sum() < len(targets)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "rows": int(len(targets)),
        "positives": int(targets.sum()),
        "roc_auc": round(float(roc_auc_score(targets, probabilities)), 4) if both_classes else None,
        "pr_auc": round(float(average_precision_score(targets, probabilities)), 4) if both_classes else None,
        "threshold": threshold,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    }


def predict(pipelines: dict, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each label's probabilities for every row, with article and thread context as in production."""
    rows = examples(frame)
    return {label: pipelines[label].predict_proba(rows)[:, 1] for label in LABELS}


def evaluate(pipelines: dict, thresholds: dict, frame: pd.DataFrame) -> tuple[dict, dict, dict]:
    """Metrics per label overall and per source file, and the probabilities behind them.

    Every row is scored once, with the same article threads, whichever way it is counted.
    """
    probabilities = predict(pipelines, frame)
    overall = _metrics(frame, probabilities, thresholds, np.ones(len(frame), dtype=bool))
    by_source = {
        path: _metrics(frame, probabilities, thresholds, (frame["file"] == path).to_numpy())
        for path in frame["file"].unique()
    }
    return overall, by_source, probabilities


def _metrics(frame, probabilities, thresholds, rows) -> dict:
    """Per-label metrics over the selected rows whose label is known."""
    metrics = {}
    for label in LABELS:
        known = rows & frame[label].notna().to_numpy()
        if known.any():
            metrics[label] = label_metrics(frame.loc[known, label], probabilities[label][known], thresholds[label])
    return metrics


def run_checks(scorer, checks: pd.DataFrame) -> list[dict]:
    """Every check the scorer gets wrong, with its score and the threshold it was held to."""
    failures = []
    for row in checks.itertuples(index=False):
        article = {"title": row.article_title, "body": row.article_body} if row.article_title or row.article_body else None
        result = scorer.score(row.text, article)
        threshold = scorer.policy.thresholds[row.label].review
        flagged = result[row.label] >= threshold
        if flagged != (row.expect == "flag"):
            failures.append({
                "text": row.text, "label": row.label, "expect": row.expect, "case": row.case,
                "score": round(result[row.label], 4), "threshold": threshold,
            })
    return failures


def swap_test(scorer_or_pipelines, frame: pd.DataFrame, seed: int = 0) -> dict:
    """Whether off_topic follows relevance, not style: the same comment must score higher under another article.

    Each held-out on-topic, non-toxic comment is scored under its own held-out article and under
    another held-out article (chosen by a hash of its text), both with an empty thread, so only
    the article changes. Figures per comment language and for all pairs.
    """
    pipeline = getattr(scorer_or_pipelines, "pipelines", scorer_or_pipelines)["off_topic"]
    held = frame[holdout_mask(frame) & (frame["article_id"] != "").to_numpy()].reset_index(drop=True)
    article_texts = dict(zip(held["article_id"], contexts(held)[0]))
    article_ids = sorted(article_texts)
    chosen = held[((held["off_topic"] == 0) & (held["toxic"] == 0)).to_numpy()] if len(article_ids) > 1 else held[:0]
    others = [_other(article_ids, row, seed) for row in chosen.itertuples()]
    own = _off_topic(pipeline, [(text, article_texts[a], "") for text, a in zip(chosen["text"], chosen["article_id"])])
    moved = _off_topic(pipeline, [(text, article_texts[a], "") for text, a in zip(chosen["text"], others)])
    languages = chosen["language"].to_numpy()
    groups = {language: languages == language for language in SWAP_LANGUAGES} | {"all": np.ones(len(chosen), dtype=bool)}
    return {name: _swap_figures(own[rows], moved[rows]) for name, rows in groups.items()}


def _other(article_ids: list[str], row, seed: int) -> str:
    """A held-out article other than the comment's own, the same one on every run for a given seed."""
    others = [article_id for article_id in article_ids if article_id != row.article_id]
    return others[int(_fraction(row.text, f"swap-{seed}") * len(others))]


def _off_topic(pipeline, rows: list) -> np.ndarray:
    """off_topic probabilities of pipeline input rows; none for no rows."""
    return pipeline.predict_proba(rows)[:, 1] if rows else np.zeros(0)


def _swap_figures(own: np.ndarray, moved: np.ndarray) -> dict:
    """ROC-AUC of moved against own scores, their mean difference, and the share of comments moved up."""
    if not len(own):
        return {"pairs": 0, "roc_auc": None, "mean_difference": None, "raised": None}
    targets = np.r_[np.zeros(len(own)), np.ones(len(moved))]
    return {
        "pairs": int(len(own)),
        "roc_auc": round(float(roc_auc_score(targets, np.r_[own, moved])), 4),
        "mean_difference": round(float((moved - own).mean()), 4),
        "raised": round(float((moved > own).mean()), 4),
    }
