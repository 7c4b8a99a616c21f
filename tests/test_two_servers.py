"""Two app servers on one PostgreSQL, as a site that outgrew one machine runs them: what must hold across servers does.

Two `gunicorn app:app` servers, two `deliver` webhook workers and one webhook receiver, all on the
test's PostgreSQL database and one models folder: the same comment sent to both is stored once,
two moderators deciding one comment on different servers make one decision, every webhook event
is delivered exactly once, and an activation reaches both servers.
"""

import http.client
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import create_engine, text

from moderation.api.clients import create_client
from moderation.database import Database

from .conftest import PASSWORD, ROOT, TEST_KEY, add_user, gunicorn_serving, run_cli
from .test_hot_reload import FIRST, SECOND, two_versions  # noqa: F401  (the fixture: a registry of two versions)
from .test_timings import ARTICLE

INSULT = "Ferme ta gueule espèce de sale con, tu ne comprends rien"
SWITCH_SECONDS = 10
DELIVERED_WITHIN_SECONDS = 30


class Receiver:
    """A site's webhook endpoint: records the id of every event it is sent."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["id"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def post_comment(base: str, key: str, comment_id: str, text_: str) -> tuple[int, dict]:
    """POST one comment through the API on a new connection."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/api/v1/comments", json.dumps({"id": comment_id, "text": text_, "article": ARTICLE}),
                       {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.status, json.loads(response.read())
    connection.close()
    return answer


class Browser:
    """A moderator's browser on one server: cookies, CSRF tokens and the queue script's JSON decisions."""

    def __init__(self, base: str, username: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.post("/login", {"username": username, "password": PASSWORD}, token_from="/login")

    def token(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as page:
            return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page.read().decode()).group(1)

    def post(self, path: str, form: dict, token_from: str = "/queue", accept: str = "text/html") -> tuple[int, bytes]:
        data = urllib.parse.urlencode({"csrf_token": self.token(token_from), **form}).encode()
        request = urllib.request.Request(self.base + path, data=data, headers={"Accept": accept})
        try:
            with self.opener.open(request, timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


def versions_answering(base: str, key: str, label: str) -> set[str]:
    """The model versions that scored a round of comments sent to one server."""
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: post_comment(base, key, f"{label}-{n}", "Bravo aux Éléphants !"), range(8)))
    assert all(status == 201 for status, _ in answers), answers
    return {answer["model_version"] for _, answer in answers}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_comments_decisions_webhooks_and_the_model_switch_hold_across_two_servers(two_versions, database_url,  # noqa: F811
                                                                                   password_hash, tmp_path):
    receiver = Receiver()
    database = Database(database_url)
    with database.session() as session:
        _, key = create_client(session, "site", receiver.url)
        moderators = [add_user(session, name, "moderator", password_hash).username for name in ("mona", "ali")]
    database.engine.dispose()
    env = dict(os.environ, MODERATION_DATABASE_URL=database_url, MODERATION_MODELS_DIR=str(two_versions),
               MODERATION_SECRET_KEY=TEST_KEY, TMPDIR=str(tmp_path))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with ExitStack() as stack:
        servers = [stack.enter_context(gunicorn_serving(env, tmp_path / f"gunicorn-{n}.log", workers=1, threads=4)) for n in (1, 2)]
        workers = [subprocess.Popen([sys.executable, "-m", "moderation", "deliver"], cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in (1, 2)]
        stack.callback(lambda: [worker.terminate() or worker.wait(30) for worker in workers])

        # The same comments sent to both servers at once: each stored once, both told the same.
        ids = [f"twice-{n}" for n in range(12)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda job: post_comment(job[0], key, job[1], INSULT if job[1].endswith(("0", "5")) else
                                                             "Bravo aux Éléphants, quelle qualification !"),
                                    [(server, name) for name in ids for server in servers]))
        for name, (first, second) in zip(ids, zip(answers[::2], answers[1::2])):
            assert sorted([first[0], second[0]]) == [200, 201], (name, first, second)
            assert first[1]["status"] == second[1]["status"] and first[1]["scores"] == second[1]["scores"]

        # Two moderators, one per server, decide the same held comment at the same moment: one decision.
        held = [answer for status, answer in answers if status == 201 and answer["status"] == "pending"]
        assert held, "the insults are held for review"
        engine = create_engine(database_url)
        with engine.connect() as connection:
            comment_id = connection.execute(text("SELECT id FROM comments WHERE external_id = :id"), {"id": held[0]["id"]}).scalar()
        browsers = [Browser(server, name) for server, name in zip(servers, moderators)]
        barrier = threading.Barrier(2)

        def reject(browser):
            token = browser.token("/queue")
            barrier.wait()
            data = urllib.parse.urlencode({"csrf_token": token, "action": "reject", "reason": "toxic"}).encode()
            request = urllib.request.Request(f"{browser.base}/comments/{comment_id}/decision", data=data,
                                             headers={"Accept": "application/json"})
            try:
                with browser.opener.open(request, timeout=30) as answer:
                    return answer.status
            except urllib.error.HTTPError as error:
                return error.code

        with ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(reject, browsers))
        assert statuses == [200, 409], "one moderator's decision counts; the other is told it was taken"
        with engine.connect() as connection:
            decisions = connection.execute(text("SELECT count(*) FROM decisions WHERE comment_id = :id AND decided_by = 'moderator'"),
                                           {"id": comment_id}).scalar()
        assert decisions == 1

        # Every webhook event, from either server's comments and decisions, delivered exactly once by the two workers.
        with engine.connect() as connection:
            made = connection.execute(text("SELECT count(*) FROM deliveries")).scalar()
        deadline = time.monotonic() + DELIVERED_WITHIN_SECONDS
        while len(receiver.received) < made and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # a second send would arrive within the workers' next rounds
        assert made > 0 and len(receiver.received) == made == len(set(receiver.received)), (made, receiver.received)

        # An activation reaches both servers within SWITCH_SECONDS, without a restart.
        assert set.union(*(versions_answering(server, key, f"before-{n}") for n, server in enumerate(servers))) == {FIRST}
        run_cli("models", "activate", SECOND, models_dir=two_versions, check=True)
        deadline = time.monotonic() + SWITCH_SECONDS
        for n, server in enumerate(servers):
            round_ = 0
            while versions_answering(server, key, f"after-{n}-{round_}") != {SECOND}:
                assert time.monotonic() < deadline, f"server {n + 1} still serves {FIRST} {SWITCH_SECONDS} s after the activation"
                round_ += 1
                time.sleep(0.5)
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT external_id, count(*) FROM comments GROUP BY external_id "
                                             "HAVING count(*) > 1")).all()
        engine.dispose()
        assert stored == [], "no comment is stored twice"
