"""Bulk scoring speed: Scorer.score_many and the score command against the model's own Pipeline.predict_proba.

Usage: python benchmarks/bench_bulk.py [--model VERSION] [--comments 5000] [--rounds 3] [--turn 1000] [--lines 1000000]
                                      [--png bulk.png]
Trains nothing: it loads a model from MODERATION_MODELS_DIR (default models/); train one first
with `python -m moderation train --data data --activate`.

In one process, on the same comments: both labels' Pipeline.predict_proba (the baseline,
with the rows bench_scoring.py gives it), the one-at-a-time loop over Scorer.score, and
Scorer.score_many. A shared machine's speed moves, so the three take turns on a thousand
comments at a time, round after round, first with Python's collector as it is, then with the
loaded model frozen out of its sight (gc.freeze, as the score command does). Then the score
command end to end on a generated file of JSON lines (data/ rows, repeated): lines per second
and the command's peak memory, on a tenth of the lines and on all of them, to show memory
stays flat.
"""

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_scoring import comments  # noqa: E402  (the same comments as the scoring benchmark)

from moderation import corpora, load_scorer  # noqa: E402
from moderation.corpora import LABELS  # noqa: E402
from moderation.registry import RegistryError  # noqa: E402

PATHS = ("Pipeline.predict_proba (2 labels)", "Scorer.score, one at a time", "Scorer.score_many")


def machine() -> str:
    """Cores this process may use, and the CPU model."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU") if Path("/proc/cpuinfo").exists() else "unknown CPU"
    return f"nproc {len(os.sched_getaffinity(0))}, {model}"


def baseline_rows(items: list[dict]) -> list:
    """The pipelines' input for the same comments: (text, article, thread) with an article, the bare text without."""
    rows = []
    for item in items:
        article = item["article"] or {}
        article_text = "\n".join(filter(None, [article.get("title"), article.get("body")])).strip()
        rows.append((item["text"], article_text, "") if article_text else item["text"])
    return rows


def run_round(scorer, items: list[dict], rows: list, number: int, turn: int) -> tuple[dict[str, float], list, list]:
    """Seconds each path takes on the whole batch, taking turns on `turn` comments at a time; the single and batched results."""
    seconds, single, many = dict.fromkeys(PATHS, 0.0), [], []
    for start in range(0, len(items), turn):
        first = (start // turn + number) % len(PATHS)  # who goes first changes from turn to turn
        for name in PATHS[first:] + PATHS[:first]:
            started = time.perf_counter()
            if name == PATHS[0]:
                for label in LABELS:
                    scorer.pipelines[label].predict_proba(rows[start:start + turn])
            elif name == PATHS[1]:
                single += [scorer.score(item["text"], item["article"]) for item in items[start:start + turn]]
            else:
                many += scorer.score_many(items[start:start + turn])
            seconds[name] += time.perf_counter() - started
    return seconds, single, many


def report_rounds(scorer, items: list[dict], rounds: int, turn: int, collector: str) -> tuple[list[dict], list, list]:
    """Each round's comments per second and ratios; the median ratios across rounds."""
    rows = baseline_rows(items)
    with_article = sum(1 for item in items if item["article"])
    print(f"\ncollector {collector}; {len(items)} comments ({with_article} with their article), the paths taking turns "
          f"on {turn} at a time")
    print(f"{'round':<6}" + "".join(f"{name:>36}" for name in PATHS) + f"{'many/pipeline':>15}{'many/one':>10}")
    measured = []
    for number in range(1, rounds + 1):
        seconds, single, many = run_round(scorer, items, rows, number, turn)
        measured.append(seconds)
        rates = "".join(f"{len(items) / seconds[name]:>29,.0f} /s    " for name in PATHS)
        print(f"{number:<6}{rates}{seconds[PATHS[0]] / seconds[PATHS[2]]:>14.2f}x{seconds[PATHS[1]] / seconds[PATHS[2]]:>9.2f}x")
    print(f"median: score_many {statistics.median(s[PATHS[0]] / s[PATHS[2]] for s in measured):.2f}x Pipeline.predict_proba, "
          f"{statistics.median(s[PATHS[1]] / s[PATHS[2]] for s in measured):.2f}x the one-at-a-time loop")
    return measured, single, many


def report_agreement(scorer, items: list[dict], single: list[dict], many: list[dict]) -> None:
    """How far score_many is from single scoring, and from the pipelines."""
    difference = max(abs(one[label] - batched[label]) for one, batched in zip(single, many) for label in LABELS)
    same = sum(one["explanation"] == batched["explanation"] for one, batched in zip(single, many))
    rows = baseline_rows(items)
    pipeline = {label: scorer.pipelines[label].predict_proba(rows)[:, 1] for label in LABELS}
    from_pipeline = max(abs(batched[label] - pipeline[label][index]) for index, batched in enumerate(many) for label in LABELS)
    print(f"largest score difference, score_many against single scoring: {difference:.2e} "
          f"({'OK' if difference <= 1e-9 else 'TOO LARGE'} against 1e-9); identical explanations: {same} of {len(many)}")
    print(f"largest score difference, score_many against Pipeline.predict_proba: {from_pipeline:.2e}")


def write_lines(path: Path, count: int) -> None:
    """JSON lines of data/ rows (with their article where they have one), repeated up to `count`."""
    frame = corpora.load([ROOT / "data"]).frame
    bodies = []
    for row in frame.itertuples():
        record = {"text": row.text}
        if isinstance(row.article_title, str) and row.article_title:
            body = row.article_body if isinstance(row.article_body, str) else ""
            record["article"] = {"title": row.article_title, "body": body}
        bodies.append(json.dumps(record, ensure_ascii=False)[1:])
    with path.open("w", encoding="utf-8") as file:
        for number in range(count):
            file.write(f'{{"id": {number}, {bodies[number % len(bodies)]}\n')


def run_cli(lines: Path, output: Path, model: str | None) -> tuple[float, int, int]:
    """Seconds, peak resident memory (KiB) and exit status of `python -m moderation score` on a file of lines."""
    command = [sys.executable, "-m", "moderation", "score", *(["--model", model] if model else [])]
    with lines.open("rb") as stdin, output.open("wb") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdin=stdin, stdout=stdout)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, not the largest of all children so far
        elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss, process.returncode


def count_lines(path: Path) -> tuple[int, int]:
    """Lines of the command's output, and how many of them are errors."""
    total = errors = 0
    with path.open("rb") as file:
        for line in file:
            total += 1
            errors += b'"error": "' in line
    return total, errors


def report_cli(count: int, model: str | None) -> list[tuple[int, float]]:
    """The score command on a tenth of the lines and on all of them: lines per second and peak memory."""
    measured = []
    with tempfile.TemporaryDirectory() as folder:
        for size in (count // 10, count):
            lines, output = Path(folder) / "lines.jsonl", Path(folder) / "scored.jsonl"
            write_lines(lines, size)
            elapsed, peak, status = run_cli(lines, output, model)
            written, errors = count_lines(output)
            megabytes = lines.stat().st_size / 2**20
            print(f"score command, {size:,} lines ({megabytes:,.0f} MiB): {size / elapsed:,.0f} lines/s, "
                  f"{elapsed:,.1f} s, peak RSS {peak / 1024:,.0f} MiB, exit status {status}, "
                  f"{written:,} lines out, {errors} errors")
            measured.append((size, size / elapsed))
    return measured


def main() -> None:
    """Print the machine, the in-process comparison with both collector settings, then the command end to end."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--comments", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--turn", type=int, default=1000, help="comments each path scores before the next takes its turn")
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines for the score command (0 to skip it)")
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    try:
        scorer = load_scorer(version=args.model)
    except RegistryError as error:
        raise SystemExit(str(error)) from None
    print(f"{machine()}; model {scorer.version}")
    items = comments(args.comments)
    scorer.score_many(items[:300])
    for label in LABELS:
        scorer.pipelines[label].predict_proba(baseline_rows(items[:300]))
    as_is, _, _ = report_rounds(scorer, items, args.rounds, args.turn, "as it is")
    gc.freeze()
    frozen, single, many = report_rounds(scorer, items, args.rounds, args.turn, "with the loaded model frozen (gc.freeze)")
    gc.unfreeze()
    report_agreement(scorer, items, single, many)
    cli = report_cli(args.lines, args.model) if args.lines else []
    if args.png:
        write_png(args.png, len(items), as_is + frozen, cli)
        print(f"wrote {args.png}")


def write_png(path: Path, count: int, rounds: list[dict], cli: list[tuple[int, float]]) -> None:
    """Comments per second of each path, every round as a dot, and the command's lines per second."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    names = [*PATHS, *(f"score command, {size:,} lines" for size, _ in cli)]
    for position, name in enumerate(PATHS):
        axes.scatter([count / seconds[name] for seconds in rounds], [position] * len(rounds))
    for position, (_, rate) in enumerate(cli, len(PATHS)):
        axes.scatter([rate], [position], marker="s")
    axes.set(yticks=range(len(names)), yticklabels=names, xlabel="comments per second", xlim=(0, None))
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
