"""/metrics says where an answer's time goes, stage by stage, in one process and across gunicorn's workers."""

import http.client
import json
import os
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.parser import text_string_to_metric_families

from moderation import create_app, settings
from moderation.api.clients import create_client
from moderation.database import Database

from .conftest import LiveServer, gunicorn_serving

ARTICLE = {"id": "sport-timings", "title": "Les Éléphants qualifiés pour la CAN",
           "body": "La sélection ivoirienne s'est qualifiée pour la Coupe d'Afrique des nations."}
STAGES_OF_A_NEW_COMMENT = ("answer api", "parse", "intake", "batch", "score", "sql select comments by id", "sql select threads", "sql insert comments", "sql insert revisions",
                           "sql insert scores", "commit", "serialise")
COMMENTS = 40


def stage_counts(base: str) -> dict[str, float]:
    """How many passes /metrics counts for each stage."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return {sample.labels["stage"]: sample.value for family in text_string_to_metric_families(text)
            if family.name == "palabre_stage_seconds" for sample in family.samples if sample.name.endswith("_count")}


def post_comment(base: str, key: str, comment_id: str) -> int:
    """POST one comment on a new connection; its status."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = {"id": comment_id, "text": "Bravo aux Éléphants, quelle qualification !", "article": ARTICLE}
    connection.request("POST", "/api/v1/comments", json.dumps(body), {"Authorization": f"Bearer {key}",
                                                                       "Content-Type": "application/json"})
    status = connection.getresponse().status
    connection.close()
    return status


def keyed_database(url: str) -> str:
    """An API key on the database at `url` (QA sample off)."""
    database = Database(url)
    with database.session() as session:
        settings.set_qa_share(session, 0.0)
        session.commit()
        _, key = create_client(session, "site")
    database.engine.dispose()
    return key


def test_each_new_comment_passes_once_through_every_stage_of_an_answer(models_dir, sqlite_url):
    key = keyed_database(sqlite_url)
    app = create_app({"DATABASE_URL": sqlite_url, "MODELS_DIR": str(models_dir)})
    server = LiveServer(app)
    try:
        assert post_comment(server.url, key, "warm") == 201
        before = stage_counts(server.url)
        for number in range(3):
            assert post_comment(server.url, key, f"t{number}") == 201
        after = stage_counts(server.url)
    finally:
        server.close()
        app.extensions["palabre.database"].engine.dispose()
    assert {stage: after.get(stage, 0) - before.get(stage, 0) for stage in STAGES_OF_A_NEW_COMMENT} == \
        dict.fromkeys(STAGES_OF_A_NEW_COMMENT, 3)
    assert after["connect"] == before["connect"], "the intake keeps the connection it made for the first comment"
    assert after["sql select articles"] - before["sql select articles"] <= 1, "an article read a moment ago is not read again"


def test_metrics_add_up_the_answers_of_every_gunicorn_worker(models_dir, sqlite_url, tmp_path):
    key = keyed_database(sqlite_url)
    env = dict(os.environ, MODERATION_DATABASE_URL=sqlite_url, MODERATION_MODELS_DIR=str(models_dir), TMPDIR=str(tmp_path))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py makes the shared folder itself
    with gunicorn_serving(env, tmp_path / "gunicorn.log") as base:
        with ThreadPoolExecutor(8) as pool:  # busy enough that both workers take some
            assert list(pool.map(lambda number: post_comment(base, key, f"g{number}"), range(COMMENTS))) == [201] * COMMENTS
        deadline = time.monotonic() + 10  # each worker moves its timings into the shared files twice a second
        while stage_counts(base).get("answer api") != COMMENTS and time.monotonic() < deadline:
            time.sleep(0.1)
        seen = [stage_counts(base) for _ in range(6)]
        workers = {path.stem.rpartition("_")[2] for path in tmp_path.glob("palabre-metrics-*/histogram_*.db")}
    assert len(workers) == 2, f"the answers were not spread over both workers: {sorted(workers)}"
    assert [(counts["answer api"], counts["score"]) for counts in seen] == [(COMMENTS, COMMENTS)] * 6
    assert not list(tmp_path.glob("palabre-metrics-*")), "the metrics folder outlived the server"
