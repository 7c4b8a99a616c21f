"""Perspective compatibility over real HTTP: the requests Google's Python client and Coral send, and every refusal."""

import json
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from moderation import create_app
from moderation.admin.models import ApiClient
from moderation.api.clients import create_client, revoke_client
from moderation.comments.models import Comment
from moderation.database import Database
from moderation.integrations import perspective

from .conftest import LiveServer

INSULT = "Espèce de crétin, ferme ta sale gueule"
OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."
ARTICLE_TITLE = "Référendum : le projet de nouvelle Constitution soumis au vote"
ARTICLE_BODY = ("Le gouvernement soumet au vote le projet de Constitution. L'opposition appelle au boycott du "
                "référendum et dénonce un calendrier électoral trop court.")
ANALYZE = "/v1alpha1/comments:analyze"
# What googleapiclient 2.202 (built with discoveryServiceUrl pointing at Palabre) puts on the wire for
# comments().analyze(body=...).execute(), besides the body, as captured from the real client.
PYTHON_CLIENT_HEADERS = {"accept": "application/json", "accept-encoding": "gzip, deflate", "user-agent": "(gzip)",
                         "x-goog-api-client": "gdcl/2.202.0 gl-python/3.11.7", "content-type": "application/json"}


class Perspective:
    """A Perspective client of the running server."""

    def __init__(self, base: str, key: str, database: Database):
        self.base, self.key, self.database = base, key, database

    def call(self, path: str, body=None, raw: bytes | None = None, headers: dict | None = None, method: str = "POST"):
        """Send one request; return (status, parsed JSON); a 401's challenge must be one httplib2 can parse."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers if headers is not None else {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            payload = error.read()
            assert error.headers["Content-Type"].startswith("application/json"), payload[:300]
            assert error.code != 401 or "=" in error.headers["WWW-Authenticate"]
            return error.code, json.loads(payload)

    def analyze(self, body=None, raw: bytes | None = None, key: str | None = "default"):
        """POST comments:analyze with the key in the query string, as Perspective clients do."""
        query = "" if key is None else "?key=" + urllib.request.quote(self.key if key == "default" else key)
        return self.call(ANALYZE + query, body, raw)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
                    max_leaves=6)
BODIES = st.fixed_dictionaries({}, optional={
    "comment": st.fixed_dictionaries({}, optional={"text": st.text(max_size=80) | JSON,
                                                   "type": st.sampled_from(["PLAIN_TEXT", "HTML"]) | JSON}) | JSON,
    "requestedAttributes": st.dictionaries(
        st.sampled_from(["TOXICITY", "OFF_TOPIC", "SEVERE_TOXICITY", "INSULT"]) | st.text(max_size=8),
        st.fixed_dictionaries({}, optional={"scoreThreshold": st.floats(-1, 2) | JSON, "scoreType": JSON}) | JSON,
        max_size=3) | JSON,
    "languages": st.lists(st.sampled_from(["fr", "en-US", "de"]) | JSON, max_size=2) | JSON,
    "context": st.fixed_dictionaries({}, optional={
        "entries": st.lists(st.fixed_dictionaries({"text": st.text(max_size=30)}) | JSON, max_size=2) | JSON,
        "articleAndParentComment": JSON}) | JSON,
    "spanAnnotations": st.booleans() | JSON, "clientToken": JSON, "doNotStore": JSON,
})


def build_app(sqlite_url: str, models_dir):
    """The app as configured in production, with the Perspective blueprint whether or not create_app registers it yet."""
    app = create_app({"DATABASE_URL": sqlite_url, "MODELS_DIR": str(models_dir)})
    if "perspective" not in app.blueprints:
        app.register_blueprint(perspective.blueprint)
    return app


@contextmanager
def serving(app, key: str, database: Database):
    """A real waitress server for the app, stopped afterwards."""
    server = LiveServer(app)
    try:
        yield Perspective(server.url, key, database)
    finally:
        server.close()
        app.extensions["palabre.database"].engine.dispose()

def new_key(sqlite_url: str) -> tuple[Database, str]:
    """The test database and one site's API key."""
    database = Database(sqlite_url)
    with database.session() as session:
        _, key = create_client(session, "site")
    return database, key


@pytest.fixture
def api(models_dir, sqlite_url):
    """Palabre serving the session's model, with one site's key."""
    database, key = new_key(sqlite_url)
    with serving(build_app(sqlite_url, models_dir), key, database) as client:
        yield client
    database.engine.dispose()


def request(text=INSULT, attributes=("TOXICITY",), **fields):
    """An AnalyzeComment request."""
    return {"comment": {"text": text}, "requestedAttributes": {name: {} for name in attributes}, **fields}


def summary(answer: dict, attribute: str = "TOXICITY") -> float:
    """The score a client reads."""
    return answer["attributeScores"][attribute]["summaryScore"]["value"]


def test_the_python_client_builds_itself_from_palabre_and_gets_perspectives_answer(api):
    status, document = api.call(f"/$discovery/rest?version=v1alpha1&key={api.key}", method="GET",
                                headers={"user-agent": "Python-httplib2/0.32.1 (gzip)", "accept-encoding": "gzip, deflate"})
    method = document["resources"]["comments"]["methods"]["analyze"]
    url = document["rootUrl"] + document["servicePath"] + method["path"]
    assert status == 200 and method["httpMethod"] == "POST" and url == api.base + ANALYZE
    body = json.dumps(request(INSULT, languages=["fr"])).encode()
    status, answer = api.call(f"{ANALYZE}?key={api.key}&alt=json", raw=body, headers=PYTHON_CLIENT_HEADERS)
    assert status == 200 and set(answer) == {"attributeScores", "languages", "detectedLanguages"}
    assert answer["attributeScores"]["TOXICITY"] == {"summaryScore": {"value": summary(answer), "type": "PROBABILITY"}}
    assert summary(answer) > 0.5 and answer["languages"] == ["fr"] and answer["detectedLanguages"] == ["fr"]
    status, calm = api.call(f"{ANALYZE}?key={api.key}&alt=json", raw=json.dumps(request(OPINION)).encode(),
                            headers=PYTHON_CLIENT_HEADERS)
    assert status == 200 and summary(calm) < 0.5


@pytest.mark.parametrize("model", ["TOXICITY", "SEVERE_TOXICITY"])
def test_coral_reads_its_models_score_where_it_looks_and_withholds_only_the_insult(api, model):
    def coral_score(text):
        """Coral's toxic phase: its fixed body, then data.attributeScores[model].summaryScore.value."""
        status, answer = api.analyze({"comment": {"text": text}, "doNotStore": True,
                                      "requestedAttributes": {model: {}}, "languages": ["fr"]})
        assert status == 200
        return answer["attributeScores"][model]["summaryScore"]["value"]

    threshold = 0.8  # Coral's default
    assert coral_score(INSULT) > threshold > coral_score(OPINION)


def test_analyze_stores_nothing_and_echoes_the_client_token(api):
    status, answer = api.analyze(request(INSULT, clientToken="comment:42", sessionId="s-1", communityId="Coral:site",
                                         doNotStore=False))
    assert status == 200 and answer["clientToken"] == "comment:42"
    with api.database.session() as session:
        assert session.scalar(select(func.count()).select_from(Comment)) == 0


def test_span_scores_cover_each_sentence_with_its_own_score_in_utf16_offsets(api):
    text = f"🇨🇮 {OPINION}  {INSULT} !\nMerci.\n\u200b"
    status, answer = api.analyze(request(text, spanAnnotations=True))
    assert status == 200
    spans = answer["attributeScores"]["TOXICITY"]["spanScores"]
    units = text.encode("utf-16-le")
    pieces = [units[2 * span["begin"]:2 * span["end"]].decode("utf-16-le") for span in spans]
    assert pieces == [f"🇨🇮 {OPINION}", f"{INSULT} !", "Merci."]
    opinion, insult, thanks = (span["score"]["value"] for span in spans)
    assert insult > 0.5 > opinion and insult > thanks
    assert all(span["score"]["type"] == "PROBABILITY" for span in spans)
    assert "spanScores" not in api.analyze(request(text))[1]["attributeScores"]["TOXICITY"]


def test_off_topic_is_judged_against_the_context_entries(api):
    context = {"entries": [{"text": ARTICLE_TITLE}, {"text": ARTICLE_BODY}]}
    status, on_topic = api.analyze(request(OPINION, ("OFF_TOPIC", "TOXICITY"), context=context))
    _, spam = api.analyze(request("Gagnez 500 € par jour depuis chez vous, cliquez sur mon profil !!!", ("OFF_TOPIC",),
                                  context=context))
    assert status == 200 and set(on_topic["attributeScores"]) == {"OFF_TOPIC", "TOXICITY"}
    assert summary(on_topic, "OFF_TOPIC") < 0.5 < summary(spam, "OFF_TOPIC")
    both = {"entries": [{"text": ARTICLE_TITLE}], "articleAndParentComment": {"article": {"text": ARTICLE_BODY}}}
    status, refused = api.analyze(request(OPINION, context=both))
    assert (status, refused["error"]["status"]) == (400, "INVALID_ARGUMENT") and "not both" in refused["error"]["message"]


def test_proto_field_names_in_snake_case_are_read_too(api):
    status, answer = api.analyze({"comment": {"text": f"{OPINION} {INSULT}"}, "requested_attributes": {"TOXICITY": {}},
                                  "span_annotations": True, "client_token": "c-7", "do_not_store": True})
    assert status == 200 and answer["clientToken"] == "c-7" and len(answer["attributeScores"]["TOXICITY"]["spanScores"]) == 2


def test_a_score_threshold_leaves_out_what_is_below_it(api):
    status, answer = api.analyze({"comment": {"text": OPINION}, "requestedAttributes": {
        "TOXICITY": {"scoreThreshold": 0.9, "scoreType": "PROBABILITY"}, "OFF_TOPIC": {"scoreThreshold": 0}}})
    assert status == 200 and list(answer["attributeScores"]) == ["OFF_TOPIC"]


@pytest.mark.parametrize("text, languages, detected", [
    (OPINION, ["fr-FR"], "fr"), ("You are an idiot and you know it", ["en_US"], "en"), (OPINION, ["FR", "en"], "fr"),
    ("You are an idiot and you know it", [], "en"), (OPINION, None, "fr"),
])
def test_french_and_english_in_any_regional_form_are_scored(api, text, languages, detected):
    status, answer = api.analyze(request(text, languages=languages))
    assert status == 200
    assert answer["languages"] == (languages or [detected]) and answer["detectedLanguages"] == [detected]
    _, unnamed = api.analyze(request(text))
    assert summary(answer) == summary(unnamed), "naming the language, in any regional form, does not change the score"
    assert (summary(answer) > 0.5) == (text != OPINION), "the insult is toxic and the opinion is not"


def test_an_unsupported_language_gets_perspectives_error_unless_the_client_drops_it(api):
    status, answer = api.analyze(request("Du bist ein Idiot", languages=["de"]))
    assert (status, answer["error"]["code"], answer["error"]["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert answer["error"]["message"].startswith("Attribute TOXICITY does not support request languages: de")
    assert answer["error"]["details"][0]["errorType"] == "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE"
    status, answer = api.analyze(request("Du bist ein Idiot", languages=["de"], dropUnsupportedAttributes=True))
    assert status == 200 and "attributeScores" not in answer


@pytest.mark.parametrize("body, message", [
    (request(attributes=("FLIRTATION",)), "Unknown requested attribute: FLIRTATION"),
    (request(attributes=("TOXICITY", "INSULT")), "Unknown requested attribute: INSULT"),
    (request(attributes=()), "Missing requested_attributes"),
    ({"comment": {"text": INSULT}}, "Missing requested_attributes"),
    (request(text=""), "Comment must be non-empty."),
    (request(text="   \n "), "Comment must be non-empty."),
    (request(text="\u200b\u2060"), "'comment.text' has no visible characters"),
    ({"requestedAttributes": {"TOXICITY": {}}}, "Comment must be non-empty."),
    ({"comment": {"text": "<p>Bonjour</p>", "type": "HTML"}, "requestedAttributes": {"TOXICITY": {}}},
     "Currently, only 'PLAIN_TEXT' comments are supported"),
    ({"comment": {"text": INSULT}, "requestedAttributes": {"TOXICITY": {"scoreType": "RAW"}}},
     "Requested score type RAW is not supported by attribute TOXICITY"),
    ({"comment": {"text": 5}, "requestedAttributes": {"TOXICITY": {}}}, "Invalid value at 'comment.text' (TYPE_STRING), 5"),
    (request(spanAnnotations="yes"), "Invalid value at 'spanAnnotations' (TYPE_BOOL), \"yes\""),
    (request(languages="fr"), "Invalid value at 'languages'"),
    (request(text="x" * 20_001), "Comment text too long."),
])
def test_bad_requests_get_perspectives_400_saying_what_is_wrong(api, body, message):
    status, answer = api.analyze(body)
    assert (status, answer["error"]["code"], answer["error"]["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert answer["error"]["message"].startswith(message)


def test_empty_text_carries_perspectives_error_type(api):
    status, answer = api.analyze(request(text=""))
    assert status == 400 and answer["error"]["details"] == [{"@type": "type.googleapis.com/google.commentanalyzer.v1alpha1.Error",
                                           "errorType": "COMMENT_EMPTY"}]


@pytest.mark.parametrize("raw, message", [
    (b'{"comment": {"text": "x"}', "Invalid JSON payload received."),
    (b"\xff\xfe{}", "Invalid JSON payload received. The body is not UTF-8"),
    (b'{"comment": {"text": NaN}}', "Invalid JSON payload received."),
    (b"[1, 2]", "Invalid JSON payload received. The body must be a JSON object"),
    (b"", "Invalid JSON payload received. The body is empty"),
    (b"[" * 100_000 + b"]" * 100_000, "Invalid JSON payload received."),
    (b'{"comment": {"text": "\\ud800 seul"}, "requestedAttributes": {"TOXICITY": {}}}',
     "'comment.text' contains a lone surrogate"),
    (b'{"comment": {"text": "a\\u0000b"}, "requestedAttributes": {"TOXICITY": {}}}', "'comment.text' contains a NUL"),
])
def test_unreadable_bodies_get_a_json_400(api, raw, message):
    status, answer = api.analyze(raw=raw)
    assert (status, answer["error"]["status"]) == (400, "INVALID_ARGUMENT") and answer["error"]["message"].startswith(message)


def test_escaped_surrogate_pairs_are_one_character_and_spans_count_them_as_two(api):
    raw = b'{"comment": {"text": "\\ud83d\\ude00 Bravo. Espece de cretin !"}, "requestedAttributes": {"TOXICITY": {}}, ' \
          b'"spanAnnotations": true}'
    status, answer = api.analyze(raw=raw)
    assert status == 200
    assert [(s["begin"], s["end"]) for s in answer["attributeScores"]["TOXICITY"]["spanScores"]] == [(0, 9), (10, 28)]


def test_a_body_over_the_size_limit_gets_413_in_perspectives_shape(api):
    status, answer = api.analyze(raw=json.dumps(request("x" * (3 * 1024 * 1024))).encode())
    assert (status, answer["error"]["code"]) == (413, 413) and "exceeds the limit" in answer["error"]["message"]


def test_a_form_encoded_body_is_refused_with_the_content_type_to_use(api):
    status, answer = api.call(f"{ANALYZE}?key={api.key}", raw=b"comment=x",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and "Content-Type: application/json" in answer["error"]["message"]


@pytest.mark.parametrize("key", [None, "", "pal_nope"])
def test_requests_without_a_valid_key_are_refused(api, key):
    status, answer = api.analyze(request(), key=key)
    assert (status, answer["error"]["code"], answer["error"]["status"]) == (401, 401, "UNAUTHENTICATED")
    assert "API key" in answer["error"]["message"]


@pytest.mark.parametrize("header", ["X-Goog-Api-Key", "Authorization"])
def test_the_key_may_come_in_a_header(api, header):
    value = f"Bearer {api.key}" if header == "Authorization" else api.key
    status, answer = api.call(ANALYZE, request(), headers={"Content-Type": "application/json", header: value})
    assert status == 200 and summary(answer) > 0.5


def test_a_revoked_key_is_refused_from_the_next_request(api):
    assert api.analyze(request())[0] == 200
    with api.database.session() as session:
        revoke_client(session, session.scalars(select(ApiClient)).one())
    status, answer = api.analyze(request())
    assert (status, answer["error"]["status"]) == (403, "PERMISSION_DENIED") and "revoked" in answer["error"]["message"]


def test_without_a_model_the_answer_is_503_unavailable(tmp_path, sqlite_url):
    database, key = new_key(sqlite_url)
    with serving(build_app(sqlite_url, tmp_path / "no-models"), key, database) as api:
        status, answer = api.analyze(request())
    database.engine.dispose()
    assert (status, answer["error"]["code"], answer["error"]["status"]) == (503, 503, "UNAVAILABLE")
    assert "No model is active" in answer["error"]["message"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_any_json_body_gets_scores_or_perspectives_400_never_a_crash(api, body):
    status, answer = api.analyze(body)
    assert status in (200, 400), answer
    if status == 400:
        assert answer["error"]["code"] == 400 and answer["error"]["status"] == "INVALID_ARGUMENT" and answer["error"]["message"]
        return
    for name, scores in answer.get("attributeScores", {}).items():
        assert name in body["requestedAttributes"] and 0 <= scores["summaryScore"]["value"] <= 1
        assert all(0 <= span["begin"] < span["end"] <= len(body["comment"]["text"].encode("utf-16-le")) // 2
                   for span in scores.get("spanScores", []))


SUGGEST_SCORE = "/v1alpha1/comments:suggestscore"


def suggestion(text=INSULT, value=0.0):
    """A SuggestCommentScore request, as Coral sends one with "send feedback" on when a moderator overrules a score."""
    return {"comment": {"text": text}, "attributeScores": {"TOXICITY": {"summaryScore": {"value": value}}},
            "languages": ["fr"], "clientToken": "comment:42", "communityId": "Coral:site"}


@pytest.mark.parametrize("where", ["key", "X-Goog-Api-Key", "Authorization"])
def test_score_suggestions_are_refused_as_unimplemented_saying_palabre_learns_from_its_review_queue(api, where):
    headers = {"Content-Type": "application/json"}
    if where != "key":
        headers[where] = f"Bearer {api.key}" if where == "Authorization" else api.key
    status, answer = api.call(SUGGEST_SCORE + (f"?key={api.key}" if where == "key" else ""), suggestion(), headers=headers)
    assert (status, answer["error"]["code"], answer["error"]["status"]) == (501, 501, "UNIMPLEMENTED")
    assert "does not take score suggestions" in answer["error"]["message"] and "review queue" in answer["error"]["message"]
    with api.database.session() as session:
        assert session.scalar(select(func.count()).select_from(Comment)) == 0


@pytest.mark.parametrize("key", [None, "pal_nope", "revoked"])
def test_a_suggestion_without_a_valid_key_is_refused_for_its_key_first(api, key):
    if key == "revoked":
        with api.database.session() as session:
            revoke_client(session, session.scalars(select(ApiClient)).one())
    query = "" if key is None else "?key=" + (api.key if key == "revoked" else key)
    status, answer = api.call(SUGGEST_SCORE + query, suggestion())
    assert (status, answer["error"]["status"]) == ((403, "PERMISSION_DENIED") if key == "revoked" else (401, "UNAUTHENTICATED"))
