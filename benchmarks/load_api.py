"""Comment API under a steady load: new comments at a fixed rate to gunicorn on PostgreSQL, then Coral's phase.

Usage: python benchmarks/load_api.py [--rate 200] [--seconds 60] [--workers 2] [--threads 4]
                                     [--coral-rate 100] [--coral-seconds 20] [--database-url URL | --sqlite]
                                     [--models-dir DIR] [--plot latency.png] [--quick]
Serves the app as the README's Production section says (`gunicorn --workers 2 --threads 4 app:app`, plus the
`python -m moderation deliver` webhook worker and a local webhook receiver) on a scratch database
(palabre_load_* on the PostgreSQL server of --database-url, dropped at the end; or a temporary
SQLite file with --sqlite). The client is open-loop: every request leaves at its scheduled time
whatever the server does, and latency runs from that time to the end of the answer, so a server
that falls behind shows as latency rather than as a lower rate. Afterwards the stored comments
are counted against the acknowledged ones. Before and after, the same comments are scored in
this process as a measure of the machine's speed at the time; the server's CPU per answer is
also printed in units of it, to compare runs on machines (or moments) of different speed.
Needs an active model: MODERATION_MODELS_DIR (default models/) or --models-dir, signed with
MODERATION_SECRET_KEY; train one with `python -m moderation train --data data --activate`.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import random
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scratch import scratch_database  # noqa: E402

from moderation import load_scorer  # noqa: E402
from moderation.registry import NoModelError, RegistryError, default_models_dir  # noqa: E402

DATA = ROOT / "data"
DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_P99_MS = 25.0
CORAL_TIMEOUT_MS = 200.0
REFERENCE_COMMENTS = 400
ARTICLES = 50
CLIENT_NAME = "load"
COMMENTS_PATH = "/api/v1/comments"
CORAL_PATH = "/integrations/coral"
READY_SECONDS = 90
REQUEST_TIMEOUT = 30
STOP_SECONDS = 15
LOG_LINES = 30
IDLE_OR_OTHERS = ("other processes", "idle")
PROBLEMS = ("Traceback", "ERROR", "CRITICAL", "WORKER TIMEOUT", "Error")
APPLICATION_NAMES = {"gunicorn": "palabre-load-gunicorn", "deliver": "palabre-load-deliver"}  # PGAPPNAME, to tell their backends apart


@dataclass
class Outcome:
    """One request: when it was due (seconds into the phase), how late it left, how long until answered, and the answer."""

    due: float
    send_lag_ms: float
    latency_ms: float
    status: int | str
    ident: str


@dataclass
class Phase:
    """One stretch of steady load and everything measured during it."""

    name: str
    rate: float
    seconds: float
    outcomes: list[Outcome]
    elapsed: float
    cpu: dict[str, float]
    stages: dict[str, tuple[float, float, float]]

    def latencies(self) -> list[float]:
        """Every request's latency, answered or not."""
        return [outcome.latency_ms for outcome in self.outcomes]

    def statuses(self) -> Counter:
        """How many requests got each HTTP status or connection error."""
        return Counter(outcome.status for outcome in self.outcomes)

    def answered(self) -> int:
        """How many requests got an HTTP answer (any status)."""
        return sum(isinstance(outcome.status, int) for outcome in self.outcomes)

    def cpu_ms_per_answer(self, group: str) -> float:
        """CPU milliseconds a group of processes spent per answered request."""
        return self.cpu[group] / 100 * self.elapsed / max(self.answered(), 1) * 1000

    def acknowledged(self) -> set[str]:
        """The ids of the comments the server said it stored (any 2xx)."""
        return {outcome.ident for outcome in self.outcomes if ok(outcome.status)}


def ok(status: int | str) -> bool:
    """A 2xx answer."""
    return isinstance(status, int) and 200 <= status < 300


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, for judging whether other work shared the machine."""
    return f"{', '.join(f'{load:.2f}' for load in os.getloadavg())} on {os.cpu_count()} CPUs"


# --- the comments sent ---------------------------------------------------------------------------------------------

def corpus(rng: random.Random) -> tuple[list, dict]:
    """French and English comments from data/comments and their articles (title, body, url), about 50 articles."""
    comments = pd.concat([pd.read_csv(path) for path in sorted((DATA / "comments").glob("*.csv"))], ignore_index=True)
    articles = pd.concat([pd.read_csv(path) for path in sorted((DATA / "articles").glob("*.csv"))]).set_index("article_id")
    comments = comments[comments["language"].isin(["fr", "en"]) & comments["article_id"].isin(articles.index)]
    known = sorted(comments["article_id"].unique())
    chosen = set(rng.sample(known, min(ARTICLES, len(known))))
    rows = list(comments[comments["article_id"].isin(chosen)].itertuples())
    pages = {article: {"id": article, "title": articles.at[article, "title"], "body": articles.at[article, "body"],
                       "url": f"https://journal.example/articles/{article}"} for article in chosen}
    return rows, pages


def author(row) -> dict:
    """The comment's author as the site knows them."""
    return {"id": row.author, "name": row.author} if pd.notna(row.author) else {}


def api_requests(rows: list, pages: dict, count: int, prefix: str, key: str, rng: random.Random) -> list[tuple]:
    """`count` new comments for POST /api/v1/comments, each with its article's title and body, as (id, body, headers)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    made = []
    for number, row in enumerate(rng.choices(rows, k=count)):
        ident = f"{prefix}-{number}"
        body = {"id": ident, "text": row.text, "article": pages[row.article_id], "author": author(row), "language": row.language}
        made.append((ident, json.dumps(body, ensure_ascii=False).encode("utf-8"), headers))
    return made


def coral_requests(rows: list, pages: dict, count: int, prefix: str, secret: str, rng: random.Random) -> list[tuple]:
    """`count` NEW comments as Coral's external moderation phase sends them, signed with the phase's secret."""
    made = []
    for number, row in enumerate(rng.choices(rows, k=count)):
        ident = f"{prefix}-{number}"
        payload = {"action": "NEW", "tenantID": "load-tenant", "tenantDomain": "journal.example", "site": {"id": "site-1"},
                   "story": {"id": row.article_id, "url": pages[row.article_id]["url"]},
                   "author": {"id": row.author if pd.notna(row.author) else "anonymous", "role": "COMMENTER"},
                   "comment": {"id": ident, "body": row.text, "parentID": None}}
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        made.append((ident, body, {"Content-Type": "application/json", "X-Coral-Signature": signature}))
    return made


# --- the open-loop client ------------------------------------------------------------------------------------------

def drive(port: int, path: str, requests: list[tuple], rate: float, connections: int) -> tuple[list[Outcome], float]:
    """Send request i at start + i/rate from a pool of reused connections; the outcomes and the seconds it took."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    claim = threading.Lock()
    upcoming = iter(range(len(requests)))
    start = time.perf_counter() + 0.2

    def work():
        """Take the next scheduled request, wait for its time, send it; a busy pool makes it late, and that counts."""
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        while True:
            with claim:
                index = next(upcoming, None)
            if index is None:
                break
            ident, body, headers = requests[index]
            due = start + index / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            sent = time.perf_counter()
            status = send(connection, path, body, headers)
            outcomes[index] = Outcome(index / rate, (sent - due) * 1000, (time.perf_counter() - due) * 1000, status, ident)
        connection.close()

    pool = [threading.Thread(target=work, daemon=True) for _ in range(connections)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return outcomes, time.perf_counter() - start


def send(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> int | str:
    """POST and read the whole answer; its status, or the name of the connection error."""
    try:
        connection.request("POST", path, body, headers)
        answer = connection.getresponse()
        answer.read()
        return answer.status
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        return type(error).__name__


# --- CPU accounting ------------------------------------------------------------------------------------------------

def process_table() -> dict[int, tuple[int, int]]:
    """Every process: pid -> (parent pid, CPU ticks used so far)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            table[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def machine_ticks() -> tuple[int, int]:
    """CPU ticks of the whole machine since boot: (busy, total)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return sum(values) - values[3] - values[4], sum(values)


def family(table: dict[int, tuple[int, int]], pid: int) -> set[int]:
    """A process and its children: gunicorn's master and its workers."""
    return {pid} | {child for child, (parent, _) in table.items() if parent == pid}


class CpuMeter:
    """Who used the CPUs during a phase: the server's processes, this database's PostgreSQL backends, the rest."""

    def __init__(self, groups: dict[str, Callable[[dict], set[int]]]):
        self.groups = groups

    def snapshot(self) -> tuple[dict[str, dict[int, int]], tuple[int, int]]:
        """CPU ticks of each group's processes and of the whole machine, now."""
        table = process_table()
        members = {name: members_of(table) for name, members_of in self.groups.items()}
        return {name: {pid: table[pid][1] for pid in pids if pid in table} for name, pids in members.items()}, machine_ticks()

    @staticmethod
    def shares(before, after) -> dict[str, float]:
        """Percent of one CPU used by each group between two snapshots, with the rest of the machine and idle."""
        (start, (busy0, total0)), (end, (busy1, total1)) = before, after
        cpus = os.cpu_count()
        wall_ticks = (total1 - total0) / cpus
        shares = {name: 100 * sum(ticks - start[name].get(pid, 0) for pid, ticks in end[name].items()) / wall_ticks
                  for name in end}
        shares["other processes"] = max(0.0, 100 * (busy1 - busy0) / wall_ticks - sum(shares.values()))
        shares["idle"] = 100 * cpus - 100 * (busy1 - busy0) / wall_ticks
        return shares


# --- the server and its helpers ------------------------------------------------------------------------------------

def moderation_command(env: dict, *args: str) -> str:
    """Run `python -m moderation ...` as an operator would; its standard output, or exit saying why it failed."""
    result = subprocess.run([sys.executable, "-m", "moderation", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"python -m moderation {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


@contextmanager
def process(command: list[str], env: dict, log: Path):
    """A subprocess with its output in `log`, interrupted (then killed if need be) when the block ends."""
    with log.open("wb") as output:
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield child
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def tail(log: Path) -> str:
    """The last lines of a subprocess's output."""
    return "\n".join(log.read_text(errors="replace").splitlines()[-LOG_LINES:])


def log_problems(name: str, log: Path) -> str:
    """How many lines of a server log tell of a problem, with the first of them."""
    problems = [line for line in log.read_text(errors="replace").splitlines() if any(word in line for word in PROBLEMS)]
    return f"{name} log: {len(problems)} problem lines" + (f", first: {problems[0][:200]}" if problems else "")


def wait_ready(port: int, server: subprocess.Popen, log: Path) -> dict:
    """Poll /readyz until it answers 200; exit with the server's output if it dies or never gets ready."""
    deadline, answer = time.monotonic() + READY_SECONDS, "no answer"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with code {server.returncode}:\n{tail(log)}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            answer = response.read().decode()
            if response.status == 200:
                return json.loads(answer)
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise SystemExit(f"/readyz did not answer 200 within {READY_SECONDS} s (last answer: {answer}):\n{tail(log)}")


def serve_webhooks(port: int, received) -> None:
    """A stand-in for the site's webhook endpoint: answers 204 to every POST and counts them."""

    class Receiver(BaseHTTPRequestHandler):
        """Reads the event and says thanks."""

        def do_POST(self):
            """Count one delivered event."""
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with received.get_lock():
                received.value += 1
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            """Quiet: a line per event would drown the report."""

    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()


@contextmanager
def webhook_receiver(port: int):
    """The receiver in its own process, so that its threads never hold up the load client's; yields its count and pid."""
    received = multiprocessing.Value("i", 0)
    receiver = multiprocessing.Process(target=serve_webhooks, args=(port, received), daemon=True)
    receiver.start()
    try:
        yield received, receiver.pid
    finally:
        receiver.terminate()
        receiver.join()


def server_environment(url: str, models_dir: Path, coral_secret: str) -> dict:
    """The environment of every server process: this one's (MODERATION_SECRET_KEY included) plus the database, models and Coral
    secret, and webhooks allowed to the receiver on 127.0.0.1."""
    return dict(os.environ, MODERATION_DATABASE_URL=url, MODERATION_MODELS_DIR=str(models_dir.resolve()),
                MODERATION_CORAL_SECRET=coral_secret, MODERATION_WEBHOOK_ALLOW_PRIVATE="1")


def gunicorn_command(port: int, workers: int, threads: int | None) -> list[str]:
    """The README's production command, on a local port."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    if not gunicorn.exists():
        raise SystemExit(f"gunicorn is not installed beside {sys.executable}: pip install -r requirements.txt")
    threading_ = ["--threads", str(threads)] if threads else []
    return [str(gunicorn), "--workers", str(workers), *threading_, "--bind", f"127.0.0.1:{port}", "app:app"]


# --- the database afterwards ---------------------------------------------------------------------------------------

def stored(url: str) -> dict:
    """What the database holds: comment ids, comments per status, webhook deliveries made, pending and given up."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            ids = set(connection.scalars(text("SELECT external_id FROM comments")))
            count = connection.scalar(text("SELECT count(*) FROM comments"))
            statuses = dict(connection.execute(text("SELECT status, count(*) FROM comments GROUP BY status")).all())
            deliveries = connection.execute(text(
                "SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL), "
                "count(*) FILTER (WHERE delivered_at IS NULL AND given_up_at IS NULL), "
                "count(*) FILTER (WHERE given_up_at IS NOT NULL) FROM deliveries")).one()
    finally:
        engine.dispose()
    return {"ids": ids, "count": count, "statuses": statuses, "deliveries": tuple(deliveries)}


@contextmanager
def backend_pids(server_url: str, name: str):
    """A function listing the PostgreSQL backends serving the scratch database for one program (by application_name)."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT", pool_size=1)

    def pids(program: str) -> set[int]:
        """The process ids of the backends the program has open right now."""
        with admin.connect() as connection:
            return set(connection.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = :name AND application_name = :program"),
                                          {"name": name, "program": APPLICATION_NAMES[program]}))

    try:
        yield pids
    finally:
        admin.dispose()


# --- running and reporting -----------------------------------------------------------------------------------------

def stage_totals(port: int) -> dict[str, tuple[float, float, float]]:
    """What the server's /metrics counts for each stage of answering: (passes, wall seconds, CPU seconds)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("GET", "/metrics")
        exposition = connection.getresponse().read().decode()
    finally:
        connection.close()
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for metric in text_string_to_metric_families(exposition):
        for sample in metric.samples:
            slot = {"palabre_stage_seconds_count": 0, "palabre_stage_seconds_sum": 1,
                    "palabre_stage_cpu_seconds_total": 2}.get(sample.name)
            if slot is not None:
                totals[sample.labels["stage"]][slot] = sample.value
    return {stage: tuple(values) for stage, values in totals.items()}


def run_phase(name: str, port: int, path: str, requests: list[tuple], rate: float, connections: int, meter: CpuMeter) -> Phase:
    """One phase of steady load, with the CPU use of everything involved and the server's own timings of each stage."""
    stages_before, before = stage_totals(port), meter.snapshot()
    outcomes, elapsed = drive(port, path, requests, rate, connections)
    cpu = CpuMeter.shares(before, meter.snapshot())
    after = stage_totals(port)
    stages = {stage: tuple(now - was for now, was in zip(values, stages_before.get(stage, (0.0, 0.0, 0.0))))
              for stage, values in after.items()}
    return Phase(name, rate, len(requests) / rate, outcomes, elapsed, cpu, stages)


def stage_lines(phase: Phase) -> list[str]:
    """Where an answer's time went, from the server's own timings: per answered request, each stage's passes, mean
    wall time per pass and CPU time, busiest first (SQL stages count the driver's round trip only)."""
    answered = max(phase.answered(), 1)
    rows = sorted(((stage, count, seconds, cpu) for stage, (count, seconds, cpu) in phase.stages.items()
                   if count and not stage.startswith("answer pages")), key=lambda row: -row[3])
    return ["  where the time went, per answer (the server's own timings, /metrics): stage, passes, ms per pass, CPU ms",
            *(f"    {stage:<28} {count / answered:5.2f} {1000 * seconds / count:8.3f} {1000 * cpu / answered:8.3f}"
              for stage, count, seconds, cpu in rows)]


def phase_lines(phase: Phase, target_ms: float | None, target_text: str) -> list[str]:
    """Rate, latency percentiles, answers by status, client lateness and CPU use of one phase, with its target."""
    latencies, statuses = phase.latencies(), phase.statuses()
    failures = {status: count for status, count in statuses.items() if not ok(status)}
    p99 = percentile(latencies, 0.99)
    verdict = "not judged" if target_ms is None else "OK" if p99 < target_ms and not failures else "MISSED"
    lags = [outcome.send_lag_ms for outcome in phase.outcomes]
    answered = phase.answered()
    return [
        f"{phase.name}: {len(phase.outcomes)} requests offered at {phase.rate:g}/s for {phase.seconds:g} s; "
        f"{answered} answered in {phase.elapsed:.1f} s = {answered / phase.elapsed:.1f} answers/s",
        f"  latency ms from the scheduled send time: p50 {percentile(latencies, 0.5):.1f}  p90 {percentile(latencies, 0.9):.1f}  "
        f"p99 {p99:.1f}  max {max(latencies):.1f}",
        f"  answers: {', '.join(f'{status}: {count}' for status, count in sorted(statuses.items(), key=str))}; "
        f"non-2xx and connection errors: {sum(failures.values())}",
        f"  target: {target_text} -> {verdict}",
        f"  client lateness (send time after schedule): p50 {percentile(lags, 0.5):.1f} ms, p99 {percentile(lags, 0.99):.1f} ms "
        "(large values mean every connection was busy waiting on the server)",
        f"  CPU, % of one core (the machine has {os.cpu_count()}): "
        + ", ".join(f"{name} {share:.0f}%" for name, share in phase.cpu.items()),
        "  CPU per answer, ms: " + ", ".join(f"{name} {phase.cpu_ms_per_answer(name):.1f}"
                                             for name in phase.cpu if name not in IDLE_OR_OTHERS),
    ]


def loss_lines(phases: list[Phase], database: dict, prefixes: dict[str, str]) -> list[str]:
    """Stored comments against acknowledged ones, phase by phase; a lost comment is shouted."""
    acknowledged = sum(len(phase.acknowledged()) for phase in phases)
    lines = [f"stored comments: SELECT count(*) FROM comments = {database['count']}; acknowledged (2xx) = {acknowledged}"]
    for phase in phases:
        prefix = prefixes[phase.name]
        kept = {ident for ident in database["ids"] if ident.startswith(prefix)}
        lost, unacknowledged = phase.acknowledged() - kept, kept - phase.acknowledged()
        lines.append(f"  {phase.name}: {len(phase.acknowledged())} acknowledged, {len(kept)} stored, {len(lost)} lost, "
                     f"{len(unacknowledged)} stored without a 2xx (the client gave up or the connection broke)")
        if lost:
            lines.append(f"  !!! {len(lost)} COMMENTS ACKNOWLEDGED BUT NOT STORED, e.g. {sorted(lost)[:5]} !!!")
    if database["count"] != acknowledged:
        lines.append(f"  !!! THE COUNT DIFFERS FROM THE ACKNOWLEDGED COMMENTS BY {database['count'] - acknowledged:+d} !!!")
    statuses = ", ".join(f"{status} {count}" for status, count in sorted(database["statuses"].items()))
    return [*lines, f"  comments by status: {statuses}"]


def webhook_line(label: str, database: dict, received: int) -> str:
    """Webhook deliveries made, pending and given up, and what the receiver got."""
    made, pending, given_up = database["deliveries"]
    return f"webhooks {label}: {made} delivered, {pending} pending, {given_up} given up; the receiver got {received}"


def write_png(path: Path, phase: Phase) -> None:
    """p50 and p99 latency for each second of the comment phase, with the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    per_second = defaultdict(list)
    for outcome in phase.outcomes:
        per_second[int(outcome.due)].append(outcome.latency_ms)
    seconds = sorted(per_second)
    figure, axes = plt.subplots(figsize=(8, 4))
    for share, color in ((0.5, "#3182bd"), (0.99, "#e6550d")):
        axes.plot(seconds, [percentile(per_second[second], share) for second in seconds], color=color,
                  label=f"p{int(share * 100)}")
    axes.axhline(TARGET_P99_MS, color="red", linestyle="--", linewidth=1, label=f"p99 target {TARGET_P99_MS:.0f} ms")
    axes.set(xlabel="seconds into the phase (by scheduled send time)", ylabel="latency, ms", yscale="log",
             title=f"POST {COMMENTS_PATH} at {phase.rate:g} requests/s")
    axes.yaxis.set_major_formatter(ScalarFormatter())
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def parse_arguments() -> argparse.Namespace:
    """The command line; --quick turns the defaults into a smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=None, help="comments per second (default 200; 50 with --quick)")
    parser.add_argument("--seconds", type=float, default=None, help="length of the comment phase (default 60; 10 with --quick)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds of load before measuring (default 5; 2 with --quick)")
    parser.add_argument("--coral-rate", type=float, default=None, help="Coral requests per second (default 100; 50 with --quick)")
    parser.add_argument("--coral-seconds", type=float, default=None, help="length of the Coral phase (default 20; 5 with --quick)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn --workers (default 2, as the README says)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn --threads (default 4, as the README says; 0: sync workers)")
    parser.add_argument("--connections", type=int, default=48, help="client connections sending in parallel")
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server on which a scratch database is made")
    parser.add_argument("--sqlite", action="store_true", help="a temporary SQLite file instead of PostgreSQL, for comparison")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: MODERATION_MODELS_DIR, else models/")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of p50/p99 latency per second of the comment phase")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 50 requests/s for 10 s")
    parser.add_argument("--seed", type=int, default=7, help="random seed for the comments sent")
    args = parser.parse_args()
    quick = args.quick
    for name, full, smoke in (("rate", 200, 50), ("seconds", 60, 10), ("warmup", 5, 2), ("coral_rate", 100, 50),
                              ("coral_seconds", 20, 5)):
        if getattr(args, name) is None:
            setattr(args, name, smoke if quick else full)
    if not args.sqlite and make_url(args.database_url).get_backend_name() != "postgresql":
        parser.error("--database-url takes a PostgreSQL server URL, e.g. " + DEFAULT_SERVER)
    return args


def active_scorer(models_dir: Path):
    """The active model's scorer, or exit saying how to train one."""
    try:
        return load_scorer(models_dir)
    except NoModelError:
        raise SystemExit(f"no active model in {models_dir}: run `python -m moderation train --data data --activate` "
                         "(or point MODERATION_MODELS_DIR / --models-dir at a folder with one)") from None
    except RegistryError as error:
        raise SystemExit(f"{error} (is MODERATION_SECRET_KEY the key the model was signed with?)") from None


def reference_ms(scorer, rows: list, pages: dict) -> float:
    """CPU ms per comment of scoring REFERENCE_COMMENTS comments in this process, one thread, nothing else running:
    the machine's speed right now, against which the server's CPU per answer can be compared across runs and machines."""
    items = [(row.text, {"title": pages[row.article_id]["title"], "body": pages[row.article_id]["body"]})
             for row in rows[:REFERENCE_COMMENTS]]
    for comment_text, article in items[:50]:
        scorer.score(comment_text, article)
    started = time.process_time()
    for comment_text, article in items:
        scorer.score(comment_text, article)
    return 1000 * (time.process_time() - started) / len(items)


def report(args: argparse.Namespace, phases: list[Phase], snapshots: list[tuple], prefixes: dict[str, str]) -> None:
    """Every phase's figures and target, webhooks after each, then the stored-comment check."""
    targets = {
        "warm-up": (None, "none: the workers load the model on their first requests"),
        "comments": (TARGET_P99_MS, f"p99 under {TARGET_P99_MS:.0f} ms at 200 req/s with no errors "
                                    f"(this run: {args.rate:g} req/s)"),
        "coral": (CORAL_TIMEOUT_MS / 4, f"p99 far inside Coral's {CORAL_TIMEOUT_MS:.0f} ms timeout "
                                        f"(judged against {CORAL_TIMEOUT_MS / 4:.0f} ms), no errors"),
    }
    for phase, (label, database, received) in zip(phases, snapshots):
        print()
        print("\n".join(phase_lines(phase, *targets[phase.name])))
        print("\n".join(stage_lines(phase)))
        print(f"  {webhook_line(f'after the {label} phase', database, received)}")
    print()
    print("\n".join(loss_lines(phases, snapshots[-1][1], prefixes)))


@dataclass
class Rig:
    """The running server side: where to send, with which key and Coral secret, and what to read afterwards."""

    url: str
    port: int
    key: str
    coral_secret: str
    received: object
    meter: CpuMeter
    logs: Path


def set_up(stack: ExitStack, args: argparse.Namespace, models_dir: Path, version: str, articles: int) -> Rig:
    """Scratch database, webhook receiver, migrations, API client, gunicorn and the webhook worker, ready to serve."""
    url, name = stack.enter_context(scratch_database(None if args.sqlite else args.database_url, "palabre-load"))
    logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="palabre-load-logs-")))
    hook_port, port = free_port(), free_port()
    received, receiver_pid = stack.enter_context(webhook_receiver(hook_port))
    env = server_environment(url, models_dir, secrets.token_urlsafe(24))
    moderation_command(env, "init-db")
    key = moderation_command(env, "create-client", CLIENT_NAME, "--webhook-url",
                             f"http://127.0.0.1:{hook_port}/hooks").strip().splitlines()[-1]
    server = stack.enter_context(process(gunicorn_command(port, args.workers, args.threads),
                                         dict(env, PGAPPNAME=APPLICATION_NAMES["gunicorn"]), logs / "gunicorn.log"))
    deliverer = stack.enter_context(process([sys.executable, "-m", "moderation", "deliver"],
                                            dict(env, PGAPPNAME=APPLICATION_NAMES["deliver"]), logs / "deliver.log"))
    ready = wait_ready(port, server, logs / "gunicorn.log")
    print(f"model {version} (ready: {ready['model_version']}); {'sqlite' if args.sqlite else 'postgresql'}; "
          f"gunicorn --workers {args.workers}{f' --threads {args.threads}' if args.threads else ''}; "
          f"python -m moderation deliver; {args.connections} client connections; {articles} articles")
    groups = {"gunicorn": lambda table: family(table, server.pid), "deliver": lambda table: {deliverer.pid},
              "load client": lambda table: {os.getpid()}, "webhook receiver": lambda table: {receiver_pid}}
    if not args.sqlite:
        backends = stack.enter_context(backend_pids(args.database_url, name))
        groups["postgres for gunicorn"] = lambda table: backends("gunicorn")
        groups["postgres for deliver"] = lambda table: backends("deliver")
    return Rig(url, port, key, env["MODERATION_CORAL_SECRET"], received, CpuMeter(groups), logs)


def planned_phases(args: argparse.Namespace, rig: Rig, rows: list, pages: dict, prefixes: dict[str, str]) -> list[tuple]:
    """(name, path, requests, rate) of the warm-up, the comment phase and the Coral phase, bodies built beforehand."""
    rng = random.Random(args.seed)
    return [
        ("warm-up", COMMENTS_PATH, api_requests(rows, pages, int(args.rate * args.warmup), prefixes["warm-up"], rig.key, rng),
         args.rate),
        ("comments", COMMENTS_PATH, api_requests(rows, pages, int(args.rate * args.seconds), prefixes["comments"], rig.key, rng),
         args.rate),
        ("coral", CORAL_PATH, coral_requests(rows, pages, int(args.coral_rate * args.coral_seconds), prefixes["coral"],
                                             rig.coral_secret, rng), args.coral_rate),
    ]


def main() -> None:
    """Set up the server as in production, run the phases, then check the database and print everything."""
    args = parse_arguments()
    models_dir = args.models_dir or default_models_dir()
    scorer = active_scorer(models_dir)
    version = scorer.version
    rows, pages = corpus(random.Random(args.seed))
    print(f"load average at start: {load_average()}")
    reference = [reference_ms(scorer, rows, pages)]
    print(f"machine reference: in-process scoring takes {reference[0]:.3f} ms of CPU per comment")
    run_id = secrets.token_hex(3)
    prefixes = {"warm-up": f"load-{run_id}-w", "comments": f"load-{run_id}-c", "coral": f"coral-{run_id}"}
    with ExitStack() as stack:
        rig = set_up(stack, args, models_dir, version, len(pages))
        phases, snapshots = [], []
        for name, path, requests, rate in planned_phases(args, rig, rows, pages, prefixes):
            phases.append(run_phase(name, rig.port, path, requests, rate, args.connections, rig.meter))
            snapshots.append((name, stored(rig.url), rig.received.value))
        report(args, phases, snapshots, prefixes)
        client_cpu = resource.getrusage(resource.RUSAGE_SELF)
        print(f"load client: {client_cpu.ru_utime + client_cpu.ru_stime:.1f} s of CPU in all "
              f"(it shares the {os.cpu_count()} CPUs with the server)")
        print(f"{log_problems('gunicorn', rig.logs / 'gunicorn.log')}; {log_problems('deliver', rig.logs / 'deliver.log')}")
    print(f"\nload average at the end: {load_average()}")
    reference.append(reference_ms(scorer, rows, pages))
    unit = statistics.mean(reference)
    print(f"machine reference at the end: {reference[1]:.3f} ms (start {reference[0]:.3f}); gunicorn CPU per answer in units "
          "of it, comparable across machines: " + ", ".join(
              f"{phase.name} {phase.cpu_ms_per_answer('gunicorn') / unit:.2f}" for phase in phases))
    if args.plot:
        write_png(args.plot, phases[1])
        print(f"wrote {args.plot}")
    if any(phase.acknowledged() - snapshots[-1][1]["ids"] for phase in phases):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
