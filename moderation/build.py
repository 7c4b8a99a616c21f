"""Building a model version: load data, train, measure on held-out rows, run the checks, save."""

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from . import corpora, report
from .corpora import LABELS
from .evaluation import evaluate, run_checks
from .registry import Registry
from .scorer import Scorer
from .splits import holdout_mask
from .training import sample_weights, train

DEFAULT_CHECKS = Path(__file__).resolve().parent.parent / "data" / "checks.csv"
MODEL_FORMAT = 1


@dataclass
class Built:
    """A saved version and what was measured on it."""

    version: str
    metadata: dict

    @property
    def checks_passed(self) -> bool:
        """True when there was no check list or every check passed."""
        checks = self.metadata.get("checks")
        return not checks or not checks["failures"]


class Progress:
    """Prints numbered steps with the time spent so far, for a user watching training."""

    def __init__(self, echo):
        self.echo = echo
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        """Report one step."""
        self.echo(f"[{time.monotonic() - self.started:6.1f}s] {message}")


def build(data_paths, registry: Registry, checks_path: Path | None = DEFAULT_CHECKS, progress=lambda m: None,
          site: list[corpora.Source] = (), judge=None) -> Built:
    """Train a new version from data files (and a site's own rows) and save it with its metrics, checks and report.

    `site` sources (the refresh's, see feedback.py) are learnt from but never held out by `splits`.
    `judge(model, held_out, (holdout_metrics, probabilities), checks)` returns what the refresh made of
    the new version, stored (signed) in its metadata under "refresh", and the curves its report draws
    (see report.write); it is given the measures already taken on the holdout, not to score it twice.
    """
    dataset = corpora.load(data_paths)
    for note in dataset.skipped:
        progress(f"skipped {note}")
    progress(f"loaded {len(dataset.frame)} comments from {len(dataset.sources)} files")
    if site:
        dataset = corpora.Dataset(pd.concat([dataset.frame, *(source.frame for source in site)], ignore_index=True),
                                  [*dataset.sources, *site], dataset.skipped)
        progress(f"with {sum(len(source.frame) for source in site)} of the site's own comments")
    model = train(dataset, progress)

    held_out = dataset.frame[holdout_mask(dataset.frame)].reset_index(drop=True)
    thresholds = {label: t.review for label, t in model.policy.thresholds.items()}
    holdout_metrics, by_source, probabilities = evaluate(model.pipelines, thresholds, held_out)
    progress(f"evaluated on {len(held_out)} held-out comments")

    version = registry.new_version()
    checks = None
    if checks_path and Path(checks_path).exists():
        check_list = corpora.load_checks(checks_path)
        failures = run_checks(Scorer(model.pipelines, model.policy, version), check_list)
        total = len(check_list)
        checks = {"path": str(checks_path), "total": total, "passed": total - len(failures), "failures": failures}
        progress(f"checks: {checks['passed']} of {total} passed")

    metadata = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "format": MODEL_FORMAT,
        "training_data": [dict(entry, weight=float(sample_weights(source.frame, {source.path: source.format}).max()))
                          for source, entry in zip(dataset.sources, dataset.manifest())],
        "metrics": {"holdout": holdout_metrics, "by_source": by_source},
        "thresholds": model.policy.to_dict(),
        "reject_suggestions": model.reject_suggestions,
        "checks": checks,
    }
    curves = {}
    if judge is not None:
        metadata["refresh"], curves = judge(model, held_out, (holdout_metrics, probabilities), checks)
    holdout = {
        label: (held_out.loc[held_out[label].notna(), label].to_numpy(int), probabilities[label][held_out[label].notna().to_numpy()])
        for label in LABELS
    }
    folder = registry.save(version, {"format": MODEL_FORMAT, "pipelines": model.pipelines}, metadata,
                           lambda staging, saved: report.write(staging, saved, holdout, curves))
    progress(f"saved {folder}")
    return Built(version, registry.verify(version))

