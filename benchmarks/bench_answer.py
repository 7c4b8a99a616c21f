"""What one comment costs the app, with no HTTP server around it: POST /api/v1/comments called in-process, one at a time.

Usage: python benchmarks/bench_answer.py [--comments 1500] [--warmup 300] [--database-url URL | --sqlite]
                                         [--models-dir DIR] [--profile]
The WSGI app is called directly (as gunicorn's worker calls it) on a scratch database (palabre_answer_*
on the PostgreSQL server of --database-url, dropped at the end; or a temporary SQLite file) with
the comments load_api.py sends: about 50 articles of data/, each comment new. It prints the
CPU this thread spent per answer, the app's own stage timings per answer (the same as /metrics),
and the same comments scored alone in this process before and after, as a measure of the
machine's speed at the time: the answer in units of it compares across machines. --profile
adds cProfile's 40 most expensive functions (CPU time). Batches are of one comment here;
under load the intake puts several in one (benchmarks/load_api.py measures that).
Needs an active model (MODERATION_MODELS_DIR, default models/, or --models-dir) signed with
MODERATION_SECRET_KEY; train one with `python -m moderation train --data data --activate`.
"""

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

from werkzeug.test import EnvironBuilder

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_bulk import machine  # noqa: E402
from load_api import DEFAULT_SERVER, active_scorer, api_requests, corpus, reference_ms  # noqa: E402
from scratch import scratch_database  # noqa: E402

from moderation import create_app, timings  # noqa: E402
from moderation.api.clients import create_client  # noqa: E402
from moderation.database import Database  # noqa: E402
from moderation.registry import default_models_dir  # noqa: E402


def parse_arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=1500, help="answers measured (default 1500)")
    parser.add_argument("--warmup", type=int, default=300, help="answers before measuring (default 300)")
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server on which a scratch database is made")
    parser.add_argument("--sqlite", action="store_true", help="a temporary SQLite file instead of PostgreSQL")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: MODERATION_MODELS_DIR, else models/")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's most expensive functions")
    parser.add_argument("--seed", type=int, default=7, help="random seed for the comments sent")
    return parser.parse_args()


def answer(app, body: bytes, headers: dict) -> str:
    """POST one comment through the WSGI app; its status line."""
    environ = EnvironBuilder(path="/api/v1/comments", method="POST", data=body, headers=headers).get_environ()
    status = []
    b"".join(app(environ, lambda line, _headers, _error=None: status.append(line)))
    return status[0]


def stage_cpu() -> dict[str, float]:
    """CPU seconds recorded so far in this process, by stage."""
    timings.flush()
    return {sample.labels["stage"]: sample.value for family in timings.REGISTRY.collect() for sample in family.samples
            if sample.name == "palabre_stage_cpu_seconds_total"}


def main() -> None:
    args = parse_arguments()
    models_dir = args.models_dir or default_models_dir()
    scorer = active_scorer(models_dir)
    rng = random.Random(args.seed)
    rows, pages = corpus(rng)
    with scratch_database(None if args.sqlite else args.database_url, "palabre-answer") as (url, _):
        Database(url).upgrade()
        app = create_app({"DATABASE_URL": url, "MODELS_DIR": str(models_dir)})
        with app.extensions["palabre.database"].session() as session:
            _, key = create_client(session, "bench")
        sent = api_requests(rows, pages, args.warmup + args.comments, "answer", key, rng)
        before_ms = reference_ms(scorer, rows, pages)
        for _, body, headers in sent[:args.warmup]:
            answer(app, body, headers)
        stages_before = stage_cpu()
        profile = cProfile.Profile(time.thread_time) if args.profile else None
        refused, started = 0, time.thread_time()
        if profile:
            profile.enable()
        for _, body, headers in sent[args.warmup:]:
            refused += not answer(app, body, headers).startswith("201")
        if profile:
            profile.disable()
        cpu_ms = 1000 * (time.thread_time() - started) / args.comments
        stages = {stage: 1000 * (seconds - stages_before.get(stage, 0.0)) / args.comments
                  for stage, seconds in stage_cpu().items()}
        after_ms = reference_ms(scorer, rows, pages)
        app.extensions["palabre.database"].engine.dispose()
    print(f"{machine()}; model {scorer.version}; {'sqlite' if args.sqlite else 'postgresql'}; "
          f"{args.comments} answers after {args.warmup}, one at a time{' (profiled: slower)' if profile else ''}")
    print(f"app CPU per answer: {cpu_ms:.3f} ms; answers other than 201: {refused}")
    print(f"machine reference (the same comments scored alone, CPU ms each): {before_ms:.3f} before, {after_ms:.3f} after; "
          f"the answer is {cpu_ms / ((before_ms + after_ms) / 2):.2f} of them")
    print("stage CPU ms per answer (the app's own timings, as /metrics has them):")
    for stage, ms in sorted(stages.items(), key=lambda item: -item[1]):
        if ms >= 0.001:
            print(f"  {stage:34s} {ms:7.3f}")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(40)


if __name__ == "__main__":
    main()
