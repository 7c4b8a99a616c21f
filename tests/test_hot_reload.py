"""A running production server follows `models activate` and `models rollback` within 10 s, in every worker, without a restart."""

import http.client
import json
import os
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import TEST_KEY, gunicorn_serving, resign, run_cli
from .test_timings import ARTICLE, keyed_database

FIRST, SECOND = "20260101-000000", "20260102-000000"
ROUND = 16  # comments sent at once, so that both workers answer some of them
SWITCH_SECONDS = 10


@pytest.fixture
def two_versions(tmp_path, trained):
    """A registry holding two signed copies of the session's model, the first one active."""
    source_dir, version, _ = trained
    models = tmp_path / "models"
    for name in (FIRST, SECOND):
        shutil.copytree(source_dir / version, models / name)
        resign(models / name, version=name)
    run_cli("models", "activate", FIRST, models_dir=models, check=True)
    return models


def send(base: str, key: str, comment_id: str) -> tuple[int, dict]:
    """POST one comment on a new connection; its status and answer."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"id": comment_id, "text": "Bravo aux Éléphants, quelle qualification !", "article": ARTICLE}
    connection.request("POST", "/api/v1/comments", json.dumps(body), {"Authorization": f"Bearer {key}",
                                                                       "Content-Type": "application/json"})
    response = connection.getresponse()
    answer = (response.status, json.loads(response.read()))
    connection.close()
    return answer


def versions_answering(base: str, key: str, prefix: str) -> set[str]:
    """The model versions that scored a round of comments sent at once."""
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda number: send(base, key, f"{prefix}-{number}"), range(ROUND)))
    assert {status for status, _ in answers} == {201}, answers[:2]
    return {answer["model_version"] for _, answer in answers}


def switched_within(base: str, key: str, expected: str, prefix: str) -> str:
    """The first round whose comments were all scored by `expected`, which must come within SWITCH_SECONDS."""
    started = time.monotonic()
    for attempt in range(1000):
        seen = versions_answering(base, key, f"{prefix}-{attempt}")
        if seen == {expected}:
            return f"{prefix}-{attempt}"
        assert time.monotonic() - started < SWITCH_SECONDS, f"still answering with {seen} after {SWITCH_SECONDS} s"
        time.sleep(0.2)
    raise AssertionError("unreachable")


def test_activate_and_rollback_reach_every_worker_within_ten_seconds(two_versions, sqlite_url, tmp_path):
    key = keyed_database(sqlite_url)
    env = dict(os.environ, MODERATION_DATABASE_URL=sqlite_url, MODERATION_MODELS_DIR=str(two_versions),
               MODERATION_SECRET_KEY=TEST_KEY, TMPDIR=str(tmp_path))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with gunicorn_serving(env, tmp_path / "gunicorn.log") as base:
        assert versions_answering(base, key, "before") == {FIRST}
        run_cli("models", "activate", SECOND, models_dir=two_versions, check=True)
        scored_by_second = switched_within(base, key, SECOND, "activated")
        run_cli("models", "rollback", models_dir=two_versions, check=True)
        switched_within(base, key, FIRST, "rolled-back")
        stored = urllib.request.Request(f"{base}/api/v1/comments/{scored_by_second}-0", headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(stored, timeout=30) as response:
            assert json.loads(response.read())["model_version"] == SECOND, "a comment keeps the version that scored it"
