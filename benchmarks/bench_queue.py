"""Review-queue server time: GET /queue on 100,000 waiting comments, against a 1,000-comment baseline.

Usage: python benchmarks/bench_queue.py [--comments 100000] [--repetitions 30] [--database-url URL]
                                        [--models-dir DIR] [--plot queue.png] [--quick]
Builds scratch databases (temporary SQLite files, or palabre_bench_* databases created on the
PostgreSQL server of --database-url and dropped at the end), receives a few hundred comments from
data/ through the service, copies them in bulk up to the queue size, then times the queue pages
with Flask's test client. Needs an active model: MODERATION_MODELS_DIR (default models/) or
--models-dir; train one with `python -m moderation train --data data --activate`.
"""

import argparse
import os
import random
import re
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scratch import scratch_database  # noqa: E402

from moderation import create_app, load_scorer  # noqa: E402
from moderation.auth.models import MODERATOR, User  # noqa: E402
from moderation.comments.models import PENDING, Comment, Revision, Score  # noqa: E402
from moderation.database import Database, upgrade, utcnow  # noqa: E402
from moderation.policy import PUBLISH, REJECT, REVIEW, priority  # noqa: E402
from moderation.queue.listing import Filters, claimed_elsewhere, waiting  # noqa: E402
from moderation.receiving import IncomingComment, receive_comment  # noqa: E402
from moderation.registry import NoModelError, RegistryError, default_models_dir  # noqa: E402

DATA = ROOT / "data"
BASELINE = 1_000
TARGET_MS = 100.0
ARTICLES = 40
DAYS = 30
WARMUPS = 3
CHUNK = 5_000
STATEMENT_CHARS = 110
USERNAME = "bench-moderator"
PASSWORD = "bench password, long enough"
REQUESTS = {
    "(a) first page": "/queue",
    "(b) toxic+fr+0.5": "/queue?label=toxic&language=fr&min_score=0.5",
    "(c) page 200": "/queue?page=200",
    "(d) busy article": "/queue?article={article}",
}
EXPLAINED = ("(a) first page", "(b) toxic+fr+0.5")


@dataclass
class Figures:
    """One request's timings on one queue size, and what the page showed."""

    server_ms: list[float]
    sql_ms: list[float]
    rows: int
    waiting: str

    def p(self, share: float) -> float:
        """A percentile of the server times."""
        return percentile(self.server_ms, share)

    @property
    def sql_p50(self) -> float:
        """The median time of waiting() alone."""
        return percentile(self.sql_ms, 0.5)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class Run:
    """Everything measured on one queue size."""

    size: int
    fill_report: str
    figures: dict[str, Figures]
    breakdown: list[str]
    plans: list[str]


def incoming_comments(count: int, rng: random.Random) -> list[IncomingComment]:
    """Comments from data/comments with their article, in French and English, over about 40 articles."""
    comments = pd.concat([pd.read_csv(path) for path in sorted((DATA / "comments").glob("*.csv"))], ignore_index=True)
    articles = pd.concat([pd.read_csv(path) for path in sorted((DATA / "articles").glob("*.csv"))]).set_index("article_id")
    comments = comments[comments["language"].isin(["fr", "en"]) & comments["article_id"].isin(articles.index)]
    chosen = rng.sample(sorted(comments["article_id"].unique()), ARTICLES)
    rows = comments[comments["article_id"].isin(chosen)].sample(count, random_state=rng.randrange(2**31))
    return [
        IncomingComment(id=f"seed-{number}", text=row.text, article_id=row.article_id,
                        article_title=articles.at[row.article_id, "title"], article_body=articles.at[row.article_id, "body"],
                        author_id=row.author if pd.notna(row.author) else None,
                        author_name=row.author if pd.notna(row.author) else None, language=row.language)
        for number, row in enumerate(rows.itertuples())
    ]


def fill(url: str, scorer, size: int, seeds: int, rng: random.Random) -> str:
    """Migrate, receive real comments through the service, copy the waiting ones up to `size`; say how long it took."""
    started = time.perf_counter()
    upgrade(url)
    database = Database(url)
    now = utcnow()
    with database.session() as session:
        for incoming in incoming_comments(seeds, rng):
            receive_comment(session, scorer, incoming, now - timedelta(seconds=rng.uniform(0, DAYS * 86400)))
        models = templates(session)
    received = time.perf_counter()
    copies = max(0, size - len(models))
    copy_rows(database, models, copies, now, rng)
    if database.engine.dialect.name == "postgresql":
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    else:
        database.upgrade()
    database.engine.dispose()
    done = time.perf_counter()
    statistics = ("VACUUM ANALYZE run, as autovacuum would" if database.engine.dialect.name == "postgresql"
                  else "ANALYZE run, as the app does at start (Database.upgrade)")
    return (f"filled in {done - started:.1f} s: {seeds} comments received through the service in {received - started:.1f} s "
            f"({len(models)} waiting), {copies:,} copies inserted in {done - received:.1f} s; {statistics}")


def templates(session) -> list[dict]:
    """The waiting comments the service stored, with their current score: what the copies repeat."""
    rows = session.execute(
        select(Comment, Score).join(Revision, (Revision.comment_id == Comment.id) & (Revision.number == Comment.revision))
        .join(Score, Score.revision_id == Revision.id).where(Comment.status == PENDING)
    ).all()
    return [
        {"article_id": comment.article_id, "premoderated": comment.article.premoderated, "text": comment.text,
         "language": comment.language, "author_id": comment.author_id, "author_name": comment.author_name,
         "review_reason": comment.review_reason, "model_version": score.model_version, "toxic": score.toxic,
         "off_topic": score.off_topic, "labels": score.labels, "explanation": score.explanation}
        for comment, score in rows
    ]


def copy_rows(database: Database, models: list[dict], count: int, now, rng: random.Random) -> None:
    """Insert `count` waiting copies in bulk, a few articles far busier than the rest (weights 1, 1/2, 1/3...)."""
    articles = sorted({model["article_id"] for model in models})
    rng.shuffle(articles)
    weight = {article: 1 / rank for rank, article in enumerate(articles, 1)}
    weights = [weight[model["article_id"]] for model in models]
    with database.engine.begin() as connection:
        comment_id, revision_id = next_id(connection, Comment), next_id(connection, Revision)
        for start in range(0, count, CHUNK):
            chosen = rng.choices(models, weights, k=min(CHUNK, count - start))
            insert_copies(connection, chosen, (comment_id + start, revision_id + start), now, rng)
        if connection.dialect.name == "postgresql":
            for table in ("comments", "revisions"):
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))


def next_id(connection, model) -> int:
    """The first free id of a table: the copies carry their own ids, so no insert has to return them."""
    return connection.scalar(select(func.coalesce(func.max(model.id), 0))) + 1


def insert_copies(connection, chosen: list[dict], first_ids: tuple[int, int], now, rng: random.Random) -> None:
    """One executemany per table: the comments, their first revision, and its score."""
    comment_id, revision_id = first_ids
    comments = [copied_comment(model, comment_id + offset, now - timedelta(seconds=rng.uniform(0, DAYS * 86400)))
                for offset, model in enumerate(chosen)]
    connection.execute(insert(Comment.__table__), comments)
    connection.execute(insert(Revision.__table__), [
        {"id": revision_id + offset, "comment_id": row["id"], "number": 1, "text": row["text"], "received_at": row["received_at"]}
        for offset, row in enumerate(comments)
    ])
    connection.execute(insert(Score.__table__), [
        {"revision_id": revision_id + offset, "model_version": model["model_version"], "toxic": model["toxic"],
         "off_topic": model["off_topic"], "labels": model["labels"], "explanation": model["explanation"],
         "decision": REVIEW, "created_at": row["received_at"]}
        for offset, (model, row) in enumerate(zip(chosen, comments))
    ])


def copied_comment(model: dict, comment_id: int, received_at) -> dict:
    """A waiting comment with a template's text and scores, received at its own time (hence its own priority)."""
    scores = {"toxic": model["toxic"], "off_topic": model["off_topic"]}
    return {
        "id": comment_id, "external_id": f"copy-{comment_id}", "article_id": model["article_id"], "author_id": model["author_id"],
        "author_name": model["author_name"], "language": model["language"], "created_at": received_at,
        "received_at": received_at, "text": model["text"], "revision": 1, **scores, "top_score": max(scores.values()),
        "toxic_flag": "toxic" in model["labels"], "off_topic_flag": "off_topic" in model["labels"],
        "suggestion": REJECT if model["labels"] else PUBLISH, "review_reason": model["review_reason"],
        "priority": priority(scores, received_at, model["premoderated"]), "status": PENDING,
    }


def measure(url: str, models_dir: Path, repetitions: int) -> tuple[dict[str, Figures], list[str], list[str]]:
    """Time each queue request through the app, and waiting() alone; explain the queries of (a) and (b)."""
    app = create_app({"DATABASE_URL": url, "MODELS_DIR": str(models_dir), "WTF_CSRF_ENABLED": False})
    database = app.extensions["palabre.database"]
    moderator_id = add_moderator(database)
    client = app.test_client()
    answer = client.post("/login", data={"username": USERNAME, "password": PASSWORD})
    if answer.status_code != 302:
        raise SystemExit(f"logging in failed with HTTP {answer.status_code}")
    paths = {name: path.format(article=busiest_article(database)) for name, path in REQUESTS.items()}
    figures = {name: timed_request(client, database, moderator_id, path, repetitions) for name, path in paths.items()}
    breakdown = first_page_breakdown(client, database, paths["(a) first page"], repetitions)
    plans = [line for name in EXPLAINED for line in explained(database, moderator_id, name, paths[name])]
    database.engine.dispose()
    return figures, breakdown, plans


def add_moderator(database: Database) -> int:
    """A moderator account with an English interface; its id."""
    with database.session() as session:
        user = User(username=USERNAME, role=MODERATOR, language="en")
        user.set_password(PASSWORD)
        session.add(user)
        session.commit()
        return user.id


def busiest_article(database: Database) -> int:
    """The article with the most waiting comments."""
    with database.session() as session:
        return session.scalar(select(Comment.article_id).where(Comment.status == PENDING).group_by(Comment.article_id)
                              .order_by(func.count().desc()).limit(1))


def timed_request(client, database: Database, moderator_id: int, path: str, repetitions: int) -> Figures:
    """Server time of GET path, after warm-ups, then the same page read by waiting() alone."""
    for _ in range(WARMUPS):
        client.get(path)
    server_ms = []
    for _ in range(repetitions):
        started = time.perf_counter()
        answer = client.get(path)
        server_ms.append((time.perf_counter() - started) * 1000)
    if answer.status_code != 200:
        raise SystemExit(f"GET {path} answered HTTP {answer.status_code}")
    page = answer.get_data(as_text=True)
    shown = re.search(r'class="count">([^<]+)<', page)
    sql_ms = [sql_time(database, moderator_id, path) for _ in range(repetitions)]
    return Figures(server_ms, sql_ms, page.count('data-comment="'), shown.group(1).strip() if shown else "?")


def filters_and_page(path: str) -> tuple[Filters, int]:
    """The filters and page number the view reads from this path's query string."""
    args = dict(parse_qsl(urlsplit(path).query))
    return Filters.from_args(args), int(args.get("page", 1))


def sql_time(database: Database, moderator_id: int, path: str) -> float:
    """Milliseconds for listing.waiting() on a fresh session, as one request would run it."""
    filters, page = filters_and_page(path)
    with database.session() as session:
        moderator = session.get(User, moderator_id)
        started = time.perf_counter()
        waiting(session, moderator, filters, page, utcnow())
        return (time.perf_counter() - started) * 1000


def first_page_breakdown(client, database: Database, path: str, repetitions: int) -> list[str]:
    """Where the first page's server time goes: each SQL statement run inside the request, and the rest."""
    per_statement: dict[str, list[float]] = defaultdict(list)
    rest, totals = [], []
    with statement_timer(database) as spent:
        for _ in range(repetitions):
            spent.clear()
            started = time.perf_counter()
            client.get(path)
            totals.append((time.perf_counter() - started) * 1000)
            rest.append(totals[-1] - sum(spent.values()))
            for statement, milliseconds in spent.items():
                per_statement[statement].append(milliseconds)
    lines = [f"{percentile(values, 0.5):9.1f} ms  {statement}" for statement, values in per_statement.items()]
    return [*lines, f"{percentile(rest, 0.5):9.1f} ms  the rest: ORM objects, template rendering, Flask",
            f"{percentile(totals, 0.5):9.1f} ms  whole request"]


@contextmanager
def statement_timer(database: Database):
    """Milliseconds spent executing each statement (by its first words) while the block runs."""
    spent: dict[str, float] = defaultdict(float)

    def before(connection, cursor, statement, parameters, context, executemany):
        connection.info["bench_started"] = time.perf_counter()

    def after(connection, cursor, statement, parameters, context, executemany):
        spent[short_sql(statement)] += (time.perf_counter() - connection.info.pop("bench_started")) * 1000

    event.listen(database.engine, "before_cursor_execute", before)
    event.listen(database.engine, "after_cursor_execute", after)
    try:
        yield spent
    finally:
        event.remove(database.engine, "before_cursor_execute", before)
        event.remove(database.engine, "after_cursor_execute", after)


def short_sql(statement: str) -> str:
    """A statement on one line, its long column list elided, cut to a readable length."""
    flat = " ".join(statement.split())
    flat = re.sub(r"^SELECT (.{40,}?) FROM ", "SELECT … FROM ", flat)
    return flat[:STATEMENT_CHARS]


def explained(database: Database, moderator_id: int, name: str, path: str) -> list[str]:
    """The plan of every query waiting() and claimed_elsewhere() send for this page."""
    statements = []

    def record(connection, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    filters, page = filters_and_page(path)
    with database.session() as session:
        moderator = session.get(User, moderator_id)
        event.listen(database.engine, "before_cursor_execute", record)
        try:
            waiting(session, moderator, filters, page, utcnow())
            claimed_elsewhere(session, moderator, utcnow())
        finally:
            event.remove(database.engine, "before_cursor_execute", record)
        connection = session.connection()
        prefix = "EXPLAIN QUERY PLAN " if database.engine.dialect.name == "sqlite" else "EXPLAIN "
        lines = []
        for statement, parameters in statements:
            lines.append(f"{name}: {short_sql(statement)}")
            plan = connection.exec_driver_sql(prefix + statement, parameters).all()
            lines += [f"    {plan_line(row)}" for row in plan]
    return lines


def plan_line(row) -> str:
    """One line of a plan: SQLite gives (id, parent, notused, detail), PostgreSQL one text column."""
    return f"{'  ' * (row[1] > 0)}{row[3]}" if len(row) == 4 else row[0]


def run(url: str, scorer, models_dir: Path, size: int, seeds: int, repetitions: int, rng: random.Random) -> Run:
    """Fill a scratch database to `size` waiting comments and measure it."""
    with scratch_database(url, "palabre-bench") as (scratch, _):
        report = fill(scratch, scorer, size, min(seeds, size), rng)
        figures, breakdown, plans = measure(scratch, models_dir, repetitions)
    return Run(size, report, figures, breakdown, plans)


def print_runs(small: Run, large: Run, repetitions: int, backend: str) -> None:
    """Both sizes side by side with the ratio, the target beside each figure, then the large queue's plans."""
    print(f"\n{backend}: server time of GET, ms ({repetitions} repetitions after {WARMUPS} warm-ups); "
          f"target: under {TARGET_MS:.0f} ms each (judged on p95)")
    print(f"{'request':<18} {'queue':>8} {'p50':>8} {'p95':>8} {'max':>8} {'waiting()':>10} {'rows':>5}  target  shown as")
    for name in REQUESTS:
        for run_ in (small, large):
            fig = run_.figures[name]
            verdict = "OK" if fig.p(0.95) < TARGET_MS else "MISSED"
            print(f"{name:<18} {run_.size:>8,} {fig.p(0.5):8.1f} {fig.p(0.95):8.1f} {max(fig.server_ms):8.1f} "
                  f"{fig.sql_p50:10.1f} {fig.rows:>5}  {verdict:<6}  {fig.waiting}")
        big, base = large.figures[name], small.figures[name]
        print(f"{'':<18} {'ratio':>8} {big.p(0.5) / base.p(0.5):7.1f}x {big.p(0.95) / base.p(0.95):7.1f}x "
              f"{max(big.server_ms) / max(base.server_ms):7.1f}x {big.sql_p50 / base.sql_p50:9.1f}x")
    for run_ in (small, large):
        print(f"\n(a) first page on {run_.size:,} comments, p50 of each part of the request ({backend}):")
        print("\n".join(run_.breakdown))
    print(f"\nquery plans on the {large.size:,}-comment queue ({backend}):")
    print("\n".join(large.plans))


def write_png(path: Path, small: Run, large: Run, backend: str) -> None:
    """Grouped bars of p50 and p95 per request for both queue sizes, with the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(REQUESTS)
    width = 0.2
    figure, axes = plt.subplots(figsize=(8, 4.5))
    bars = [(run_, share, color) for run_, colors in ((small, ("#9ecae1", "#3182bd")), (large, ("#fdae6b", "#e6550d")))
            for share, color in zip((0.5, 0.95), colors)]
    for offset, (run_, share, color) in enumerate(bars):
        values = [run_.figures[name].p(share) for name in names]
        axes.bar([index + (offset - 1.5) * width for index in range(len(names))], values, width, color=color,
                 label=f"{run_.size:,} comments, p{int(share * 100)}")
    axes.axhline(TARGET_MS, color="red", linestyle="--", linewidth=1, label=f"target {TARGET_MS:.0f} ms")
    axes.set_xticks(range(len(names)), names)
    axes.set(ylabel="server time, ms", title=f"GET /queue server time ({backend})")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    """Build both queues, measure them and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=None, help="waiting comments in the large queue (default 100,000)")
    parser.add_argument("--repetitions", type=int, default=None, help="timed GETs per request (default 30)")
    parser.add_argument("--seeds", type=int, default=400, help="comments received through the service before copying")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server URL; a scratch database is made on it")
    parser.add_argument("--models-dir", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="20,000 comments and 10 repetitions")
    parser.add_argument("--seed", type=int, default=7, help="random seed for comments, times and articles")
    args = parser.parse_args()
    size = args.comments or (20_000 if args.quick else 100_000)
    repetitions = args.repetitions or (10 if args.quick else 30)
    backend = make_url(args.database_url).get_backend_name() if args.database_url else "sqlite"
    if args.database_url and backend != "postgresql":
        parser.error("--database-url takes a PostgreSQL server URL, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    models_dir = args.models_dir or default_models_dir()
    try:
        scorer = load_scorer(models_dir)
    except NoModelError:
        raise SystemExit(f"no active model in {models_dir}: run `python -m moderation train --data data --activate` "
                         "(or point MODERATION_MODELS_DIR / --models-dir at a folder with one)") from None
    except RegistryError as error:
        raise SystemExit(str(error)) from None
    print(f"model {scorer.version}; backend {backend}; queues of {BASELINE:,} and {size:,} waiting comments; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    runs = []
    for count in (BASELINE, size):
        runs.append(run(args.database_url, scorer, models_dir, count, args.seeds, repetitions, random.Random(args.seed)))
        print(f"{count:,} comments: {runs[-1].fill_report}")
    print_runs(*runs, repetitions, backend)
    print(f"\nload average (1, 5, 15 min) at the end: {', '.join(f'{load:.2f}' for load in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")
    if args.plot:
        write_png(args.plot, *runs, backend)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
