"""Regression tests for hostile use of the web side: odd input, off-site redirects, sessions, lockout, claims,
and the store on both backends. Each test states what a moderator, an admin or an attacker sees.
"""

import re
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from moderation import settings
from moderation.auth.models import User
from moderation.comments.models import Comment, Decision
from moderation.database import Base, Database, load_tables, utcnow
from moderation.receiving import receive_comment
from moderation.service import claim
from moderation.validation import InputError

from .conftest import POSTGRES_MISSING, add_user, csrf_token, incoming, login

OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."
INSULT = "Espèce de crétin, ferme ta sale gueule"
BEYOND_64_BITS = "9" * 20
OFF_SITE = "https://evil.example/phish"


def make_app(url, models_dir, password_hash):
    """A web app on an emptied database with mona, marc (moderators) and ada (admin); errors answer 500 as in production."""
    from moderation import create_app

    load_tables()
    engine = create_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    database = Database(url)
    with database.session() as session:
        for username, role in (("mona", "moderator"), ("marc", "moderator"), ("ada", "admin")):
            add_user(session, username, role, password_hash)
        settings.set_qa_share(session, 1.0)
        session.commit()
    database.engine.dispose()
    app = create_app({"TESTING": True, "DATABASE_URL": url, "MODELS_DIR": str(models_dir)})
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


@pytest.fixture(params=["sqlite", "postgresql"])
def site_app(request, models_dir, sqlite_url, password_hash):
    """The app on SQLite and, where MODERATION_TEST_DATABASE_URL is set, on PostgreSQL; every new comment waits."""
    url = sqlite_url
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        if url is None:
            pytest.skip(POSTGRES_MISSING)
    app = make_app(url, models_dir, password_hash)
    yield app
    app.extensions["palabre.database"].engine.dispose()


@pytest.fixture
def quiet_app(app):
    """The conftest app (SQLite), answering a crash with the 500 page a browser would get instead of raising."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def receive(app, scorer, *comments, now=None):
    """Receive comments through the service into the app's database; return their ids."""
    with app.extensions["palabre.database"].session() as session:
        return [receive_comment(session, scorer, comment, now).comment.id for comment in comments]


def logged_in(app, username):
    """A browser of the app logged in as username."""
    client = app.test_client()
    assert login(client, username).status_code == 302
    return client


def post(client, path, data, **kwargs):
    """POST a form with the CSRF token the queue page gave."""
    return client.post(path, data={"csrf_token": csrf_token(client, "/queue"), **data}, **kwargs)


def user_id(app, username):
    """The id of an account."""
    with app.extensions["palabre.database"].session() as session:
        return session.scalar(select(User.id).where(User.username == username))


def is_off_site(location):
    """Whether a redirect leaves the site: another host, or a protocol-relative address a browser reads as one."""
    return bool(re.match(r"^([a-z][a-z0-9+.-]*:|[/\\][/\\\t])", location or "", re.I))


# Odd input gets a clear answer, never a server error ------------------------------------------------------------------


def test_a_superscript_digit_in_the_article_filter_is_named_not_a_server_error(site_app, scorer):
    """A moderator who types /queue?article=² gets the queue with a note that the Article filter was ignored,
    not a server error."""
    receive(site_app, scorer, incoming("c1", OPINION))
    response = logged_in(site_app, "mona").get("/queue?article=%C2%B2")
    assert response.status_code == 200
    assert "²" in response.get_data(as_text=True)


@pytest.mark.parametrize("value", ["\u00b2:1", "1:\u00b2", f"{BEYOND_64_BITS}:1"])
def test_bulk_reports_an_unreadable_ticked_value_instead_of_failing(site_app, scorer, value):
    """A bulk action with an unreadable ticked value ("²:1", a 20-digit id) reports that value and still decides
    the valid ticks."""
    good = receive(site_app, scorer, incoming("c1", OPINION))[0]
    client = logged_in(site_app, "mona")
    response = post(client, "/queue/bulk", {"action": "approve", "comment": [value, f"{good}:1"]})
    assert response.status_code == 302
    with site_app.extensions["palabre.database"].session() as session:
        assert session.get(Comment, good).status == "published"


@pytest.mark.parametrize("method,path", [
    ("GET", f"/comments/{BEYOND_64_BITS}"), ("GET", f"/articles/{BEYOND_64_BITS}"),
    ("POST", f"/comments/{BEYOND_64_BITS}/decision"), ("POST", f"/articles/{BEYOND_64_BITS}/premoderation"),
    ("POST", f"/admin/users/{BEYOND_64_BITS}"),
])
def test_an_id_too_large_for_the_database_is_not_found_not_a_server_error(site_app, method, path):
    """An id too large for the database (a typo, a scanner) gets "There is nothing at this address" like any other
    unknown id, on SQLite and PostgreSQL alike, not a server error."""
    client = logged_in(site_app, "ada")
    if method == "GET":
        response = client.get(path)
    else:
        response = post(client, path, {"action": "approve", "premoderated": "on"})
    assert response.status_code == 404
    assert "rien à cette adresse" in response.get_data(as_text=True), "ada reads the site in French"


# Redirects stay on the site -------------------------------------------------------------------------------------------


def test_the_language_switch_never_sends_the_user_off_site(quiet_app):
    """Switching language sends the moderator back to a page of Palabre, even when the page they came from
    was reached through an address like https://palabre.example//evil.example."""
    app = quiet_app
    client = logged_in(app, "mona")
    response = post(client, "/language", {"language": "en"}, headers={"Referer": "http://localhost//evil.example"})
    assert response.status_code == 302 and not is_off_site(response.location)


def test_bulk_never_redirects_to_the_site_a_referer_names(quiet_app):
    """After a bulk action the moderator stays on Palabre, whatever other site the Referer header names."""
    app = quiet_app
    client = logged_in(app, "mona")
    response = post(client, "/queue/bulk", {"action": "approve"}, headers={"Referer": OFF_SITE})
    assert response.status_code == 302 and not is_off_site(response.location)


def test_a_refused_decision_never_redirects_to_the_site_a_referer_names(quiet_app):
    """After a refused decision the moderator stays on Palabre, whatever other site the Referer header names."""
    app = quiet_app
    client = logged_in(app, "mona")
    response = post(client, "/comments/1/decision", {"action": "approve"}, headers={"Referer": OFF_SITE})
    assert response.status_code == 302 and not is_off_site(response.location)


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example"])
def test_the_decision_form_next_field_cannot_leave_the_site(quiet_app, scorer, target):
    """After a decision the moderator is redirected within Palabre, even when the form's next field hides
    another site behind a tab or a newline ("/<TAB>/evil.example")."""
    app = quiet_app
    comment = receive(app, scorer, incoming("c1", OPINION))[0]
    client = logged_in(app, "mona")
    response = post(client, f"/comments/{comment}/decision", {"action": "approve", "revision": "1", "next": target})
    assert response.status_code == 302 and not is_off_site(response.location)


# Sessions and logging in ---------------------------------------------------------------------------------------------


def test_a_new_password_ends_the_sessions_opened_with_the_old_one(quiet_app):
    """When an admin gives an account a new password, whoever was logged in with the old one is logged out."""
    app = quiet_app
    stolen = logged_in(app, "mona")
    admin = logged_in(app, "ada")
    response = admin.post(f"/admin/users/{user_id(app, 'mona')}",
                          data={"action": "password", "csrf_token": csrf_token(admin, "/admin/users")})
    assert response.status_code == 200
    assert stolen.get("/queue").status_code == 302


def test_logging_out_takes_a_post_with_the_token(quiet_app):
    """Logging out takes a POST with the CSRF token, so another site cannot log a moderator out with an image tag."""
    app = quiet_app
    client = logged_in(app, "mona")
    client.get("/logout")
    assert client.get("/queue").status_code == 200


def test_wrong_passwords_sent_at_once_still_hold_the_account_back(site_app):
    """Wrong passwords sent all at once hold the account back just as the same number sent one after another do."""
    barrier = threading.Barrier(20)

    def guess():
        """One wrong password, sent together with the others."""
        client = site_app.test_client()
        token = csrf_token(client)
        barrier.wait()
        client.post("/login", data={"username": "marc", "password": "pas le bon mot de passe", "csrf_token": token})

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = site_app.test_client()
    assert login(client, "marc").status_code == 200, "20 wrong passwords must hold the account back, as 5 in a row do"


def test_a_wrong_password_takes_as_long_for_an_unknown_username_as_for_a_known_one(quiet_app):
    """A failed login takes about as long for an unknown username as for a real one, so the answer time does not
    tell an attacker which accounts exist."""
    app = quiet_app
    client = app.test_client()
    token = csrf_token(client)

    def timed(username):
        """Seconds one failed login takes."""
        start = time.perf_counter()
        client.post("/login", data={"username": username, "password": "pas le bon mot de passe", "csrf_token": token})
        return time.perf_counter() - start

    known = [timed("marc") for _ in range(3)]
    unknown = [timed(f"personne{number}") for number in range(3)]
    assert min(known) < 5 * max(unknown), f"known {known} vs unknown {unknown}"


# Decisions and claims ------------------------------------------------------------------------------------------------


def test_a_decision_with_an_unreadable_revision_is_refused_not_recorded_on_unseen_text(quiet_app, scorer):
    """A decision whose revision field is unreadable is refused and recorded nowhere, so it never applies to text
    the moderator has not seen."""
    app = quiet_app
    comment = receive(app, scorer, incoming("c1", OPINION))[0]
    receive(app, scorer, incoming("c1", INSULT))
    client = logged_in(app, "mona")
    reply = post(client, f"/comments/{comment}/decision", {"action": "approve", "revision": "abc"},
                 headers={"Accept": "application/json"})
    assert not reply.json["ok"]
    with app.extensions["palabre.database"].session() as session:
        assert session.scalar(select(func.count()).select_from(Decision).where(Decision.decided_by == "moderator")) == 0


def test_the_queue_never_shows_a_comment_another_moderator_claimed_meanwhile(site_app, scorer, monkeypatch):
    """The queue shows a moderator only the comments they hold: comments another moderator opened while the page
    was being built are left out."""
    from moderation.queue import views

    app = site_app
    ids = receive(app, scorer, incoming("c1", OPINION), incoming("c2", INSULT))
    read = views.waiting

    def read_then_marc_claims(session, moderator, filters, page, now):
        """The page as mona reads it, with marc opening the same comments right after."""
        found = read(session, moderator, filters, page, now)
        with app.extensions["palabre.database"].session() as other:
            claim(other, other.scalar(select(User).where(User.username == "marc")), ids, now)
        return found

    monkeypatch.setattr(views, "waiting", read_then_marc_claims)
    page = logged_in(app, "mona").get("/queue").get_data(as_text=True)
    assert not re.findall(r'id="comment-(\d+)"', page)


def test_a_page_past_the_end_of_a_long_queue_does_not_say_the_queue_is_empty(quiet_app, scorer):
    """With over 2,000 comments waiting, a page number past the end still says how many wait and links back,
    never "Nothing waits for review"."""
    with quiet_app.extensions["palabre.database"].session() as session:
        settings.set_qa_share(session, 1.0)
        session.commit()
        receive_comment(session, scorer, incoming("c0", OPINION))
        copied = ("article_id, author_id, author_name, language, created_at, received_at, text, revision, toxic, off_topic, "
                  "top_score, toxic_flag, off_topic_flag, suggestion, review_reason, priority, status")
        session.execute(text(f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2100) "
                             f"INSERT INTO comments (external_id, {copied}) SELECT 'c' || i, {copied} FROM comments, n"))
        session.commit()
    page = logged_in(quiet_app, "mona").get("/queue?page=86").get_data(as_text=True)
    assert "plus de 2" in page
    assert "Beau travail" not in page and 'rel="prev"' in page


# The service on both backends ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("author_name", "x" * 300), ("author_id", "x" * 300), ("language", "fr-FR-x-nouchi-abidjan"),
    ("author_name", "Kou\x00adio"), ("article_title", "Référendum\x00"), ("article_url", "https://site.example/\x00"),
    ("author_name", "\ud83d"), ("article_body", "Le vote \udc00"),
])
def test_receive_refuses_by_name_a_field_it_cannot_store(session, scorer, database_url, field, value):
    """A comment with an author, language or article field the database cannot store (too long, a NUL, a lone surrogate)
    is refused with an error naming the field, on SQLite and PostgreSQL alike, and nothing is stored."""
    with pytest.raises(InputError) as refused:
        receive_comment(session, scorer, incoming("c1", OPINION, **{field: value}))
    assert field.split("_")[-1] in str(refused.value)
    assert session.scalar(select(func.count()).select_from(Comment)) == 0


# The dashboard on PostgreSQL -----------------------------------------------------------------------------------------


def test_the_dashboard_counts_utc_days_whatever_the_postgresql_time_zone(postgres_url, models_dir, password_hash, scorer):
    """The dashboard counts comments by UTC day whatever the PostgreSQL server's time zone: a comment received
    at 00:30 UTC today is counted today."""
    if postgres_url is None:
        pytest.skip(POSTGRES_MISSING)
    url = make_url(postgres_url).update_query_dict({"options": "-c timezone=Etc/GMT+12"}).render_as_string(hide_password=False)
    app = make_app(url, models_dir, password_hash)
    try:
        midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        receive(app, scorer, incoming("c1", OPINION), now=midnight + timedelta(minutes=30))
        page = logged_in(app, "ada").get("/admin/dashboard").get_data(as_text=True)
        rows = re.findall(r"<tr><td>[^<]*</td><td>(\d+)</td><td>\d+</td><td>\d+</td>", page)
        assert rows[0] == "1", f"today's row shows {rows[0]} comments received, yesterday's {rows[1]}"
    finally:
        app.extensions["palabre.database"].engine.dispose()
