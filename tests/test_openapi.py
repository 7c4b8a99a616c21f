"""The OpenAPI document matches what the API does: schemathesis generates requests from it, valid and not, and checks every answer.

Every check runs except "schema-valid data is accepted": some refusals depend on stored state
the document cannot express (an unknown article without a title, text with no visible
character), and those are 422s that name the field, which the other checks hold to the document.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode


@pytest.fixture(scope="module")
def api_app(keyed_app):
    """The app on its own database, with one key, for the whole module."""
    return keyed_app[0]

def test_the_document_is_served_without_a_key_and_names_every_route(api_app):
    document = api_app.test_client().get("/api/openapi.json").json
    assert document["openapi"].startswith("3.")
    routes = {rule.rule.replace("<path:", "{").replace(">", "}") for rule in api_app.url_map.iter_rules() if rule.rule.startswith("/api/v1")}
    assert routes == set(document["paths"])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_matches_the_document_and_none_is_a_server_error(keyed_app, mode):
    api_app, key = keyed_app
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", api_app)
    headers = {"Authorization": f"Bearer {key}"}

    @given(case=schema.as_strategy(mode))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    def check(case):
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    check()
