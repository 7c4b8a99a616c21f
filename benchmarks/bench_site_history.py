"""Does a site's imported history improve the model on that site's other comments? (issue 11: 800 imported decisions)

Usage: python benchmarks/bench_site_history.py [--rows 800] [--seeds 1 2 3] [--models-dir DIR] [--corpus FILE]
Starts from the default model, as simulate_feedback.py does (the active version of --models-dir,
copied, or one trained here from data/). The corpus (default: CyberAgression, read in place from
../shared/datasets/, never copied; the default model does not train on it) is split by
conversation: conversations in an order drawn from the seed give the first --rows comments as the
site's imported history, and every conversation none of them came from is the evaluation set
(the rest of the last conversation drawn is used by neither). For each seed, on a scratch SQLite
database and a registry of its own: the default model's toxic ROC-AUC and PR-AUC on the
evaluation rows; the history written as a CSV in `import`'s format (text,toxic) and imported
through `history.read` and `history.store`; `refresh.refresh` on data/ as in production; then the
candidate's figures on the same rows, and whether the refresh's gate promoted it, with its reasons.
Each refresh trains a model (2-3 minutes here).
"""

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_bulk import machine  # noqa: E402
from scratch import scratch_database  # noqa: E402
from simulate_feedback import (  # noqa: E402
    CYBERAGRESSION,
    DATA,
    default_model,
    failed_checks,
    fresh_registry,
    in_conversation_order,
    load_stream,
    toxic_metrics,
)

from moderation import history, refresh  # noqa: E402
from moderation.build import Progress  # noqa: E402
from moderation.database import Database  # noqa: E402


def split(frame: pd.DataFrame, rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first `rows` comments of the conversations in the seed's order, and the conversations none of them is from."""
    ordered = in_conversation_order(frame, seed)
    imported = ordered.iloc[:rows]
    return imported.reset_index(drop=True), ordered[~ordered["conversation"].isin(imported["conversation"])].reset_index(drop=True)


def import_history(database: Database, imported: pd.DataFrame, folder: Path) -> str:
    """Write the rows as import reads a site's labels (text,toxic) and import them; the import's summary."""
    path = folder / "history.csv"
    imported[["text"]].assign(toxic=imported["toxic"].astype(int)).to_csv(path, index=False)
    read = history.read(path)
    with database.session() as session:
        history.store(session, read)
        session.commit()
    return read.summary()


def holdout_pr_auc(outcome, label: str = "toxic") -> str:
    """The candidate's and the active model's PR-AUC on the data/ holdout, as the gate compared them."""
    figures = outcome.comparison["holdout"]
    return f"{figures['active'][label]['pr_auc']:.4f} -> {figures['candidate'][label]['pr_auc']:.4f}"


def run(frame: pd.DataFrame, rows: int, seed: int, model: Path, progress) -> dict:
    """One seed: the default model and the refreshed candidate on the same evaluation rows."""
    imported, evaluated = split(frame, rows, seed)
    with tempfile.TemporaryDirectory(prefix="site-history-") as folder, scratch_database(None, "site-history") as (url, _):
        registry = fresh_registry(Path(folder) / "registry", model)
        before = toxic_metrics(registry.load(), evaluated)
        database = Database(url)
        database.upgrade()
        summary = import_history(database, imported, Path(folder))
        outcome = refresh.refresh(database, registry, data_paths=[DATA], progress=progress)
        after = toxic_metrics(registry.load(outcome.version), evaluated)
        failures = failed_checks(registry, outcome.version)
    print(f"\nseed {seed}: imported {len(imported)} comments of {imported['conversation'].nunique()} conversations ({summary}); "
          f"evaluated on {len(evaluated)} comments ({int(evaluated['toxic'].sum())} toxic) of "
          f"{evaluated['conversation'].nunique()} other conversations")
    print(f"  {'model':<26} {'ROC-AUC':>7} {'PR-AUC':>7} {'thresh':>6} {'prec':>6} {'recall':>6}")
    for name, metrics in ((f"default {model.name}", before), (f"candidate {outcome.version}", after)):
        print(f"  {name:<26} {metrics['roc_auc']:>7.4f} {metrics['pr_auc']:>7.4f} {metrics['threshold']:>6.3f} "
              f"{metrics['precision']:>6.3f} {metrics['recall']:>6.3f}")
    print(f"  change: ROC-AUC {after['roc_auc'] - before['roc_auc']:+.4f}, PR-AUC {after['pr_auc'] - before['pr_auc']:+.4f}; "
          f"data/ holdout toxic PR-AUC {holdout_pr_auc(outcome)}, off_topic {holdout_pr_auc(outcome, 'off_topic')}")
    print(f"  refresh: {'promoted' if outcome.promoted else 'not promoted'}")
    for reason in [*outcome.reasons, *failures]:
        print(f"    {reason}")
    return {"before": before, "after": after, "promoted": outcome.promoted}


def main() -> None:
    """Run every seed and print each run, then the mean change."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=800, help="comments in the imported history")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="one split (and one refresh) per seed")
    parser.add_argument("--models-dir", type=Path, default=None, help="start from this registry's active version (copied)")
    parser.add_argument("--corpus", type=Path, default=CYBERAGRESSION)
    args = parser.parse_args()
    started = time.monotonic()
    progress = Progress(lambda message: print(message, file=sys.stderr, flush=True))
    print(f"{machine()}; started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    frame = load_stream(args.corpus)
    print(f"corpus {args.corpus}: {len(frame)} comments ({int(frame['toxic'].sum())} toxic) in "
          f"{frame['conversation'].nunique()} conversations", flush=True)
    with tempfile.TemporaryDirectory(prefix="site-history-model-") as folder:
        model = default_model(Path(folder), args.models_dir, progress)
        runs = [run(frame, args.rows, seed, model, progress) for seed in args.seeds]
    for measure in ("roc_auc", "pr_auc"):
        changes = [one["after"][measure] - one["before"][measure] for one in runs]
        print(f"\n{measure}: mean change {statistics.mean(changes):+.4f} over {len(runs)} seeds "
              f"(each: {', '.join(f'{change:+.4f}' for change in changes)})", end="")
    print(f"\npromoted in {sum(one['promoted'] for one in runs)} of {len(runs)} runs")
    print(f"wall time {time.monotonic() - started:,.0f} s")


if __name__ == "__main__":
    main()
