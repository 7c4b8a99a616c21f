"""Proof that the loop works: a labelled stream of real comments replayed week by week through the service and the refresh.

Usage: python benchmarks/simulate_feedback.py [--weeks 8] [--per-week 500] [--seed 1] [--plot loop.png]
                                              [--models-dir DIR] [--stream FILE] [--quick]
Starts from the default model: the active version of --models-dir, copied into a temporary
registry (the folder given is never changed), or without it one trained here from data/ (2-3
minutes). The stream (default: CyberAgression, read in place from ../shared/datasets/, never
copied; the default model does not train on it) is ordered conversation by conversation, in an
order drawn from --seed. About a quarter of the conversations, chosen by a hash of their name,
are the site's held-out comments: never sent, only scored. Each week, on a scratch SQLite
database: the week's comments are received one by one with the active model
(`receiving.receive_comment`, the site's default settings: the model's thresholds, a 2% QA
sample, except that the stream has no off-topic label to decide by, so the simulated site
moderates toxicity only: its off-topic review threshold is pinned at 1.0, as an admin would for a
chat without articles); every comment the policy sends to review is decided by its gold label as a moderator
would (`service.decide`: published if not toxic, rejected as toxic if toxic), and what the model
published on its own stays published; then `refresh.refresh` runs on data/ as in production and
promotes its candidate or keeps the active model. Each refresh trains a model (2-3 minutes here),
so the default 8 weeks take about 30-40 minutes; --quick runs 2 weeks of 200 comments.

Per week: recall (of the week's toxic comments, the share not published without a human),
precision of toxic flags, the share of comments a human had to read, the override rate of the
moderators' decisions, the ROC-AUC of the active model (and of the week's candidate) on the
held-out conversations, and the refresh's verdict with its reasons. The week's conversations
differ, so the same three shares are also given for the active model on the held-out
conversations (recall and precision at its toxic threshold, share flagged): the same comments
every week, the figure that shows what the refreshes changed. The model's thresholds keep their
meaning, so a better model catches more and is read more; `h.read@r0` is the workload at equal
recall: the share of the held-out comments a moderator would read, highest score first, to catch
as many of their toxic ones as the starting model did (what a site gets by pinning its threshold
there).
"""

import argparse
import hashlib
import random
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_bulk import machine  # noqa: E402
from scratch import scratch_database  # noqa: E402

from moderation import corpora, refresh, settings, training  # noqa: E402
from moderation.auth.models import User  # noqa: E402
from moderation.build import DEFAULT_CHECKS, Progress, build  # noqa: E402
from moderation.comments.models import OVERRIDE, PENDING, PUBLISHED, REJECTED  # noqa: E402
from moderation.database import Database  # noqa: E402
from moderation.evaluation import label_metrics  # noqa: E402
from moderation.policy import LabelThresholds  # noqa: E402
from moderation.receiving import IncomingComment, receive_comment  # noqa: E402
from moderation.registry import Registry  # noqa: E402
from moderation.service import decide  # noqa: E402
from moderation.validation import InputError, check_text  # noqa: E402

DATA = ROOT / "data"
CYBERAGRESSION = ROOT.parent / "shared" / "datasets" / "cyberagression" / "messages.csv"
HELD_OUT_SHARE = 0.25
FIRST_WEEK = datetime(2027, 1, 4, 3, tzinfo=UTC)  # a Monday at 03:00, when the refresh runs by default
WEEK = timedelta(days=7)


def load_stream(path: Path) -> pd.DataFrame:
    """The file's rows with a toxic label, read as training reads them, with their conversation and place in it.

    The conversation is CyberAgression's `scenario` (or an `article_id`); the order within it is
    `message_id` when the file has one, else the file's order. Texts the service would refuse are left out.
    """
    table = corpora.read_table(path)
    frame = corpora.load([path]).frame
    if len(table) != len(frame):
        raise SystemExit(f"{path}: {len(table)} rows read, {len(frame)} kept by corpora; cannot pair them with their conversation")
    conversation = next((name for name in ("scenario", "article_id") if name in table), None)
    if conversation is None:
        raise SystemExit(f"{path}: no 'scenario' or 'article_id' column to group comments into conversations")
    frame["conversation"] = table[conversation].to_numpy()
    frame["position"] = pd.to_numeric(table["message_id"]).to_numpy() if "message_id" in table else range(len(frame))
    frame["id"] = [f"stream-{number}" for number in range(len(frame))]
    return frame[frame["toxic"].notna() & frame["text"].map(_accepted)].reset_index(drop=True)


def _accepted(text: str) -> bool:
    """Whether the service would take this text."""
    try:
        check_text(text)
    except InputError:
        return False
    return True


def held_out(frame: pd.DataFrame) -> pd.Series:
    """The conversations kept from the loop, by a hash of their name: the same ones whatever the seed."""
    def fraction(name: str) -> float:
        return int.from_bytes(hashlib.sha256(f"held-out:{name}".encode()).digest()[:8], "big") / 2**64

    return frame["conversation"].map(fraction) < HELD_OUT_SHARE


def in_conversation_order(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Conversations one after another in an order drawn from the seed, each in its own order."""
    names = sorted(frame["conversation"].unique())
    random.Random(seed).shuffle(names)
    rank = {name: number for number, name in enumerate(names)}
    return frame.assign(rank=frame["conversation"].map(rank)).sort_values(["rank", "position"], kind="stable").reset_index(drop=True)


def default_model(folder: Path, models_dir: Path | None, progress) -> Path:
    """The starting model's version folder: the active version of models_dir, or one trained here from data/."""
    if models_dir is not None:
        source = Registry(models_dir)
        version = source.active()
        if version is None:
            raise SystemExit(f"{models_dir} has no active version")
        source.verify(version)
        return models_dir / version
    registry = Registry(folder)
    built = build([DATA], registry, DEFAULT_CHECKS, progress)
    if not built.checks_passed:
        raise SystemExit(f"the default model {built.version} fails checks of {DEFAULT_CHECKS}")
    return folder / built.version


def fresh_registry(folder: Path, model: Path) -> Registry:
    """A registry of its own in `folder`, with a copy of the starting model as its active version."""
    registry = Registry(folder)
    shutil.copytree(model, folder / model.name)
    registry.activate(model.name)
    return registry


def toxic_metrics(scorer, frame: pd.DataFrame, recall: float | None = None) -> dict:
    """label_metrics of the toxic score on rows without article or thread, as the corpora come, and the share to read at `recall`."""
    probabilities = scorer.pipelines["toxic"].predict_proba(training.examples(frame))[:, 1]
    metrics = label_metrics(frame["toxic"], probabilities, scorer.policy.thresholds["toxic"].review)
    held = metrics["recall"] if recall is None else recall
    return {**metrics, "read_at_recall": share_to_read(frame["toxic"].to_numpy(), probabilities, held)}


def share_to_read(targets: np.ndarray, probabilities: np.ndarray, recall: float) -> float:
    """The least share of rows, read from the highest score down, that holds `recall` of the toxic ones: the workload at that recall."""
    ranked = targets[np.argsort(-probabilities, kind="stable")]
    needed = np.ceil(recall * ranked.sum() - 1e-9)
    return float((np.searchsorted(np.cumsum(ranked), needed) + 1) / len(ranked))


def failed_checks(registry: Registry, version: str) -> list[str]:
    """The checks of data/checks.csv a saved version fails, one line each."""
    failures = (registry.verify(version).get("checks") or {}).get("failures", [])
    return [f"fails check: {failure['label']} should {failure['expect']} ({failure['case']}), score {failure['score']} "
            f"against {failure['threshold']}: {failure['text'][:80]!r}" for failure in failures]


def new_moderator(session) -> User:
    """The simulated moderator: an account nobody can log in to."""
    user = User(username="simulated-moderator", role="moderator", active=False)
    user.set_password(secrets.token_urlsafe(24))
    session.add(user)
    session.commit()
    return user


def incoming(row, at: datetime) -> IncomingComment:
    """A stream row as the site would send it: its conversation is the article."""
    return IncomingComment(id=row.id, text=row.text, article_id=row.conversation[:255], article_title=row.conversation[:2000],
                           created_at=at, language="fr")


def replay_week(session, scorer, moderator: User, rows: pd.DataFrame, start: datetime) -> dict:
    """Receive a week's comments one by one; a moderator decides each one sent to review before the next arrives."""
    spacing = WEEK / len(rows)
    counts = dict.fromkeys(("comments", "toxic", "auto_published_toxic", "flagged", "flagged_toxic", "read", "read_for_toxic",
                            "read_for_sample", "decisions", "overrides"), 0)
    for number, row in enumerate(rows.itertuples()):
        at = start + spacing * (number + 0.5)
        comment = receive_comment(session, scorer, incoming(row, at), now=at).comment
        toxic = bool(row.toxic)
        flagged = "toxic" in comment.labels
        counts["comments"] += 1
        counts["toxic"] += toxic
        counts["flagged"] += flagged
        counts["flagged_toxic"] += flagged and toxic
        counts["auto_published_toxic"] += toxic and comment.status == PUBLISHED
        if comment.status == PENDING:
            counts["read"] += 1
            counts["read_for_toxic"] += flagged
            counts["read_for_sample"] += comment.review_reason == "sample"
            decision = decide(session, comment.id, moderator, REJECTED if toxic else PUBLISHED, "toxic" if toxic else None,
                              now=at + spacing / 2)
            counts["decisions"] += 1
            counts["overrides"] += decision.verdict == OVERRIDE
    return counts


def figures(counts: dict) -> dict:
    """The week's shares from its counts."""
    return {
        "recall": 1 - counts["auto_published_toxic"] / counts["toxic"] if counts["toxic"] else float("nan"),
        "precision": counts["flagged_toxic"] / counts["flagged"] if counts["flagged"] else float("nan"),
        "read": counts["read"] / counts["comments"],
        "override": counts["overrides"] / counts["decisions"] if counts["decisions"] else float("nan"),
    }


def header() -> str:
    """The weekly table's column names."""
    return (f"{'week':>4} {'model':<17} {'comments':>8} {'toxic':>5} {'recall':>6} {'prec':>6} {'read':>6} "
            f"{'(toxic flag / off-topic only / QA)':>34} {'overr':>6} {'AUC':>6} {'h.rec':>6} {'h.prec':>6} {'h.flag':>6} {'h.read@r0':>9} "
            f"{'cand.AUC':>8} {'recent PR-AUC':>13}  refresh")


def line(week: int, version: str, counts: dict, shares: dict, held: dict, candidate_auc: float, outcome) -> str:
    """One week of the table."""
    off_topic = counts["read"] - counts["read_for_toxic"] - counts["read_for_sample"]
    reasons = f"{counts['read_for_toxic']} / {off_topic} / {counts['read_for_sample']}"
    verdict = f"{'promoted' if outcome.promoted else 'kept'} ({outcome.version})"
    return (f"{week:>4} {version:<17} {counts['comments']:>8} {counts['toxic']:>5} {shares['recall']:>6.3f} "
            f"{shares['precision']:>6.3f} {shares['read']:>6.3f} {reasons:>34} {shares['override']:>6.3f} "
            f"{held['roc_auc']:>6.3f} {held['recall']:>6.3f} {held['precision']:>6.3f} {flagged_share(held):>6.3f} "
            f"{held['read_at_recall']:>9.3f} "
            f"{candidate_auc:>8.3f} {recent_pr_auc(outcome):>13}  {verdict}")


def flagged_share(metrics: dict) -> float:
    """The share of the rows flagged at the threshold."""
    return (metrics["tp"] + metrics["fp"]) / metrics["rows"]


def recent_pr_auc(outcome) -> str:
    """Toxic PR-AUC of the active model and the candidate on the site's recent decisions, as the gate compared them."""
    recent = outcome.comparison.get("recent", {})
    values = [((recent.get(name) or {}).get("toxic") or {}).get("pr_auc") for name in ("active", "candidate")]
    return " -> ".join("-" if value is None else f"{value:.3f}" for value in values)


def write_plot(path: Path, weeks: list[dict], start_auc: float, final_auc: float) -> None:
    """Each weekly figure against the week (the stream's, and the held-out conversations'), promoted refreshes marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = [week["week"] for week in weeks]
    panels = (("recall", "recall of toxic comments"), ("precision", "precision of toxic flags"),
              ("read", "share read by a human"), ("override", "override rate"))
    figure, axes = plt.subplots(1, 5, figsize=(20, 3.8))
    for axis, (key, title) in zip(axes, panels):
        axis.plot(numbers, [week[key] for week in weeks], marker="o", label="the week's comments")
        if f"held_{key}" in weeks[0]:
            axis.plot(numbers, [week[f"held_{key}"] for week in weeks], marker="x", linestyle="--", label="held-out conversations")
        if key == "read":
            axis.plot(numbers, [week["held_read_at_recall"] for week in weeks], marker="s", linestyle=":",
                      label="held-out, at the starting recall")
        axis.legend(fontsize=8)
        axis.set(title=title, xlabel="week", ylim=(0, 1), xticks=numbers)
    axis = axes[-1]
    axis.plot([0, *numbers], [start_auc, *(week["auc"] for week in weeks[1:]), final_auc], marker="o", label="active model")
    axis.plot(numbers, [week["candidate_auc"] for week in weeks], marker="x", linestyle="--", label="week's candidate")
    promoted = [week for week in weeks if week["promoted"]]
    axis.scatter([week["week"] for week in promoted], [week["candidate_auc"] for week in promoted], s=120, facecolors="none",
                 edgecolors="green", label="promoted")
    axis.set(title="held-out ROC-AUC (toxic); 0 = start, n = after week n's refresh", xlabel="week", xticks=[0, *numbers])
    axis.title.set_fontsize(8)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    """Replay the stream week by week and print each week's figures, the refresh's verdict and the wall time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=None, help="weeks to replay (default 8, --quick 2)")
    parser.add_argument("--per-week", type=int, default=None, help="comments received each week (default 500, --quick 200)")
    parser.add_argument("--seed", type=int, default=1, help="draws the order of the conversations")
    parser.add_argument("--plot", type=Path, default=None, help="write the weekly figures as a PNG")
    parser.add_argument("--models-dir", type=Path, default=None, help="start from this registry's active version (copied)")
    parser.add_argument("--stream", type=Path, default=CYBERAGRESSION)
    parser.add_argument("--quick", action="store_true", help="2 weeks of 200 comments")
    args = parser.parse_args()
    weeks = args.weeks or (2 if args.quick else 8)
    per_week = args.per_week or (200 if args.quick else 500)
    started = time.monotonic()
    progress = Progress(lambda message: print(message, file=sys.stderr, flush=True))
    print(f"{machine()}; started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)

    frame = load_stream(args.stream)
    kept = held_out(frame)
    stream, held = in_conversation_order(frame[~kept], args.seed), frame[kept].reset_index(drop=True)
    print(f"stream {args.stream}: {len(frame)} comments in {frame['conversation'].nunique()} conversations; held out "
          f"{len(held)} comments ({int(held['toxic'].sum())} toxic) of {held['conversation'].nunique()} conversations; "
          f"replayed {len(stream)} ({int(stream['toxic'].sum())} toxic), conversations in the order of seed {args.seed}", flush=True)
    if weeks * per_week > len(stream):
        raise SystemExit(f"{weeks} weeks of {per_week} need {weeks * per_week} comments; the stream has {len(stream)}")

    with tempfile.TemporaryDirectory(prefix="simulate-") as folder, scratch_database(None, "simulate") as (url, _):
        registry = fresh_registry(Path(folder) / "registry", default_model(Path(folder) / "trained", args.models_dir, progress))
        database = Database(url)
        database.upgrade()
        scorer = registry.load()
        start = toxic_metrics(scorer, held)
        start_auc = start["roc_auc"]
        print(f"starting model {scorer.version}: held-out ROC-AUC {start_auc:.3f}", flush=True)
        print(header(), flush=True)
        results = []
        with database.session() as session:
            moderator = new_moderator(session)
            settings.pin_thresholds(session, {"off_topic": LabelThresholds(1.0)})
            session.commit()
            for week in range(weeks):
                monday = FIRST_WEEK + WEEK * week
                counts = replay_week(session, scorer, moderator, stream.iloc[week * per_week:(week + 1) * per_week], monday)
                during = toxic_metrics(scorer, held, start["recall"])
                outcome = refresh.refresh(database, registry, data_paths=[DATA], now=monday + WEEK, progress=progress)
                candidate_auc = toxic_metrics(registry.load(outcome.version), held)["roc_auc"]
                shares = figures(counts)
                print(line(week + 1, scorer.version, counts, shares, during, candidate_auc, outcome), flush=True)
                for reason in [*outcome.reasons, *failed_checks(registry, outcome.version)]:
                    print(f"{'':>9}{reason}", flush=True)
                results.append({"week": week + 1, **shares, "auc": during["roc_auc"], "held_recall": during["recall"],
                                "held_precision": during["precision"], "held_read": flagged_share(during),
                                "held_read_at_recall": during["read_at_recall"],
                                "candidate_auc": candidate_auc, "promoted": outcome.promoted})
                scorer = registry.load()
        final = toxic_metrics(scorer, held, start["recall"])
        final_auc = final["roc_auc"]
        promotions = sum(week["promoted"] for week in results)
        print(f"after {weeks} weeks: active model {scorer.version} ({promotions} of {weeks} refreshes promoted); on the held-out "
              f"conversations, start -> end: ROC-AUC {start_auc:.3f} -> {final_auc:.3f}, recall {start['recall']:.3f} -> "
              f"{final['recall']:.3f}, precision {start['precision']:.3f} -> {final['precision']:.3f}, flagged "
              f"{flagged_share(start):.3f} -> {flagged_share(final):.3f}; to hold the starting recall, share to read "
              f"{start['read_at_recall']:.3f} -> {final['read_at_recall']:.3f}")
    if args.plot:
        write_plot(args.plot, results, start_auc, final_auc)
        print(f"wrote {args.plot}")
    print(f"wall time {time.monotonic() - started:,.0f} s")


if __name__ == "__main__":
    main()
