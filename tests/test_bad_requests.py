"""One bad request never fails another, over real HTTP: every field is checked before comments are batched together,
and a comment that still makes a batch fail fails alone."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from moderation import create_app
from moderation import settings as site_settings
from moderation.api.clients import create_client
from moderation.comments.models import Comment
from moderation.database import Database
from moderation.intake import Intake

from .conftest import LiveServer, incoming

OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."
ARTICLE = {"id": "politique-lots", "title": "Référendum : le projet de nouvelle Constitution soumis au vote"}
OUT_OF_RANGE = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2026-01-01T00:00:00+24:00",
                "2026-01-01T00:00:00-24:00", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "0001-01-01", "9999-12-31T23:59:59"]


class Server:
    """A running server with two clients of the API: two sites, or two comment systems of one site."""

    def __init__(self, url: str, keys: list[str], database: Database):
        self.url, self.keys, self.database = url, keys, database

    def post(self, path: str, body, client: int = 0) -> tuple[int, dict]:
        """One API request from one client; (status, JSON answer)."""
        response = requests.post(self.url + path, json=body, headers={"Authorization": f"Bearer {self.keys[client]}"}, timeout=60)
        assert response.headers["Content-Type"].startswith("application/json"), response.text[:300]
        return response.status_code, response.json()

    def stored(self) -> set[str]:
        """The ids of the comments stored."""
        with self.database.session() as session:
            return set(session.scalars(select(Comment.external_id)))


@pytest.fixture
def server(models_dir, database_url):
    """A server with 16 threads (so that requests arriving together are received together), on SQLite and PostgreSQL."""
    database = Database(database_url)
    with database.session() as session:
        site_settings.set_qa_share(session, 0.0)
        keys = [create_client(session, name)[1] for name in ("site-a", "site-b")]
    app = create_app({"DATABASE_URL": database_url, "MODELS_DIR": str(models_dir),
                      "API_RATE_PER_SECOND": 10_000.0, "API_RATE_BURST": 10_000.0})
    app.config["PROPAGATE_EXCEPTIONS"] = False
    live = LiveServer(app, threads=16)
    yield Server(live.url, keys, database)
    live.close()
    app.extensions["palabre.database"].engine.dispose()
    database.engine.dispose()


def comment(comment_id: str, **fields) -> dict:
    """A comment as a site sends it."""
    return {"id": comment_id, "text": f"{OPINION} ({comment_id})", "article": ARTICLE, **fields}


@pytest.mark.parametrize("created_at", OUT_OF_RANGE)
def test_a_date_out_of_range_is_refused_by_name(server, created_at):
    """The probe's dates (and their kin) get 422 naming created_at, and nothing is stored."""
    status, answer = server.post("/api/v1/comments", comment("dated", created_at=created_at))
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (422, "invalid_field", "created_at")
    assert answer["error"]["message"] and server.stored() == set()


def test_bad_dates_from_one_client_do_not_fail_another_clients_comments(server):
    """The probe's run: 10 requests with impossible dates from one client among 30 good ones from another, all at
    once. The 30 are stored and answered 201; the 10 are told what is wrong with their date."""
    bad = [("site-a", comment(f"bad-{n}", created_at=OUT_OF_RANGE[n % 2]), 0) for n in range(10)]
    good = [("site-b", comment(f"good-{n}", created_at="2026-12-01T10:00:00+00:00"), 1) for n in range(30)]
    mixed = [item for pair in zip(good[::3], good[1::3], good[2::3], bad) for item in pair]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda item: (item[1]["id"], server.post("/api/v1/comments", item[1], item[2])), mixed))
    statuses = {comment_id: status for comment_id, (status, _) in answers}
    assert [statuses[f"good-{n}"] for n in range(30)] == [201] * 30
    assert {statuses[f"bad-{n}"] for n in range(10)} == {422}
    assert server.stored() == {f"good-{n}" for n in range(30)}


def test_a_batch_answers_each_comment_and_stores_the_good_ones(server):
    """In /comments/batch a bad date (or any bad field) refuses only its own comment, named by its place."""
    items = [comment("b-0"), comment("b-1", created_at="9999-12-31T23:59:59-23:59"), comment("b-2"),
             comment("b-3", author={"id": 1.5}), comment("b-4", created_at="2026-11-30T08:00:00+01:00")]
    status, answer = server.post("/api/v1/comments/batch", {"comments": items})
    assert status == 200
    results = answer["results"]
    assert [r.get("status") for r in results] == ["published", None, "published", None, "published"]
    assert [r["error"]["field"] for r in results if "error" in r] == ["created_at", "author.id"]
    assert server.stored() == {"b-0", "b-2", "b-4"}


class _FailsOn:
    """The serving scorer, except that it fails on one text: a fault no check can foresee."""

    def __init__(self, scorer, text: str):
        self._scorer, self._text = scorer, text

    def __getattr__(self, name):
        return getattr(self._scorer, name)

    def score(self, text, article=None):
        """Fail on the poisoned text; score the others as the model does."""
        if text == self._text:
            raise RuntimeError("the model failed on this text")
        return self._scorer.score(text, article)


def test_a_comment_that_fails_inside_a_batch_fails_alone(database, scorer):
    """Requests handed to the intake together, one of which makes receiving fail: only that request hears the error,
    every other comment is stored and answered."""
    poisoned = "Ce texte fait échouer le modèle."
    intake = Intake(database, lambda: _FailsOn(scorer, poisoned))
    start = threading.Barrier(12)
    outcomes = {}

    def hand(comment_id, text):
        start.wait()
        try:
            outcomes[comment_id] = intake.receive(incoming(comment_id, text)).outcome
        except RuntimeError as error:
            outcomes[comment_id] = str(error)

    threads = [threading.Thread(target=hand, args=(f"c{n}", poisoned if n == 5 else f"{OPINION} ({n})")) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.pop("c5") == "the model failed on this text"
    assert set(outcomes.values()) == {"created"} and len(outcomes) == 11
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Comment)) == 11


ZONES = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-1439, 1439))
MOMENTS = st.one_of(
    st.datetimes(timezones=ZONES).map(datetime.isoformat),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(lambda d: d.isoformat() + "Z"),
    st.text(max_size=40),
)
ANY_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                        max_leaves=6)


@st.composite
def odd_comments(draw, number: int) -> dict:
    """A comment whose every field may be missing, of the wrong type, empty, huge or strange."""
    body = {"id": draw(st.one_of(st.just(f"odd-{number}"), ANY_JSON)), "text": draw(st.one_of(st.just(OPINION), ANY_JSON))}
    fields = {"article": st.one_of(st.just(ARTICLE), st.fixed_dictionaries({"id": ANY_JSON, "title": ANY_JSON}), ANY_JSON),
              "author": st.one_of(st.fixed_dictionaries({"id": ANY_JSON, "name": ANY_JSON}), ANY_JSON),
              "created_at": st.one_of(MOMENTS, ANY_JSON), "language": ANY_JSON}
    for name, strategy in fields.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return body


@given(batch=st.lists(st.integers(0, 10**6), min_size=1, max_size=12).flatmap(
    lambda numbers: st.tuples(*(odd_comments(n) for n in numbers))))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
def test_any_batch_gets_a_result_or_a_named_error_for_each_comment(server, batch):
    """Whatever each comment holds, the batch is answered 200 with, for each, its result or an error naming the field;
    a well-formed neighbour is stored whatever the others hold."""
    body = list(batch) + [comment(f"neighbour-{len(batch)}-{abs(hash(str(batch)))}")]
    status, answer = server.post("/api/v1/comments/batch", {"comments": body})
    assert status == 200, answer
    for result in answer["results"]:
        assert "status" in result or (result["error"]["code"] in ("invalid_field", "unknown_article") and result["error"]["message"])
    assert answer["results"][-1]["status"] == "published"
