"""The weekly refresh on a site of a million comments: wall time and peak memory of `import` and `refresh` as a user runs them.

Usage: python benchmarks/bench_refresh_scale.py [--comments 1000000] [--decisions 2000] [--database-server URL]
                                                [--models-dir DIR]
The site is made by resampling data/'s labelled rows (with replacement, seed 1) into --comments
comments dated over the two years before the refresh, written as a CSV in `import`'s format. On a
scratch database (SQLite, or a new database on the PostgreSQL server of --database-server) and a
registry holding a copy of the default model (the active version of --models-dir, or one trained
here from data/), --decisions of the rows are received and decided by a moderator through the
service, then, each as its own process, as cron or a shell would start it:
  1. `python -m moderation refresh --dry-run` with the decisions only: the baseline;
  2. `python -m moderation import <the CSV>`;
  3. `python -m moderation refresh --dry-run` with the decisions and the million imported comments.
Their progress lines show as they run; each one's wall time and peak resident memory (the
process's own, from wait4) are printed, with the large refresh's ratio to the baseline.
Targets (issue 11): the refresh under 10 minutes and 4 GB on a 2-core machine.
"""

import argparse
import os
import subprocess
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
from simulate_feedback import DATA, default_model, fresh_registry, new_moderator  # noqa: E402

from moderation import corpora  # noqa: E402
from moderation.build import Progress  # noqa: E402
from moderation.comments.models import PENDING, PUBLISHED, REJECTED  # noqa: E402
from moderation.database import Database  # noqa: E402
from moderation.receiving import IncomingComment, receive_comment  # noqa: E402
from moderation.service import decide  # noqa: E402

NOW = datetime(2027, 1, 4, 3, tzinfo=UTC)
SPAN = timedelta(days=730)
TARGET_SECONDS, TARGET_BYTES = 600, 4 * 2**30
COLUMNS = ["text", "toxic", "off_topic", "article_id", "article_title", "article_body", "language", "created_at"]


def resampled(count: int) -> pd.DataFrame:
    """`count` of data/'s labelled rows drawn with replacement, each dated at a random moment of the two years before NOW."""
    frame = corpora.load([DATA]).frame
    frame = frame[frame["toxic"].notna() | frame["off_topic"].notna()].reset_index(drop=True)
    generator = np.random.default_rng(1)
    rows = frame.iloc[generator.integers(0, len(frame), count)].reset_index(drop=True)
    offsets = generator.uniform(0, SPAN.total_seconds(), count)
    rows["created_at"] = [(NOW - timedelta(seconds=float(offset))).isoformat() for offset in offsets]
    return rows[COLUMNS]


def receive_and_decide(database: Database, scorer, rows: pd.DataFrame) -> int:
    """Each row received through the service; a moderator decides every one, by its label; how many were decided."""
    decided = 0
    with database.session() as session:
        moderator = new_moderator(session)
        for number, row in enumerate(rows.itertuples()):
            at = NOW - timedelta(days=30) + timedelta(minutes=10 * number)
            comment = receive_comment(session, scorer, IncomingComment(
                id=f"decided-{number}", text=row.text, article_id=row.article_id or "no-article", article_title=row.article_title or "-",
                article_body=row.article_body or None, created_at=at, language=row.language or None), now=at).comment
            if comment.status != PENDING:
                continue
            toxic = row.toxic == 1
            decide(session, comment.id, moderator, REJECTED if toxic else PUBLISHED, "toxic" if toxic else None,
                   now=at + timedelta(minutes=1))
            decided += 1
    return decided


def run(title: str, arguments: list[str], env: dict) -> tuple[float, int]:
    """Run `python -m moderation ...` with its output shown; its wall time in seconds and peak resident memory in bytes."""
    print(f"\n== {title}: python -m moderation {' '.join(arguments)}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "moderation", *arguments], cwd=ROOT, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{title} failed with exit code {process.returncode}")
    print(f"== {title}: {seconds:,.1f} s, peak memory {usage.ru_maxrss / 2**20:,.2f} GB", flush=True)
    return seconds, usage.ru_maxrss * 1024


def main() -> None:
    """Make the site, run the baseline refresh, the import and the large refresh, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=1_000_000, help="imported comments")
    parser.add_argument("--decisions", type=int, default=2000, help="comments received and decided through the service")
    parser.add_argument("--database-server", default=None, help="a PostgreSQL URL to make the scratch database on")
    parser.add_argument("--models-dir", type=Path, default=None, help="start from this registry's active version (copied)")
    args = parser.parse_args()
    started = time.monotonic()
    progress = Progress(lambda message: print(message, file=sys.stderr, flush=True))
    print(f"{machine()}; started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
    with (tempfile.TemporaryDirectory(prefix="refresh-scale-") as folder,
          scratch_database(args.database_server, "refresh-scale") as (url, _)):
        folder = Path(folder)
        rows = resampled(args.comments + args.decisions)
        path = folder / "history.csv"
        rows.iloc[args.decisions:].to_csv(path, index=False)
        print(f"site: {args.comments:,} comments resampled from data/ into {path.name} ({path.stat().st_size / 2**20:,.0f} MB), "
              f"{int(rows['toxic'].eq(1).sum()):,} toxic; database {url.split(':', 1)[0]}", flush=True)
        registry = fresh_registry(folder / "registry", default_model(folder / "trained", args.models_dir, progress))
        database = Database(url)
        database.upgrade()
        decided = receive_and_decide(database, registry.load(), rows.iloc[:args.decisions])
        database.engine.dispose()
        print(f"{decided:,} of {args.decisions:,} received comments held for review and decided by a moderator", flush=True)
        env = dict(os.environ, MODERATION_DATABASE_URL=url, MODERATION_MODELS_DIR=str(registry.root))
        baseline = run("refresh, decisions only", ["refresh", "--dry-run"], env)
        imported = run("import", ["import", str(path)], env)
        large = run(f"refresh, {args.comments:,} imported comments", ["refresh", "--dry-run"], env)
    print(f"\n{machine()}")
    for title, (seconds, peak) in (("refresh, decisions only (baseline)", baseline), (f"import of {args.comments:,}", imported),
                                   (f"refresh with {args.comments:,} imported", large)):
        print(f"{title:<40} {seconds:>8,.1f} s {peak / 2**30:>6.2f} GB")
    print(f"large refresh / baseline: time x{large[0] / baseline[0]:.2f}, memory x{large[1] / baseline[1]:.2f}; "
          f"target {TARGET_SECONDS} s and {TARGET_BYTES / 2**30:.0f} GB: "
          f"{'met' if large[0] < TARGET_SECONDS and large[1] < TARGET_BYTES else 'MISSED'} "
          f"({large[0] / TARGET_SECONDS:.0%} of the time, {large[1] / TARGET_BYTES:.0%} of the memory)")
    print(f"wall time {time.monotonic() - started:,.0f} s")


if __name__ == "__main__":
    main()
