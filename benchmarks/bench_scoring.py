"""Scoring speed: the project's scorer against plain Pipeline.predict_proba, same model, same comments.

Usage: python benchmarks/bench_scoring.py [--model VERSION] [--comments 5000] [--threads 1000] [--png latency.png]
Trains nothing: it loads a model from MODERATION_MODELS_DIR (default models/); train one first
with `python -m moderation train --data data --activate`.

Then the cost of a live thread: each comment is scored against the latest 20 comments, one of
them new each time, with the scorer's thread caches as they are and with them emptied first.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation import corpora, load_scorer  # noqa: E402
from moderation.corpora import LABELS  # noqa: E402
from moderation.registry import RegistryError  # noqa: E402
from moderation.training import THREAD_SIZE  # noqa: E402

PUBLIC = ROOT.parent / "shared" / "datasets"


def comments(count: int) -> list[dict]:
    """Comments with their article from data/, topped up with public tweets when present."""
    frame = corpora.load([ROOT / "data"]).frame
    items = [
        {"text": row.text, "article": {"title": row.article_title, "body": row.article_body}}
        for row in frame.itertuples()
    ]
    public = [path for path in (PUBLIC / "mlma" / "fr_dataset.csv", PUBLIC / "davidson" / "labeled_data.csv") if path.exists()]
    if public:
        items += [{"text": text, "article": None} for text in corpora.load(public).frame["text"]]
    step = max(1, len(items) // count)
    return (items[::step] * (count // len(items[::step]) + 1))[:count]


def thread_steps(count: int) -> list[tuple[str, dict]]:
    """(comment, article) pairs whose thread is the previous 20 comments: one new comment at each step."""
    frame = corpora.load([ROOT / "data"]).frame.sort_values("article_id", kind="stable")
    rows = list(frame.itertuples())
    steps = []
    for index in range(count):
        row = rows[(index + THREAD_SIZE) % len(rows)]
        thread = [rows[(index + k) % len(rows)].text for k in range(THREAD_SIZE)]
        steps.append((row.text, {"title": row.article_title, "body": row.article_body, "comments": thread}))
    return steps


def thread_latencies(scorer, steps, cold: bool) -> tuple[list[float], list[dict]]:
    """Per-comment latency against a changing thread; cold empties the thread caches before each comment."""
    latencies, results = [], []
    for text, article in steps:
        if cold:
            scorer._threads.clear()
            scorer._line_words.cache_clear()
        started = time.perf_counter()
        results.append(scorer.score(text, article))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, results


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def plain(scorer, text: str, article: dict | None) -> dict[str, float]:
    """Both labels through scikit-learn's own Pipeline.predict_proba on a one-row input."""
    article_text = "\n".join(filter(None, [(article or {}).get("title"), (article or {}).get("body")])).strip()
    row = [(text, article_text, "")] if article_text else [text]
    return {label: scorer.pipelines[label].predict_proba(row)[0, 1] for label in LABELS}


def timed(function, items) -> tuple[list[float], list]:
    """Per-item latency in milliseconds, and the results."""
    latencies, results = [], []
    for item in items:
        started = time.perf_counter()
        results.append(function(item))
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, results


def main() -> None:
    """Run both paths over the same comments and print latency, throughput and agreement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--comments", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1000, help="comments scored against a changing thread")
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    try:
        scorer = load_scorer(version=args.model)
    except RegistryError as error:
        raise SystemExit(str(error)) from None
    items = comments(args.comments)
    with_article = sum(1 for item in items if item["article"])
    print(f"model {scorer.version}; {len(items)} comments ({with_article} with their article)")

    for item in items[:200]:
        scorer.score(item["text"], item["article"])
        plain(scorer, item["text"], item["article"])
    fast_ms, fast = timed(lambda item: scorer.score(item["text"], item["article"]), items)
    slow_ms, slow = timed(lambda item: plain(scorer, item["text"], item["article"]), items)
    started = time.perf_counter()
    scorer.score_many(items)
    batch_seconds = time.perf_counter() - started

    difference = max(abs(f[label] - s[label]) for f, s in zip(fast, slow) for label in LABELS)
    print(f"{'path':<34} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in (("Pipeline.predict_proba (2 labels)", slow_ms), ("project scorer (+ explanation)", fast_ms)):
        print(f"{name:<34} {percentile(values, 0.5):8.3f} {percentile(values, 0.99):8.3f} {statistics.fmean(values):8.3f}")
    print(f"speed-up p50: {percentile(slow_ms, 0.5) / percentile(fast_ms, 0.5):.1f}x, "
          f"p99: {percentile(slow_ms, 0.99) / percentile(fast_ms, 0.99):.1f}x, mean: {statistics.fmean(slow_ms) / statistics.fmean(fast_ms):.1f}x")
    print(f"batch: score_many {len(items) / batch_seconds:,.0f} comments/s")
    print(f"largest score difference between the paths: {difference:.2e} ({'OK' if difference < 1e-6 else 'TOO LARGE'} against 1e-6)")
    report_threads(scorer, thread_steps(args.threads))
    if args.png:
        write_png(args.png, slow_ms, fast_ms)
        print(f"wrote {args.png}")


def report_threads(scorer, steps) -> None:
    """Latency against a thread that gains one comment each time, with and without the thread caches."""
    cold_ms, cold = thread_latencies(scorer, steps, cold=True)
    warm_ms, warm = thread_latencies(scorer, steps, cold=False)
    print(f"\n{len(steps)} comments, each against a {THREAD_SIZE}-comment thread with one new comment")
    print(f"{'thread caches':<34} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in (("emptied (all comments normalised)", cold_ms), ("kept (the new comment normalised)", warm_ms)):
        print(f"{name:<34} {percentile(values, 0.5):8.3f} {percentile(values, 0.99):8.3f} {statistics.fmean(values):8.3f}")
    print(f"speed-up p50: {percentile(cold_ms, 0.5) / percentile(warm_ms, 0.5):.2f}x, "
          f"mean: {statistics.fmean(cold_ms) / statistics.fmean(warm_ms):.2f}x; "
          f"saved per comment (mean): {statistics.fmean(cold_ms) - statistics.fmean(warm_ms):.3f} ms; "
          f"largest score difference: {max(abs(a[label] - b[label]) for a, b in zip(cold, warm) for label in LABELS):.1e} "
          f"(OK against 1e-9)")


def write_png(path: Path, slow_ms: list[float], fast_ms: list[float]) -> None:
    """Latency distributions of both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.hist(slow_ms, bins=60, alpha=0.6, label="Pipeline.predict_proba")
    axes.hist(fast_ms, bins=60, alpha=0.6, label="project scorer")
    axes.set(xlabel="milliseconds per comment", ylabel="comments", yscale="log")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
