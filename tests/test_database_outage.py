"""PostgreSQL going away while comments arrive: 503 with Retry-After on every surface, nothing acknowledged lost, back by itself.

The app (gunicorn, as in production) reaches the real PostgreSQL server through a TCP relay the
test cuts, as a database restart or a network fault would: every open connection dropped and new
ones refused, then restored.
"""

import http.client
import json
import os
import socket
import sys
import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from moderation import create_app
from moderation.api.clients import VERIFIED_SECONDS

from .conftest import ROOT, TEST_KEY, csrf_token, gunicorn_serving
from .test_timings import ARTICLE, keyed_database

sys.path.insert(0, str(ROOT / "benchmarks"))
from relay import Relay  # noqa: E402  (shared with benchmarks/faults.py)

BACK_WITHIN_SECONDS = 15


def send(base: str, path: str, body: dict, headers: dict) -> tuple[int, dict, http.client.HTTPMessage]:
    """POST JSON on a new connection: status, parsed answer, headers."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **headers})
    response = connection.getresponse()
    answer = (response.status, json.loads(response.read()), response.headers)
    connection.close()
    return answer


def comment(base: str, key: str, comment_id: str) -> tuple[int, dict, http.client.HTTPMessage]:
    """Send one comment through the API."""
    return send(base, "/api/v1/comments", {"id": comment_id, "text": "Bravo aux Éléphants, quelle qualification !",
                                           "article": ARTICLE}, {"Authorization": f"Bearer {key}"})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_database_outage_answers_503_with_retry_after_loses_nothing_and_service_resumes(models_dir, database_url, tmp_path):
    key = keyed_database(database_url)
    server = make_url(database_url)
    relay = Relay((server.host or "127.0.0.1", server.port or 5432))
    env = dict(os.environ, MODERATION_DATABASE_URL=server.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False),
               MODERATION_MODELS_DIR=str(models_dir), MODERATION_SECRET_KEY=TEST_KEY, TMPDIR=str(tmp_path))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    acknowledged = set()
    with gunicorn_serving(env, tmp_path / "gunicorn.log") as base:
        for number in range(10):
            status, _, _ = comment(base, key, f"before-{number}")
            assert status == 201
            acknowledged.add(f"before-{number}")

        relay.cut()
        for number in range(10):
            status, answer, headers = comment(base, key, f"during-{number}")
            assert status == 503, answer
            assert answer["error"]["code"] == "database_unavailable" and "retry" in answer["error"]["message"]
            assert headers["Retry-After"] == "5"
        time.sleep(VERIFIED_SECONDS + 0.5)  # scoring alone needs no database; checking the key again does
        status, answer, headers = send(base, f"/v1alpha1/comments:analyze?key={key}",
                                       {"comment": {"text": "Bravo"}, "requestedAttributes": {"TOXICITY": {}}}, {})
        assert (status, answer["error"]["status"], headers["Retry-After"]) == (503, "UNAVAILABLE", "5"), answer

        relay.restore()
        deadline = time.monotonic() + BACK_WITHIN_SECONDS
        while True:
            status, answer, _ = comment(base, key, "during-0")
            if status == 201:
                break
            assert status == 503 and time.monotonic() < deadline, f"still {status} after the database came back: {answer}"
            time.sleep(0.5)
        for number in range(10):
            status, _, _ = comment(base, key, f"during-{number}")
            assert status in (200, 201), "a comment refused during the outage is taken when sent again"
            acknowledged.add(f"during-{number}")
    log = (tmp_path / "gunicorn.log").read_text()
    assert "Traceback" not in log, log[-3000:]

    engine = create_engine(database_url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT external_id, count(*) FROM comments GROUP BY external_id")).all()
    engine.dispose()
    assert {name for name, _ in stored} == acknowledged and all(count == 1 for _, count in stored)


def test_a_page_asked_for_while_the_database_is_unreachable_says_so_in_the_users_language(models_dir, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on: the database is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app({"DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{port}/palabre", "MODELS_DIR": str(models_dir)})
    client = app.test_client()
    response = client.post("/login", data={"csrf_token": csrf_token(client), "username": "ada", "password": "secret"},
                           headers={"Accept-Language": "fr"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "La base de données est injoignable pour le moment" in response.get_data(as_text=True)
