"""The JSON API over real HTTP: a waitress server, a real key, real requests."""

import json
import urllib.error
import urllib.request

import pytest

from moderation import create_app, settings
from moderation.api.clients import create_client, revoke_client
from moderation.database import Database
from moderation.policy import LabelThresholds

from .conftest import LiveServer

# On the article's subject, so it is flagged toxic and not also off-topic.
INSULT = "Espèce de crétin, ferme ta sale gueule avec ton référendum sur la Constitution"
OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."
ARTICLE = {"id": "politique-api", "title": "Référendum : le projet de nouvelle Constitution soumis au vote",
           "body": "Le gouvernement soumet au vote le projet de Constitution ; l'opposition appelle au boycott."}


class Api:
    """A client of the running server."""

    def __init__(self, base: str, key: str, database: Database):
        self.base, self.key, self.database = base, key, database

    def call(self, method: str, path: str, body=None, key: str | None = "default", raw: bytes | None = None,
             content_type: str = "application/json"):
        """Send one request; return (status, parsed JSON, headers)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        if key is not None:
            request.add_header("Authorization", f"Bearer {self.key if key == 'default' else key}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read()), response.headers
        except urllib.error.HTTPError as error:
            payload = error.read()
            assert error.headers["Content-Type"].startswith("application/json"), payload[:300]
            return error.code, json.loads(payload), error.headers


@pytest.fixture
def api(models_dir, sqlite_url):
    """A real server on a fresh database with one API client; the QA sample is off so outcomes are deterministic."""
    database = Database(sqlite_url)
    with database.session() as session:
        settings.set_qa_share(session, 0.0)
        session.commit()
        _, key = create_client(session, "site", "https://site.example/hooks")
    app = create_app({"DATABASE_URL": sqlite_url, "MODELS_DIR": str(models_dir)})
    server = LiveServer(app)
    yield Api(server.url, key, database)
    server.close()
    app.extensions["palabre.database"].engine.dispose()
    database.engine.dispose()


def comment(comment_id="c1", text=OPINION, **fields):
    """A comment as the site sends it."""
    return {"id": comment_id, "text": text, "article": ARTICLE, **fields}


def test_a_new_comment_gets_its_decision_and_the_same_one_again_the_stored_result(api):
    status, first, _ = api.call("POST", "/api/v1/comments", comment("c1", INSULT, author={"id": 42, "name": "Awa"}))
    assert status == 201
    assert (first["id"], first["status"], first["decision"], first["labels"]) == ("c1", "pending", "review", ["toxic"])
    assert first["scores"]["toxic"] > 0.5 and first["explanation"]["toxic"][0]["spans"]
    status, again, _ = api.call("POST", "/api/v1/comments", comment("c1", INSULT))
    assert status == 200 and again == first


def test_new_text_for_the_same_id_is_an_edit_with_a_new_revision_and_score(api):
    api.call("POST", "/api/v1/comments", comment("c2", OPINION))
    status, edited, _ = api.call("POST", "/api/v1/comments", comment("c2", INSULT))
    assert status == 201 and edited["revision"] == 2 and edited["status"] == "pending"


@pytest.mark.parametrize("text", ["Ça va ? 🇨🇮\u200b\u202eeliam\u202c", "  espaces  \n\n", "é" + "\u0301" * 3, "<script>x</script>", "x" * 20_000])
def test_every_accepted_comment_is_returned_exactly_as_sent(api, text):
    status, _, _ = api.call("POST", "/api/v1/comments", comment("exact", text))
    assert status == 201
    status, stored, _ = api.call("GET", "/api/v1/comments/exact")
    assert status == 200 and stored["text"] == text


@pytest.mark.parametrize("key, status, code", [(None, 401, "unauthenticated"), ("pal_nope", 401, "invalid_key")])
def test_requests_without_a_valid_key_are_refused(api, key, status, code):
    answer, body, headers = api.call("POST", "/api/v1/comments", comment(), key=key)
    assert (answer, body["error"]["code"]) == (status, code) and "Bearer" in headers["WWW-Authenticate"]


def test_a_revoked_key_is_refused_from_the_next_request(api):
    assert api.call("GET", "/api/v1/queue")[0] == 200
    with api.database.session() as session:
        from moderation.admin.models import ApiClient

        revoke_client(session, session.query(ApiClient).one())
    status, body, _ = api.call("GET", "/api/v1/queue")
    assert status == 403 and body["error"]["code"] == "revoked_key" and "revoked" in body["error"]["message"]


@pytest.mark.parametrize("raw, content_type, status, code, field", [
    (b'{"id": "c1", "text": "x"', "application/json", 400, "invalid_json", None),
    (b"\xff\xfe", "application/json", 400, "invalid_json", None),
    (b'{"id": "c1", "text": NaN}', "application/json", 400, "invalid_json", None),
    (b"[1, 2]", "application/json", 422, "invalid_field", None),
    (b"id=c1&text=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type", None),
    (b'{"text": "Bonjour", "article": {"id": "a"}}', "application/json", 422, "invalid_field", "id"),
    (b'{"id": "c1", "article": {"id": "a"}}', "application/json", 422, "invalid_field", "text"),
    (b'{"id": "c1", "text": 5, "article": {"id": "a"}}', "application/json", 422, "invalid_field", "text"),
    (b'{"id": "c1", "text": "", "article": {"id": "a", "title": "t"}}', "application/json", 422, "invalid_field", "text"),
    (b'{"id": "c1", "text": "a\\u0000b", "article": {"id": "a", "title": "t"}}', "application/json", 422, "invalid_field", "text"),
    (b'{"id": "c1", "text": "\\ud800 seul", "article": {"id": "a", "title": "t"}}', "application/json", 422, "invalid_field", "text"),
    (b'{"id": "c1", "text": "ok", "article": "a"}', "application/json", 422, "invalid_field", "article"),
    (b'{"id": "c1", "text": "ok", "article": {"id": "a"}}', "application/json", 422, "unknown_article", "article.title"),
    (b'{"id": "c1", "text": "ok", "article": {"id": "a", "title": "t"}, "created_at": "hier"}', "application/json", 422,
     "invalid_field", "created_at"),
])
def test_malformed_requests_get_a_json_error_naming_the_problem_and_store_nothing(api, raw, content_type, status, code, field):
    answer, body, _ = api.call("POST", "/api/v1/comments", raw=raw, content_type=content_type)
    assert (answer, body["error"]["code"], body["error"]["field"]) == (status, code, field)
    assert body["error"]["message"]
    assert api.call("GET", "/api/v1/comments/c1")[0] == 404


def test_text_over_the_limit_and_a_body_over_the_size_limit_are_refused(api):
    status, body, _ = api.call("POST", "/api/v1/comments", comment("long", "x" * 20_001))
    assert (status, body["error"]["field"]) == (422, "text") and "20,000" in body["error"]["message"]
    status, body, _ = api.call("POST", "/api/v1/comments", raw=b'{"text": "' + b"x" * (3 * 1024 * 1024) + b'"}')
    assert (status, body["error"]["code"]) == (413, "too_large")


def test_unknown_addresses_and_methods_answer_json(api):
    assert api.call("GET", "/api/v1/nowhere")[1]["error"]["code"] == "not_found"
    status, body, _ = api.call("GET", "/api/v1/score")
    assert (status, body["error"]["code"]) == (405, "method_not_allowed")
    assert api.call("GET", "/api/v1/comments/never-sent")[0] == 404


def test_score_answers_without_storing_anything(api):
    status, body, _ = api.call("POST", "/api/v1/score", {"text": INSULT, "article": {"title": ARTICLE["title"]}})
    assert status == 200 and body["decision"] == "review" and body["labels"] == ["toxic"]
    assert api.call("GET", "/api/v1/queue")[1]["items"] == []


def test_score_and_receiving_decide_under_the_thresholds_an_admin_pinned(api):
    body = {"text": INSULT, "article": {"title": ARTICLE["title"], "body": ARTICLE["body"]}}
    toxic = api.call("POST", "/api/v1/score", body)[1]["scores"]["toxic"]
    with api.database.session() as session:
        settings.pin_thresholds(session, {"toxic": LabelThresholds(review=min(toxic + 0.01, 1.0))})
        session.commit()
    scored = api.call("POST", "/api/v1/score", body)[1]
    received = api.call("POST", "/api/v1/comments", {"id": "pinned", **body, "article": {"id": ARTICLE["id"], **body["article"]}})[1]
    assert scored["scores"]["toxic"] == toxic and "toxic" not in scored["labels"], "the pinned threshold is above this score"
    assert (scored["decision"], scored["labels"]) == (received["decision"], received["labels"])
    with api.database.session() as session:
        settings.pin_thresholds(session, {"toxic": LabelThresholds(review=max(toxic - 0.01, 0.0), reject=max(toxic - 0.005, 0.0))})
        session.commit()
    assert api.call("POST", "/api/v1/score", body)[1]["decision"] == "reject"


def test_an_article_put_under_premoderation_holds_its_clean_comments(api):
    status, article, _ = api.call("PUT", "/api/v1/articles/chaud", {"title": "Élection", "body": "Le scrutin", "premoderate": True})
    assert status == 201 and article["premoderate"] is True
    status, held, _ = api.call("POST", "/api/v1/comments", {"id": "h1", "text": OPINION, "article": {"id": "chaud"}})
    assert (status, held["status"], held["decision"]) == (201, "pending", "review")
    assert api.call("PUT", "/api/v1/articles/chaud", {"premoderate": False})[0] == 200


def test_the_queue_lists_what_waits_highest_priority_first_a_page_at_a_time(api):
    for number in range(3):
        api.call("POST", "/api/v1/comments", comment(f"q{number}", f"{INSULT} {number}"))
    api.call("POST", "/api/v1/comments", comment("clean", OPINION))
    status, page, _ = api.call("GET", "/api/v1/queue?per_page=2")
    assert status == 200 and len(page["items"]) == 2 and page["next_page"] == 2 and page["total"] == 3
    assert api.call("GET", "/api/v1/queue?per_page=500")[1]["error"]["field"] == "per_page"


def test_a_batch_answers_each_comment_in_order_and_refuses_only_the_bad_ones(api):
    status, body, _ = api.call("POST", "/api/v1/comments/batch", {"comments": [comment("b1"), {"id": "b2"}, comment("b3", INSULT)]})
    assert status == 200
    assert [result.get("status") or result["error"]["field"] for result in body["results"]] == ["published", "article", "pending"]
    status, body, _ = api.call("POST", "/api/v1/comments/batch", {"comments": [comment(f"m{n}") for n in range(501)]})
    assert (status, body["error"]["field"]) == (422, "comments")


def test_a_key_over_its_rate_is_told_to_wait(models_dir, sqlite_url):
    database = Database(sqlite_url)
    with database.session() as session:
        _, key = create_client(session, "busy")
    app = create_app({"DATABASE_URL": sqlite_url, "MODELS_DIR": str(models_dir), "API_RATE_PER_SECOND": 0.5, "API_RATE_BURST": 3})
    client = app.test_client()
    answers = [client.get("/api/v1/queue", headers={"Authorization": f"Bearer {key}"}) for _ in range(4)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert answers[-1].json["error"]["code"] == "rate_limited" and int(answers[-1].headers["Retry-After"]) >= 1
    app.extensions["palabre.database"].engine.dispose()
    database.engine.dispose()
