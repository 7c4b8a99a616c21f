"""The human report written beside every model version: report.md and its PNG plots."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

METRIC_COLUMNS = ("rows", "positives", "roc_auc", "pr_auc", "threshold", "precision", "recall", "f1", "tp", "fp", "tn", "fn")


def metrics_table(metrics: dict) -> list[str]:
    """Markdown table of per-label metrics."""
    lines = ["| label | " + " | ".join(METRIC_COLUMNS) + " |", "|---" * (len(METRIC_COLUMNS) + 1) + "|"]
    for label, values in metrics.items():
        lines.append(f"| {label} | " + " | ".join(_cell(values.get(column)) for column in METRIC_COLUMNS) + " |")
    return lines


def _cell(value) -> str:
    """A table cell: n/a for metrics undefined on one class."""
    return "n/a" if value is None else str(value)


def plot_precision_recall(path: Path, label: str, targets, probabilities, threshold: float) -> None:
    """PR curve of one label on held-out rows, with the review threshold marked."""
    precision, recall, cuts = precision_recall_curve(targets, probabilities)
    figure, axes = plt.subplots(figsize=(5, 4))
    axes.plot(recall, precision, color="#1f5f8b")
    at = int(np.searchsorted(cuts, threshold)) if len(cuts) else 0
    if at < len(cuts):
        axes.scatter([recall[at]], [precision[at]], color="#c0392b", zorder=3, label=f"review threshold {threshold}")
        axes.legend(loc="lower left")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=f"{label}: precision / recall (held out)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_histogram(path: Path, label: str, targets, probabilities, threshold: float) -> None:
    """Score distribution of one label, split by true class."""
    targets = np.asarray(targets, dtype=int)
    probabilities = np.asarray(probabilities, dtype=float)
    figure, axes = plt.subplots(figsize=(5, 4))
    bins = np.linspace(0, 1, 26)
    axes.hist(probabilities[targets == 0], bins=bins, alpha=0.6, color="#27ae60", label=f"not {label}")
    axes.hist(probabilities[targets == 1], bins=bins, alpha=0.6, color="#c0392b", label=label)
    axes.axvline(threshold, color="black", linestyle="--", linewidth=1, label="review threshold")
    axes.set(xlabel="score", ylabel="comments (log scale)", yscale="log", title=f"{label}: scores by true class (held out)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_compared(path: Path, title: str, models: dict) -> None:
    """PR curves of several models on the same rows; models maps a name to (targets, probabilities)."""
    figure, axes = plt.subplots(figsize=(5, 4))
    for (name, (targets, probabilities)), color in zip(models.items(), ("#1f5f8b", "#999999")):
        precision, recall, _ = precision_recall_curve(targets, probabilities)
        axes.plot(recall, precision, color=color, label=name)
    axes.legend(loc="lower left")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write(folder: Path, metadata: dict, holdout: dict, curves: dict | None = None) -> None:
    """report.md and the plots for one version; holdout maps label -> (targets, probabilities).

    A refresh's candidate also gets the comparison with the model that was active: `curves` maps
    "holdout"/"recent" -> label -> model name -> (targets, probabilities).
    """
    thresholds = metadata["thresholds"]
    lines = [
        f"# Model {metadata['version']}",
        "",
        f"Trained {metadata['created_at']} with {', '.join(f'{k} {v}' for k, v in metadata['libraries'].items())}.",
        "",
        "## Held-out metrics (rows never trained on, split by article)",
        "",
        *metrics_table(metadata["metrics"]["holdout"]),
        "",
    ]
    for source, metrics in metadata["metrics"].get("by_source", {}).items():
        lines += [f"### {source}", "", *metrics_table(metrics), ""]
    lines += ["## Thresholds", "", "| label | review | reject | suggested reject (95% precision) |", "|---|---|---|---|"]
    for label, values in thresholds.items():
        suggestion = metadata.get("reject_suggestions", {}).get(label)
        lines.append(f"| {label} | {values['review']} | {_cell(values['reject'])} | {_cell(suggestion)} |")
    lines += ["", "## Plots", ""]
    for label, (targets, probabilities) in holdout.items():
        if 0 < np.sum(targets) < len(targets):
            plot_precision_recall(folder / f"pr_{label}.png", label, targets, probabilities, thresholds[label]["review"])
            plot_histogram(folder / f"scores_{label}.png", label, targets, probabilities, thresholds[label]["review"])
            lines += [f"![{label} precision/recall](pr_{label}.png) ![{label} scores](scores_{label}.png)", ""]
    lines += _checks_section(metadata.get("checks"))
    if metadata.get("refresh"):
        lines += _refresh_section(folder, metadata["refresh"], curves or {})
    lines += ["## Training data", "", "| file | format | rows | sha256 |", "|---|---|---|---|"]
    for entry in metadata["training_data"]:
        lines.append(f"| {entry['path']} | {entry['format']} | {entry['rows']} | `{entry['sha256'][:16]}…` |")
    (folder / "report.md").write_text("\n".join(lines) + "\n")


def _checks_section(checks: dict | None) -> list[str]:
    """The must-flag / must-pass results, failures listed."""
    if not checks:
        return ["## Checks", "", "No check list was given.", ""]
    lines = ["## Checks", "", f"{checks['passed']} of {checks['total']} passed ({checks['path']}).", ""]
    for failure in checks["failures"]:
        lines.append(f"- FAILED {failure['label']} should {failure['expect']} ({failure['case']}): "
                     f"score {failure['score']} vs {failure['threshold']}: {failure['text'][:120]!r}")
    return lines + [""]


COMPARED = ("roc_auc", "pr_auc", "precision", "recall", "f1")
WHERE = {"holdout": "the data/ holdout", "recent": "the site's recent decisions"}


def _refresh_section(folder: Path, refresh: dict, curves: dict) -> list[str]:
    """The refresh's verdict, both models side by side on both holdouts with their PR curves, and the overridden comments."""
    verdict = "promoted" if refresh["promoted"] else "not promoted" + (" (dry run)" if refresh["dry_run"] else "")
    lines = ["## Refresh", "", f"Candidate {verdict}; active before: {refresh['active_before'] or 'none'}. "
             f"Learnt from {refresh['site_rows']} of the site's comments; judged on {refresh['recent_rows']} of "
             f"{refresh.get('judged', WHERE['recent'])}" + (f" from {refresh['cut']}." if refresh["cut"] else "."), "", *(f"- {reason}" for reason in refresh["reasons"]), ""]
    for where, models in refresh["comparison"].items():
        if not models:
            continue
        lines += [f"### On {refresh.get('judged', WHERE[where]) if where == 'recent' else WHERE[where]}", "", "| label | model | " + " | ".join(COMPARED) + " |", "|---" * (len(COMPARED) + 2) + "|"]
        for label in next(iter(models.values())):
            for name, metrics in models.items():
                values = metrics.get(label, {})
                lines.append(f"| {label} | {name} | " + " | ".join(_cell(values.get(column)) for column in COMPARED) + " |")
        lines.append("")
        for label, compared in curves.get(where, {}).items():
            if all(0 < np.sum(targets) < len(targets) for targets, _ in compared.values()):
                name = f"compare_{where}_{label}.png"
                plot_compared(folder / name, f"{label}: {WHERE[where]}", compared)
                lines += [f"![{label} on {WHERE[where]}]({name})", ""]
    if refresh.get("overridden"):
        lines += ["### Comments moderators overrode, and what each model says of them now", "",
                  "| comment | moderators' labels | " + " | ".join(refresh["overridden"][0]["scores"]) + " |", "|---|---|"
                  + "---|" * len(refresh["overridden"][0]["scores"])]
        for row in refresh["overridden"]:
            labels = ", ".join(f"{label} {int(value)}" for label, value in row["labels"].items() if value is not None)
            scores = [", ".join(f"{label} {value:.2f}" for label, value in said.items()) for said in row["scores"].values()]
            text = row["text"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {text} | {labels} | " + " | ".join(scores) + " |")
        lines.append("")
    return lines
