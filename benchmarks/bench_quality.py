"""Quality on real text: one table of every measure of a model, beside the peers' published figures.

Usage: python benchmarks/bench_quality.py [--model VERSION] [--json figures.json] [--png quality.png]
Trains nothing: it loads a model from MODERATION_MODELS_DIR (default models/). Rows: the held-out
articles of data/, then its writing batches held out whole, the HateDay dev set, each public corpus's held-out
rows, the off-topic swap test, data/checks.csv and the seed page; then the systems published on the
dev set in ../shared/benchmarks/README.md. A set whose file is absent is skipped, saying so.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation import corpora, load_scorer, splits, training  # noqa: E402
from moderation.build import DEFAULT_CHECKS  # noqa: E402
from moderation.evaluation import evaluate, label_metrics, run_checks, swap_test  # noqa: E402
from moderation.registry import RegistryError  # noqa: E402

SHARED = ROOT.parent / "shared"
DEV_SET = SHARED / "benchmarks" / "hateday_fr.csv"
PEERS = SHARED / "benchmarks" / "README.md"
CYBERAGRESSION = SHARED / "datasets" / "cyberagression"
SEED = SHARED / "seed" / "000_63fa037eb8ff925a.txt"
SEED_TEXT_SHOWN = 60
METRICS = ("rows", "positives", "roc_auc", "pr_auc", "threshold", "precision", "recall", "f1", "accuracy")
HEADINGS = ("rows", "pos", "ROC-AUC", "PR-AUC", "thresh", "prec", "recall", "F1", "acc")
WIDTHS = (6, 6, 7, 7, 6, 6, 6, 6, 6)


def missing(path: Path) -> dict:
    """A section skipped because its file is absent, saying where the file belongs."""
    return {"skipped": f"{path} is missing (it belongs in ../{path.parent.relative_to(SHARED.parent)}/ beside the checkout)"}


def with_accuracy(metrics: dict) -> dict:
    """label_metrics' figures plus accuracy at the review threshold, the figure the peers publish."""
    return dict(metrics, accuracy=round((metrics["tp"] + metrics["tn"]) / metrics["rows"], 4))


def thresholds(scorer) -> dict[str, float]:
    """The stored review threshold of each label."""
    return {label: limits.review for label, limits in scorer.policy.thresholds.items()}


def data_holdout(scorer, dataset) -> tuple[dict, dict]:
    """Metrics of the canonical rows training holds out: by article (in training's batches) and by whole batch.

    The batch rows counted are those whose article is not held out too, so they measure writing alone.
    """
    formats = {source.path: source.format for source in dataset.sources}
    frame = dataset.frame
    canonical = (frame["file"].map(formats) == "canonical").to_numpy()
    batches = splits.holdout_batches(frame)
    in_batch = frame["file"].isin(batches).to_numpy()
    article_held = splits.article_holdout_mask(frame)
    by_article = frame[article_held & canonical & ~in_batch]
    by_batch = frame[in_batch & ~article_held]
    article_metrics, _, _ = evaluate(scorer.pipelines, thresholds(scorer), by_article.reset_index(drop=True))
    batch_metrics, by_file, _ = evaluate(scorer.pipelines, thresholds(scorer), by_batch.reset_index(drop=True))
    files = {"all held-out batches": batch_metrics, **by_file} if len(by_file) > 1 else by_file
    accurate = {path: {label: with_accuracy(m) for label, m in metrics.items()} for path, metrics in files.items()}
    kind = f"{', '.join(sorted(Path(path).stem for path in batches))}; rows of held-out articles left out"
    return {label: with_accuracy(m) for label, m in article_metrics.items()}, {"kind": kind, "files": accurate}


def toxic_metrics(scorer, frame) -> dict:
    """Toxic metrics of rows without article or thread, as the corpora and the dev set come."""
    frame = frame[frame["toxic"].notna()].reset_index(drop=True)
    probabilities = scorer.pipelines["toxic"].predict_proba(training.examples(frame))[:, 1]
    return with_accuracy(label_metrics(frame["toxic"], probabilities, thresholds(scorer)["toxic"]))


def dev_set(scorer) -> dict:
    """The HateDay dev set, every row (the project never trains on it)."""
    if not DEV_SET.exists():
        return missing(DEV_SET)
    return {"path": str(DEV_SET), "toxic": toxic_metrics(scorer, corpora.load([DEV_SET]).frame)}


def public_corpora(scorer, dataset) -> dict:
    """Each public corpus's held-out rows: those in data/, and CyberAgression read in place when present."""
    formats = {source.path: source.format for source in dataset.sources}
    figures = {
        path: public_corpus(scorer, dataset.frame[dataset.frame["file"] == path], kind, True)
        for path, kind in formats.items() if kind != "canonical"
    }
    if CYBERAGRESSION.exists():
        figures[str(CYBERAGRESSION)] = public_corpus(scorer, corpora.load([CYBERAGRESSION]).frame, "cyberagression", False)
    else:
        figures[str(CYBERAGRESSION)] = missing(CYBERAGRESSION)
    return figures


def public_corpus(scorer, frame, kind: str, in_default_model: bool) -> dict:
    """One corpus's toxic metrics on the rows training would hold out of it."""
    held = frame[splits.holdout_mask(frame)]
    weight = float(training.sample_weights(frame, dict.fromkeys(frame["file"].unique(), kind)).max())
    return {"format": kind, "in_default_model": in_default_model, "training_weight": weight, "toxic": toxic_metrics(scorer, held)}


def checks(scorer) -> dict:
    """The must-flag / must-pass list: how many pass, and the ones that fail."""
    check_list = corpora.load_checks(DEFAULT_CHECKS)
    failures = run_checks(scorer, check_list)
    return {"total": len(check_list), "passed": len(check_list) - len(failures), "failures": failures}


def seed_page(scorer) -> tuple[dict, list[str]]:
    """Scores of the real page's reader comments under their article; the texts are returned apart, never stored."""
    if not SEED.exists():
        return missing(SEED), []
    lines = SEED.read_text(encoding="utf-8").splitlines()
    marker, end = lines.index("Infos à la une"), lines.index("Communiqués")
    article = {"title": lines[0], "body": "\n".join(lines[1:marker])}
    comments = lines[marker + 1:end]
    scored = [scorer.score(comment, article) for comment in comments]
    results = [{key: result[key] for key in ("toxic", "off_topic", "decision", "labels")} for result in scored]
    return {"comments": results}, comments


def peers() -> dict:
    """The systems' dev-set accuracy from the two-column table of the benchmarks README, read at run time."""
    if not PEERS.exists():
        return missing(PEERS)
    systems = []
    for line in PEERS.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        found = re.match(r"(\d\.\d+)", cells[-1]) if line.startswith("|") and len(cells) == 2 else None
        if found:
            systems.append({"system": cells[0], "accuracy": float(found[1]), "note": cells[1][found.end():].strip()})
    return {"systems": systems}


def row(name: str, label: str, values, note: str = "") -> str:
    """One table line: counts as they are, fractions to three places, '-' where a set has no such figure."""
    shown = ("-" if value is None else value if isinstance(value, int | str) else f"{value:.3f}" for value in values)
    cells = " ".join(f"{text:>{width}}" for text, width in zip(shown, WIDTHS))
    return f"{name:<42} {label:<9} {cells}  {note}".rstrip()


def metric_row(name: str, label: str, metrics: dict, note: str = "") -> str:
    """One table line from a label's metrics."""
    return row(name, label, [metrics[key] for key in METRICS], note)


def note_row(name: str, label: str, rows: int, note: str, roc_auc: float | None = None) -> str:
    """One table line that is a count and a note, with a ROC-AUC where there is one."""
    return row(name, label, [rows, None, roc_auc] + [None] * 6, note)


def table(figures: dict) -> list[str]:
    """Every section's rows, in the order the README shows them."""
    lines = [row("set", "label", HEADINGS, "note")]
    for label, m in figures["holdout_by_article"].items():
        lines.append(metric_row("data/ holdout by article", label, m))
    batches = figures["holdout_by_batch"]
    lines.append(f"data/ holdout by batch ({batches['kind']}):")
    for path, metrics in batches["files"].items():
        lines += [metric_row(f"  {Path(path).stem}", label, m) for label, m in metrics.items()]
    dev_set_name = "dev set hateday_fr.csv"
    lines += section_rows(dev_set_name, figures["dev_set"], lambda dev: [metric_row(dev_set_name, "toxic", dev["toxic"])])
    lines.append("public corpora, held-out rows:")
    for path, entry in figures["public"].items():
        name = f"  {os.path.relpath(path, ROOT)}"
        note = corpus_note(entry)
        lines += section_rows(name, entry, lambda corpus: [metric_row(name, "toxic", corpus["toxic"], note)])
    for language, swap in figures["swap_test"].items():
        lines.append(note_row(f"swap test ({language})", "off_topic", swap["pairs"], swap_note(swap), swap["roc_auc"]))
    check = figures["checks"]
    lines.append(note_row("data/checks.csv", "both", check["total"], f"{check['passed']} of {check['total']} pass"))
    lines += section_rows("seed page", figures["seed"], seed_rows)
    return lines


def corpus_note(entry: dict) -> str:
    """Whether the default model learns from a corpus, by training's weights as they stand, not this script's."""
    if not entry.get("in_default_model"):
        return "(not in the default model)"
    weight = entry["training_weight"]
    return "(weight 0: not learnt from)" if weight == 0 else f"(training weight {weight:g})"


def swap_note(swap: dict) -> str:
    """How far moving a comment under another article moved its off_topic score."""
    return f"moved - own: mean {swap['mean_difference']:+.3f}, raised in {swap['raised']:.1%}" if swap["pairs"] else "no pairs"


def section_rows(name: str, section: dict, rows) -> list[str]:
    """A section's rows, or one row saying why it was skipped."""
    return [note_row(name, "-", 0, f"skipped: {section['skipped']}")] if "skipped" in section else rows(section)


def seed_rows(section: dict) -> list[str]:
    """One row per reader comment of the seed page, its scores and decision in the note."""
    return [
        note_row(f"seed page, comment {number}", "both", 1,
                 f"toxic {c['toxic']:.3f}, off_topic {c['off_topic']:.3f}: {' '.join([c['decision'], *c['labels']])}")
        for number, c in enumerate(section["comments"], start=1)
    ]


def print_peers(figures: dict) -> None:
    """The dev-set accuracy of the published systems, with this model's among them."""
    section, dev = figures["peers"], figures["dev_set"]
    if "skipped" in section or "skipped" in dev:
        print(f"\npeers: skipped: {section.get('skipped') or dev.get('skipped')}")
        return
    ours = {"system": f"Palabre, this model ({figures['model']['version']})", "accuracy": dev["toxic"]["accuracy"],
            "note": f"(ROC-AUC {dev['toxic']['roc_auc']:.3f})"}
    print(f"\ndev set hateday_fr.csv, accuracy on its {dev['toxic']['rows']:,} rows "
          f"(peers from {PEERS.relative_to(SHARED.parent)}):")
    for entry in sorted(section["systems"] + [ours], key=lambda entry: -entry["accuracy"]):
        print(f"  {entry['system']:<52} {entry['accuracy']:.3f} {entry['note']}".rstrip())


def model_facts(scorer, dataset) -> dict:
    """The model's version and what it was trained on, and whether data/ has changed since."""
    manifest = scorer.metadata.get("training_data", [])
    trained = {entry["path"]: entry["sha256"] for entry in manifest}
    changed = [source.path for source in dataset.sources if source.path in trained and trained[source.path] != source.sha256]
    return {
        "version": scorer.version, "created_at": scorer.metadata.get("created_at"),
        "training_data": [{"path": e["path"], "format": e["format"], "rows": e["rows"]} for e in manifest],
        "data_rows_now": {source.path: len(source.frame) for source in dataset.sources},
        "changed_since_training": changed,
    }


def print_facts(facts: dict) -> None:
    """Model version and training-data row counts: facts that do not depend on the machine."""
    rows = sum(entry["rows"] for entry in facts["training_data"])
    by_format = {}
    for entry in facts["training_data"]:
        by_format[entry["format"]] = by_format.get(entry["format"], 0) + entry["rows"]
    print(f"model {facts['version']} (created {facts['created_at']}); trained on {len(facts['training_data'])} files, "
          f"{rows:,} rows: {', '.join(f'{kind} {count:,}' for kind, count in by_format.items())}")
    print(f"data/ now: {len(facts['data_rows_now'])} files, {sum(facts['data_rows_now'].values()):,} rows; "
          f"changed since training: {', '.join(facts['changed_since_training']) or 'none'}\n")


def measure(scorer) -> tuple[dict, list[str]]:
    """Every section's figures, and the seed page's comment texts (printed, never written)."""
    dataset = corpora.load([ROOT / "data"])
    by_article, by_batch = data_holdout(scorer, dataset)
    seed, seed_texts = seed_page(scorer)
    figures = {
        "model": model_facts(scorer, dataset),
        "holdout_by_article": by_article,
        "holdout_by_batch": by_batch,
        "dev_set": dev_set(scorer),
        "public": public_corpora(scorer, dataset),
        "swap_test": swap_test(scorer, dataset.frame),
        "checks": checks(scorer),
        "seed": seed,
        "peers": peers(),
    }
    return figures, seed_texts


def main() -> None:
    """Measure a model on every set and print one table, then the peers' figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="version to measure (default: the active one)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this file")
    parser.add_argument("--png", type=Path, default=None, help="draw the dev-set accuracies beside the peers'")
    args = parser.parse_args()
    try:
        scorer = load_scorer(version=args.model)
    except RegistryError as error:
        raise SystemExit(str(error)) from None
    figures, seed_texts = measure(scorer)
    print_facts(figures["model"])
    print("\n".join(table(figures)))
    for failure in figures["checks"]["failures"]:
        print(f"check failed: {failure['label']} expected {failure['expect']}, score {failure['score']:.3f} "
              f"(threshold {failure['threshold']:.3f}), case {failure['case'] or '-'}: {failure['text'][:SEED_TEXT_SHOWN]}")
    for number, text in enumerate(seed_texts, start=1):
        print(f"seed page, comment {number}: {text[:SEED_TEXT_SHOWN]}{'…' if len(text) > SEED_TEXT_SHOWN else ''}")
    print_peers(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    if args.png and "skipped" not in figures["peers"] and "skipped" not in figures["dev_set"]:
        write_png(args.png, figures)
        print(f"wrote {args.png}")


def write_png(path: Path, figures: dict) -> None:
    """Dev-set accuracy of every published system and of this model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = figures["peers"]["systems"] + [{"system": f"Palabre {figures['model']['version']}",
                                              "accuracy": figures["dev_set"]["toxic"]["accuracy"]}]
    systems.sort(key=lambda entry: entry["accuracy"])
    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.barh([entry["system"] for entry in systems], [entry["accuracy"] for entry in systems])
    axes.set(xlabel=f"accuracy on hateday_fr.csv ({figures['dev_set']['toxic']['rows']:,} rows)", xlim=(0.5, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
