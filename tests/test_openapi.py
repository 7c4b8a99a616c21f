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

from moderation import create_app
from moderation.api.clients import create_client
from moderation.database import Database

APP = {}


@pytest.fixture(scope="module")
def api_app(models_dir, sqlite_template, tmp_path_factory):
    """The app on its own database, with one key, for the whole module."""
    import shutil

    path = tmp_path_factory.mktemp("openapi") / "palabre.sqlite3"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    with database.session() as session:
        _, key = create_client(session, "schemathesis")
    database.engine.dispose()
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "MODELS_DIR": str(models_dir), "API_RATE_PER_SECOND": 10_000.0,
                      "API_RATE_BURST": 10_000.0})
    APP.update(app=app, key=key)
    yield app
    app.extensions["palabre.database"].engine.dispose()


def test_the_document_is_served_without_a_key_and_names_every_route(api_app):
    document = api_app.test_client().get("/api/openapi.json").json
    assert document["openapi"].startswith("3.")
    routes = {rule.rule.replace("<path:", "{").replace(">", "}") for rule in api_app.url_map.iter_rules() if rule.rule.startswith("/api/v1")}
    assert routes == set(document["paths"])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_matches_the_document_and_none_is_a_server_error(api_app, mode):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", api_app)
    headers = {"Authorization": f"Bearer {APP['key']}"}

    @given(case=schema.as_strategy(mode))
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    def check(case):
        case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

    check()
