"""Faults a newsroom's server meets, made on purpose while comments arrive, and what Palabre did about each one.

Usage: python benchmarks/faults.py [--rate 50] [--database-url URL] [--models-dir DIR]
Serves the app as in production (gunicorn 2 x 4 and the `deliver` webhook worker, on a scratch
PostgreSQL database reached through a TCP relay that can be cut, with a webhook receiver that can
be stopped), on a copy of the active version of --models-dir (the folder given is never changed),
and runs, one after the other, printing what it checked and OK or FAILED for each:
  1. database restart: the relay cut for 3 s in a 10 s stream of comments; then the refused ones sent again;
  2. app process killed: a gunicorn worker SIGKILLed mid-stream; then the unanswered ones sent again;
  3. webhook receiver down: stopped for 8 s while decisions are made; every event delivered after, in order;
  4. corrupted model file: the active version's model file overwritten on disk; the running server
     keeps serving, `models activate` refuses it, and a new process reports why in /readyz;
  5. full disk while a model is written: `train` with its file size limited to 256 KiB; the
     registry (active version, versions listed) unchanged.
After 1 and 2, every acknowledged comment must be stored exactly once and whole (its revision and score).
Needs MODERATION_SECRET_KEY (the registry's signing key) and a PostgreSQL server.
"""

import argparse
import http.client
import json
import os
import random
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_bulk import machine  # noqa: E402
from load_api import (  # noqa: E402
    DEFAULT_SERVER,
    api_requests,
    corpus,
    drive,
    free_port,
    gunicorn_command,
    moderation_command,
    ok,
    process,
    wait_ready,
)
from relay import Relay  # noqa: E402
from scratch import scratch_database  # noqa: E402

from moderation.auth.models import User  # noqa: E402
from moderation.comments.models import PUBLISHED, REJECTED, Comment  # noqa: E402
from moderation.database import Database  # noqa: E402
from moderation.registry import MODEL_FILE, Registry, default_models_dir  # noqa: E402
from moderation.service import decide  # noqa: E402

CONNECTIONS = 16
RESULTS: list[tuple[str, bool]] = []


def check(name: str, passed: bool, detail: str) -> None:
    """Print one check and remember it for the summary."""
    RESULTS.append((name, passed))
    print(f"  {'OK    ' if passed else 'FAILED'} {name}: {detail}", flush=True)


class Receiver:
    """The site's webhook endpoint, in this process: records (comment id, status) per event; can be stopped and started."""

    def __init__(self):
        self.port = free_port()
        self.events: list[dict] = []
        self.server = None
        self.start()

    def start(self) -> None:
        events = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                events.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def store_check(url: str, acknowledged: set[str], label: str) -> None:
    """Every acknowledged comment stored once and whole; nothing stored that was never sent."""
    engine = create_engine(url)
    with engine.connect() as connection:
        counts = dict(connection.execute(text("SELECT external_id, count(*) FROM comments WHERE external_id LIKE :p "
                                              "GROUP BY external_id"), {"p": f"{label}-%"}).all())
        partial = connection.scalar(text(
            "SELECT count(*) FROM comments c WHERE c.external_id LIKE :p AND NOT EXISTS (SELECT 1 FROM revisions r "
            "JOIN scores s ON s.revision_id = r.id WHERE r.comment_id = c.id AND r.number = c.revision)"), {"p": f"{label}-%"})
    engine.dispose()
    check(f"{label}: acknowledged comments stored", acknowledged <= set(counts),
          f"{len(acknowledged)} acknowledged, {len(acknowledged - set(counts))} of them missing")
    check(f"{label}: each stored once and whole", all(n == 1 for n in counts.values()) and partial == 0,
          f"{len(counts)} stored, {sum(n > 1 for n in counts.values())} twice, {partial} without their revision and score")


def stream(port: int, requests: list[tuple], rate: float, fault_at: float, fault) -> list:
    """Send the requests at `rate`, making the fault `fault_at` seconds in; the outcomes."""
    timer = threading.Timer(fault_at, fault)
    timer.start()
    outcomes, _ = drive(port, "/api/v1/comments", requests, rate, CONNECTIONS)
    timer.join()
    return outcomes


def send_again(port: int, requests: list[tuple], outcomes: list) -> Counter:
    """Send once more, one by one, each request that got no 2xx, as a client that honours Retry-After does."""
    by_id = {ident: (ident, body, headers) for ident, body, headers in requests}
    again = [by_id[outcome.ident] for outcome in outcomes if not ok(outcome.status)]
    time.sleep(5)
    results, _ = drive(port, "/api/v1/comments", again, 50, 1) if again else ([], 0)
    return Counter(result.status for result in results)


def database_restart(rig, requests: list[tuple], rate: float) -> None:
    """1. The relay to PostgreSQL cut for 3 s mid-stream."""
    print("1. database restart (relay cut 3 s into a 10 s stream, restored 3 s later)", flush=True)

    def fault():
        rig["relay"].cut()
        threading.Timer(3.0, rig["relay"].restore).start()

    outcomes = stream(rig["port"], requests, rate, 3.0, fault)
    statuses = Counter(outcome.status for outcome in outcomes)
    print(f"  answers: {dict(sorted(statuses.items(), key=str))}", flush=True)
    check("database restart: no 500 and no dropped connection", set(statuses) <= {201, 503},
          f"{sum(n for s, n in statuses.items() if s not in (201, 503))} other answers")
    check("database restart: refusals were 503", statuses[503] > 0, f"{statuses[503]} answered 503 while the database was away")
    again = send_again(rig["port"], requests, outcomes)
    check("database restart: service resumed by itself", set(again) <= {200, 201}, f"sent again: {dict(again)}")
    store_check(rig["url"], {ident for ident, _, _ in requests}, "restart")


def worker_killed(rig, requests: list[tuple], rate: float) -> None:
    """2. A gunicorn worker SIGKILLed mid-stream."""
    print("2. app process killed (a gunicorn worker SIGKILLed 3 s into a 10 s stream)", flush=True)
    workers = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(rig["gunicorn"].pid)], capture_output=True,
                                                  text=True).stdout.split()]
    outcomes = stream(rig["port"], requests, rate, 3.0, lambda: os.kill(workers[0], signal.SIGKILL))
    statuses = Counter(outcome.status for outcome in outcomes)
    print(f"  answers: {dict(sorted(statuses.items(), key=str))}", flush=True)
    check("worker killed: no 500", 500 not in statuses, f"{statuses[500]} answered 500")
    again = send_again(rig["port"], requests, outcomes)
    check("worker killed: unanswered comments taken when sent again", set(again) <= {200, 201}, f"sent again: {dict(again)}")
    store_check(rig["url"], {ident for ident, _, _ in requests}, "killed")


def receiver_down(rig, requests: list[tuple], rate: float) -> None:
    """3. The webhook receiver stopped for 8 s while comments are decided."""
    print("3. webhook receiver down for 8 s", flush=True)
    rig["receiver"].stop()
    before = len(rig["receiver"].events)
    outcomes, _ = drive(rig["port"], "/api/v1/comments", requests, rate, CONNECTIONS)
    decided = moderate(rig["url"], "down-")
    time.sleep(max(0.0, 8 - len(requests) / rate))
    rig["receiver"].start()
    engine = create_engine(rig["url"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            waiting = connection.scalar(text("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL AND given_up_at IS NULL"))
        if waiting == 0:
            break
        time.sleep(1)
    with engine.connect() as connection:
        made = connection.scalar(text("SELECT count(*) FROM deliveries d JOIN comments c ON c.id = d.comment_id "
                                      "WHERE c.external_id LIKE 'down-%'"))
    engine.dispose()
    events = [event for event in rig["receiver"].events[before:] if event["data"]["comment_id"].startswith("down-")]
    ids = [event["id"] for event in events]
    check("receiver down: every event delivered once it was back", len(set(ids)) == made and made > 0,
          f"{made} events made, {len(set(ids))} delivered, {len(ids) - len(set(ids))} twice, {waiting} still waiting")
    per_comment = defaultdict(list)
    for event in events:
        per_comment[event["data"]["comment_id"]].append(event["created_at"])
    check("receiver down: each comment's events in order", all(times == sorted(times) for times in per_comment.values()),
          f"{len(per_comment)} comments, {sum(len(t) > 1 for t in per_comment.values())} with more than one event "
          f"({decided} decided by a moderator after the model); "
          f"answers {dict(Counter(outcome.status for outcome in outcomes))}")


def moderate(url: str, prefix: str) -> int:
    """A moderator reverses or settles every comment of `prefix`, through the service: a second event for each."""
    database = Database(url)
    with database.session() as session:
        moderator = User(username="faults-moderator", role="moderator", active=False)
        moderator.set_password(secrets.token_urlsafe(24))
        session.add(moderator)
        session.commit()
        comments = session.execute(select(Comment.id, Comment.status).where(Comment.external_id.like(f"{prefix}%"))).all()
        for comment_id, status in comments:
            decide(session, comment_id, moderator, *((REJECTED, "other") if status == PUBLISHED else (PUBLISHED,)))
    database.engine.dispose()
    return len(comments)


def corrupted_model(rig, env: dict) -> None:
    """4. The active version's model file overwritten on disk."""
    print("4. corrupted model file (the active version's model file overwritten)", flush=True)
    registry = Registry(rig["models"])
    version = registry.active()
    model_file = rig["models"] / version / MODEL_FILE
    original = model_file.read_bytes()
    model_file.write_bytes(original[:1000] + bytes(len(original) - 1000))
    try:
        connection = http.client.HTTPConnection("127.0.0.1", rig["port"], timeout=30)
        connection.request("POST", "/api/v1/comments", json.dumps({"id": "corrupt-1", "text": "Merci pour l'article",
                                                                   "article": {"id": "a-corrupt", "title": "Titre"}}),
                           {"Authorization": f"Bearer {rig['key']}", "Content-Type": "application/json"})
        answer = connection.getresponse()
        body = json.loads(answer.read())
        connection.close()
        check("corrupted model: the running server keeps serving its loaded model", answer.status == 201 and
              body.get("model_version") == version, f"{answer.status}, scored by {body.get('model_version')}")
        activate = subprocess.run([sys.executable, "-m", "moderation", "models", "activate", version], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
        check("corrupted model: models activate refuses it", activate.returncode != 0,
              f"exit {activate.returncode}: {activate.stderr.strip()[:160]}")
        port = free_port()
        with process(gunicorn_command(port, 1, 1), env, rig["logs"] / "fresh.log") as fresh:
            deadline, answer = time.monotonic() + 60, None
            while time.monotonic() < deadline and fresh.poll() is None:
                try:
                    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    probe.request("GET", "/readyz")
                    response = probe.getresponse()
                    answer = (response.status, json.loads(response.read()))
                    probe.close()
                    if "model" in answer[1].get("problems", {}):
                        break
                except OSError:
                    pass
                time.sleep(0.5)
        reason = (answer or (None, {}))[1].get("problems", {}).get("model", "")
        check("corrupted model: a new process refuses it and /readyz says why",
              answer is not None and answer[0] == 503 and "changed after training" in reason, f"{answer and answer[0]}: {reason[:160]}")
    finally:
        model_file.write_bytes(original)


def full_disk(rig, env: dict) -> None:
    """5. `train` writing a model with its file size limited: the write fails half-way."""
    print("5. full disk while a model is written (train with files limited to 256 KiB)", flush=True)
    registry = Registry(rig["models"])
    before = (registry.active(), [entry["version"] for entry in registry.versions()])
    data = rig["logs"] / "small-data"  # the project's own rows, without the public corpora: a minute of training
    shutil.copytree(ROOT / "data", data, ignore=shutil.ignore_patterns("public"))

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    train = subprocess.run([sys.executable, "-m", "moderation", "train", "--data", str(data), "--activate"], cwd=ROOT, env=env,
                           capture_output=True, text=True, preexec_fn=limited)
    after = (registry.active(), [entry["version"] for entry in registry.versions()])
    leftovers = [path.name for path in rig["models"].iterdir() if path.name.startswith(".incomplete")]
    check("full disk: train fails and says so", train.returncode != 0, f"exit {train.returncode}: "
          f"{(train.stderr.strip().splitlines() or [''])[-1][:160]}")
    check("full disk: registry unchanged", after == before and not leftovers,
          f"active {after[0]}, {len(after[1])} versions (before {len(before[1])}), {len(leftovers)} half-written folders left")


def main() -> None:
    """Set up the production rig, run each fault in turn, print each check and a summary; exit 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="comments per second during faults 1 and 2")
    parser.add_argument("--database-url", default=DEFAULT_SERVER, help="PostgreSQL server on which a scratch database is made")
    parser.add_argument("--models-dir", type=Path, default=None, help="default: MODERATION_MODELS_DIR, else models/")
    args = parser.parse_args()
    source = Registry(args.models_dir or default_models_dir())
    if source.active() is None:
        raise SystemExit(f"no active model in {source.root}: train one with python -m moderation train --data data --activate")
    print(f"{machine()}; model {source.active()}; {args.rate:g} comments/s", flush=True)
    rng = random.Random(3)
    rows, pages = corpus(rng)
    with ExitStack() as stack:
        url, _ = stack.enter_context(scratch_database(args.database_url, "palabre-faults"))
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="palabre-faults-")))
        models = logs / "models"
        models.mkdir()
        shutil.copytree(source.root / source.active(), models / source.active())
        Registry(models).activate(source.active())
        server = make_url(url)
        relay = Relay((server.host or "127.0.0.1", server.port or 5432))
        relayed = server.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        env = dict(os.environ, MODERATION_DATABASE_URL=relayed, MODERATION_MODELS_DIR=str(models),
                   MODERATION_WEBHOOK_ALLOW_PRIVATE="1")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        receiver = Receiver()
        moderation_command(env, "init-db")
        key = moderation_command(env, "create-client", "site", "--webhook-url",
                                 f"http://127.0.0.1:{receiver.port}/hooks").strip().splitlines()[-1]
        port = free_port()
        gunicorn = stack.enter_context(process(gunicorn_command(port, 2, 4), env, logs / "gunicorn.log"))
        stack.enter_context(process([sys.executable, "-m", "moderation", "deliver"], env, logs / "deliver.log"))
        wait_ready(port, gunicorn, logs / "gunicorn.log")
        rig = {"url": url, "port": port, "relay": relay, "gunicorn": gunicorn, "receiver": receiver, "key": key,
               "models": models, "logs": logs}
        count = int(args.rate * 10)
        database_restart(rig, api_requests(rows, pages, count, "restart", key, rng), args.rate)
        worker_killed(rig, api_requests(rows, pages, count, "killed", key, rng), args.rate)
        receiver_down(rig, api_requests(rows, pages, 100, "down", key, rng), args.rate)
        corrupted_model(rig, env)
        full_disk(rig, env)
    failed = [name for name, passed in RESULTS if not passed]
    print(f"\n{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
