"""The OpenAPI document matches what every machine-facing address does: schemathesis generates requests from it, valid
and not, and checks every answer.

Each surface (Palabre's API, Perspective, Coral) is run on its own, with what makes its requests
authentic: the API key as a Bearer token, the same key in Perspective's `key` query parameter, and
for Coral a signature of the exact body each request sends, made with the secret the app is
configured with. So the generated requests reach past the key checks into the code behind them.

Every check runs except "schema-valid data is accepted": some refusals depend on stored state
the document cannot express (an unknown article without a title, text with no visible
character), and those are 422s or 400s that name the field, which the other checks hold to the
document. Perspective's suggestscore answers 501 by design, so "not a server error" gives way
there to a check that it is exactly that refusal.
"""

import hashlib
import hmac
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from schemathesis.generation import GenerationMode
from werkzeug.test import EnvironBuilder

from moderation.integrations.coral import SIGNATURE_HEADER

CORAL_SECRET = "openapi-test-coral-secret"
MACHINE_PREFIXES = ("/api/v1/", "/v1alpha1/", "/integrations/", "/$discovery/")
SUGGEST_SCORE = "/v1alpha1/comments:suggestscore"


@pytest.fixture(scope="module")
def api_app(keyed_app):
    """The app on its own database, with one key and Coral's signing secret, for the whole module."""
    app, _ = keyed_app
    app.config["CORAL_SECRET"] = CORAL_SECRET
    return app


@pytest.fixture(scope="module")
def key(keyed_app):
    """The module's API key."""
    return keyed_app[1]


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: <path:comment_id> is {comment_id}."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule)


def test_the_document_is_served_without_a_key_and_names_every_route_a_machine_calls(api_app):
    document = api_app.test_client().get("/api/openapi.json").json
    assert document["openapi"].startswith("3.")
    routes = {(openapi_path(rule.rule), method.lower()) for rule in api_app.url_map.iter_rules()
              if rule.rule.startswith(MACHINE_PREFIXES) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert routes == documented


def coral_signature(case) -> str:
    """X-Coral-Signature as Coral writes it, for the exact bytes werkzeug's client will send as this case's body."""
    sent = case.as_transport_kwargs()
    builder = EnvironBuilder(data=sent.get("data"), json=sent.get("json"))
    raw = builder.input_stream.read() if builder.input_stream else b""
    builder.close()
    return "sha256=" + hmac.new(CORAL_SECRET.encode(), raw, hashlib.sha256).hexdigest()


def credentials(surface: str, case, key: str) -> dict:
    """What makes a generated request authentic, where each surface looks for it."""
    if surface == "coral":
        return {"headers": {SIGNATURE_HEADER: coral_signature(case)}}
    if surface == "perspective":
        return {"params": {"key": key}}
    return {"headers": {"Authorization": f"Bearer {key}"}}


@pytest.mark.parametrize("surface", ["api", "perspective", "coral"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_matches_the_document_and_none_is_a_server_error(api_app, key, mode, surface):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", api_app).include(tag=surface)

    @given(case=schema.as_strategy(mode))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    def check(case):
        refusing = case.operation.path == SUGGEST_SCORE
        excluded = [positive_data_acceptance, not_a_server_error] if refusing else [positive_data_acceptance]
        response = case.call_and_validate(excluded_checks=excluded, **credentials(surface, case, key))
        if not case.operation.schema.is_security_param_negated(case):
            assert response.status_code not in (401, 403), response.text
        if refusing:  # never anything but the refusal, or Palabre's 400 for a NUL character in the query string
            assert response.status_code == 501 or response.json()["error"]["code"] == "invalid_query", response.text

    check()
