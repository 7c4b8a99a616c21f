"""The web app through Flask's test client: who may see what, and what moderators and admins can do."""

import html
import re

import pytest
from sqlalchemy import select

from moderation import settings
from moderation.admin.models import ApiClient
from moderation.comments.models import Article, Comment, Decision
from moderation.destinations import ALLOW_PRIVATE
from moderation.receiving import receive_comment
from moderation.service import set_premoderation

from .conftest import PASSWORD, csrf_token, incoming, login

# On the article's subject, so it is flagged toxic and not also off-topic.
INSULT = "Espèce de crétin, ferme ta sale gueule avec ton référendum sur la Constitution"
SPAM = "Gagnez 500 000 FCFA par jour depuis chez vous, écrivez-moi vite sur WhatsApp"
OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."


def receive(app, scorer, *comments):
    """Receive comments through the service into the app's database; return their ids."""
    with app.extensions["palabre.database"].session() as session:
        return [receive_comment(session, scorer, comment).comment.id for comment in comments]


@pytest.fixture
def site(app, scorer):
    """A flagged insult, an off-topic ad and a published opinion, with the QA sample off."""
    with app.extensions["palabre.database"].session() as session:
        settings.set_qa_share(session, 0.0)
        session.commit()
    insult, spam, opinion = receive(app, scorer, incoming("w1", INSULT, author_id="a1", author_name="Kouadio"),
                                    incoming("w2", SPAM, author_id="a2"), incoming("w3", OPINION, author_id="a1"))
    with app.extensions["palabre.database"].session() as session:
        article = session.get(Comment, insult).article_id
    return {"insult": insult, "spam": spam, "opinion": opinion, "article": article}


def fetch(app, query):
    """Run a query on the app's database in a fresh session."""
    with app.extensions["palabre.database"].session() as session:
        return session.execute(query).scalars().all()


def text_of(response) -> str:
    """What a reader sees of a page: the HTML with entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def shown_comment_text(page: str) -> str:
    """The HTML of the first comment text on a page, without its highlight marks."""
    block = re.search(r'<div class="comment-text" dir="auto">(.*?)</div>', page, re.S).group(1)
    return re.sub(r"</?mark[^>]*>", "", block)


def post(client, path, data=None, token_from="/queue", **kwargs):
    """POST a form with the CSRF token a page of the app gave."""
    return client.post(path, data={"csrf_token": csrf_token(client, token_from), **(data or {})}, **kwargs)


PAGES = ["/", "/queue", "/articles", "/articles/{article}", "/comments/{insult}", "/history"]
ADMIN_PAGES = ["/admin/", "/admin/dashboard", "/admin/clients", "/admin/users", "/admin/thresholds", "/admin/premoderation"]
FORMS = [("/queue/bulk", {"action": "approve", "comment": "{spam}:1"}),
         ("/comments/{insult}/decision", {"action": "reject", "reason": "toxic"}),
         ("/articles/{article}/premoderation", {"premoderated": "on"})]
ADMIN_FORMS = [("/admin/users", {"username": "nouveau", "role": "moderator"}),
               ("/admin/users/1", {"action": "unlock"}),
               ("/admin/thresholds", {"qa_share": "2"}),
               ("/admin/clients", {"name": "site", "webhook_url": "https://site.example/hooks"}),
               ("/admin/premoderation", {"article": "politique-test", "premoderated": "on"})]
SHOWN_IN_ANSWER = ["/admin/users", "/admin/clients"]  # creating here answers with the page and its one-time secret


@pytest.mark.parametrize("who", [None, "mona", "ada"])
def test_every_route_answers_right_for_visitors_moderators_and_admins(client, site, who):
    if who:
        assert login(client, who).status_code == 302
    for template in PAGES + ADMIN_PAGES:
        path = template.format(**site)
        response = client.get(path)
        if who is None:
            assert response.status_code == 302 and response.location.startswith("/login?next="), path
        elif template in ADMIN_PAGES and who == "mona":
            assert response.status_code == 403, path
        else:
            assert response.status_code in (200, 302) and "/login" not in (response.location or ""), path
    for template, data in FORMS + ADMIN_FORMS:
        path = template.format(**site)
        response = post(client, path, {key: value.format(**site) for key, value in data.items()},
                        token_from="/queue" if who else "/login")
        if who is None:
            assert response.status_code == 302 and response.location.startswith("/login"), path
        elif (template, data) in ADMIN_FORMS and who == "mona":
            assert response.status_code == 403, path
        elif template in SHOWN_IN_ANSWER:
            assert response.status_code == 200, path
        else:
            assert response.status_code == 302 and "/login" not in response.location, path
    for path in ("/login", "/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code in ((302,) if who and path == "/login" else (200,)), path


def test_a_visitor_is_sent_to_login_and_back_to_the_page_asked_for(client, site):
    assert client.get("/history").location == "/login?next=%2Fhistory"
    token = csrf_token(client, "/login?next=/history")
    response = client.post("/login?next=/history", data={"username": "mona", "password": PASSWORD, "csrf_token": token})
    assert response.location == "/history"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_site(client, target):
    token = csrf_token(client)
    response = client.post(f"/login?next={target}", data={"username": "mona", "password": PASSWORD, "csrf_token": token})
    assert response.location == "/queue"


def test_five_wrong_passwords_hold_the_account_back_on_a_new_browser_until_an_admin_unlocks_it(client, app):
    for _ in range(5):
        assert "Nom d'utilisateur inconnu ou mot de passe incorrect." in text_of(login(client, "mona", "mauvais"))
    held_back = text_of(login(client, "mona"))
    assert re.search(r"Trop d'échecs de connexion\u00a0: réessayez après \d\d:\d\d\.", held_back), \
        "the right password must wait like the wrong ones"
    admin = app.test_client()
    login(admin, "ada")
    post(admin, "/admin/users/1", {"action": "unlock"})
    assert login(client, "mona").status_code == 302


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(client, site, app):
    login(client, "mona")
    response = client.post(f"/comments/{site['insult']}/decision", data={"action": "approve"})
    assert response.status_code == 400
    assert "expir" in response.get_data(as_text=True)
    assert fetch(app, select(Comment.status).where(Comment.id == site["insult"])) == ["pending"]


def test_session_cookie_is_httponly_and_samesite_and_pages_forbid_inline_scripts(client):
    response = login(client, "mona")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "script-src 'self'" in client.get("/queue").headers["Content-Security-Policy"]



def test_browsers_are_told_to_stay_on_https_only_when_the_site_is_served_over_it(client, app):
    assert "Strict-Transport-Security" not in client.get("/login").headers, "plain HTTP: a header browsers would ignore"
    secure = client.get("/login", base_url="https://palabre.example")
    assert secure.headers["Strict-Transport-Security"] == "max-age=15552000"
    app.config["SESSION_COOKIE_SECURE"] = True  # MODERATION_SECURE_COOKIES=1: TLS ends at a proxy in front
    assert client.get("/login").headers["Strict-Transport-Security"] == "max-age=15552000"

def test_the_queue_shows_waiting_comments_with_highlights_and_not_published_ones(client, site):
    login(client, "mona")
    page = client.get("/queue").get_data(as_text=True)
    assert f'id="comment-{site["insult"]}"' in page and f'id="comment-{site["spam"]}"' in page
    assert f'id="comment-{site["opinion"]}"' not in page
    assert re.search(r'<mark class="hl hl-toxic[^"]*"[^>]*>[^<]*(crétin|gueule)', page)
    assert "Kouadio" in page and "2 commentaires en attente" in page


def test_queue_filters_narrow_the_list_and_a_bad_filter_is_named(client, site):
    login(client, "mona")
    page = client.get("/queue?label=off_topic").get_data(as_text=True)
    assert f'id="comment-{site["spam"]}"' in page and f'id="comment-{site["insult"]}"' not in page
    page = client.get("/queue?min_score=2&label=nonsense").get_data(as_text=True)
    assert "min_score" in page and "label" in page and f'id="comment-{site["insult"]}"' in page
    page = client.get(f"/queue?article={site['article'] + 1000}").get_data(as_text=True)
    assert 'id="comment-' not in page


def test_approving_and_rejecting_record_confirm_or_override(client, site, app):
    login(client, "mona")
    reply = post(client, f"/comments/{site['insult']}/decision", {"action": "reject", "reason": "toxic", "revision": "1"},
                 headers={"Accept": "application/json"})
    assert reply.status_code == 200 and reply.json["ok"] and reply.json["verdict"] == "confirm"
    response = post(client, f"/comments/{site['spam']}/decision", {"action": "approve", "next": "/queue"})
    assert response.status_code == 302 and response.location == "/queue"
    verdicts = fetch(app, select(Decision.verdict).where(Decision.decided_by == "moderator").order_by(Decision.id))
    assert verdicts == ["confirm", "override"]


def test_a_second_decision_is_refused_with_a_clear_message(client, site, app):
    login(client, "mona")
    post(client, f"/comments/{site['insult']}/decision", {"action": "reject", "reason": "toxic"})
    post(client, "/logout")
    login(client, "marc")
    reply = post(client, f"/comments/{site['insult']}/decision", {"action": "approve"}, headers={"Accept": "application/json"})
    assert reply.status_code == 409 and not reply.json["ok"]
    assert "mona" in reply.json["message"] and ("rejeté" in reply.json["message"] or "rejected" in reply.json["message"])
    assert fetch(app, select(Comment.status).where(Comment.id == site["insult"])) == ["rejected"]


def test_rejecting_without_a_reason_is_refused_and_says_so(client, site):
    login(client, "mona")
    reply = post(client, f"/comments/{site['insult']}/decision", {"action": "reject"}, headers={"Accept": "application/json"})
    assert reply.status_code == 422 and "1" in reply.json["message"] and "4" in reply.json["message"]


def test_comments_a_moderator_has_open_are_hidden_from_the_others(client, app, site):
    login(client, "mona")
    client.get("/queue")
    other = app.test_client()
    login(other, "marc")
    page = other.get("/queue").get_data(as_text=True)
    assert 'id="comment-' not in page
    assert "2" in re.search(r'<p class="muted">([^<]*)</p>', page).group(1)
    reply = post(other, f"/comments/{site['insult']}/decision", {"action": "approve"}, headers={"Accept": "application/json"})
    assert reply.status_code == 409 and "mona" in reply.json["message"]


def test_bulk_approve_decides_the_ticked_comments_and_reports_refusals(client, site, app):
    login(client, "mona")
    post(client, f"/comments/{site['insult']}/decision", {"action": "reject", "reason": "toxic"})
    response = post(client, "/queue/bulk", {"action": "approve", "comment": [f"{site['spam']}:1", f"{site['insult']}:1"]})
    assert "1 commentaire approuvé." in text_of(client.get(response.location))
    statuses = fetch(app, select(Comment.status).where(Comment.id.in_([site["spam"], site["insult"]])).order_by(Comment.id))
    assert statuses == ["rejected", "published"]
    assert "Aucun commentaire n'attend d'examen" in text_of(client.get("/queue"))


def test_comment_text_is_shown_as_text_with_invisible_characters_made_visible(client, app, scorer):
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)> idiot\u200b \u202eesrever\u202c « أهلا » 🙂'
    long_text = "Mot " * 2600
    [hostile_id] = receive(app, scorer, incoming("h1", hostile, article="premod"))
    with app.extensions["palabre.database"].session() as session:
        set_premoderation(session, session.scalars(select(Article).where(Article.external_id == "premod")).one(), True)
    [long_id] = receive(app, scorer, incoming("h2", long_text, article="premod"))
    login(client, "ada")
    for path in ("/queue", f"/comments/{hostile_id}"):
        page = client.get(path).get_data(as_text=True)
        assert shown_comment_text(page).startswith("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;")
        assert "<script>alert" not in page and "<img src=x" not in page
        assert 'title="U+200B ZERO WIDTH SPACE"' in page and 'title="U+202E RIGHT-TO-LEFT OVERRIDE"' in page
        assert "\u202e" not in page and "أهلا" in page and "🙂" in page
    queue = text_of(client.get("/queue"))
    assert "9200 caractères de plus" in queue and f"/comments/{long_id}" in queue
    assert long_text in shown_comment_text(client.get(f"/comments/{long_id}").get_data(as_text=True))


def test_the_comment_page_shows_revisions_decisions_and_the_authors_other_comments(client, app, scorer, site):
    receive(app, scorer, incoming("w1", INSULT + " et ta famille aussi", author_id="a1"))
    login(client, "mona")
    page = client.get(f"/comments/{site['insult']}").get_data(as_text=True)
    assert INSULT in page and INSULT + " et ta famille aussi" in page
    assert f"/comments/{site['opinion']}" in page
    assert page.count('class="status status-pending"') >= 2


def test_history_lists_decisions_and_filters_by_moderator_and_overrides(client, site):
    login(client, "mona")
    post(client, f"/comments/{site['insult']}/decision", {"action": "reject", "reason": "toxic"})
    post(client, f"/comments/{site['spam']}/decision", {"action": "approve"})
    everything = client.get("/history").get_data(as_text=True)
    assert everything.count("<tr><td><time") == 5
    overrides = client.get("/history?verdict=override").get_data(as_text=True)
    assert overrides.count("<tr><td><time") == 1 and f"/comments/{site['spam']}" in overrides
    assert client.get("/history?moderator=marc").get_data(as_text=True).count("<tr><td><time") == 0


def test_an_admin_creates_an_account_whose_password_is_shown_once_and_works(client, app):
    login(client, "ada")
    page = text_of(post(client, "/admin/users", {"username": "nadia", "role": "moderator"}))
    password = re.search(r"nadia[^<]*<code>([A-Za-z0-9_-]{16})</code>", page).group(1)
    assert password not in client.get("/admin/users").get_data(as_text=True)
    again = client.get(post(client, "/admin/users", {"username": "nadia", "role": "moderator"}).location).get_data(as_text=True)
    assert "nadia" in again and ("pris" in again or "taken" in again)
    other = app.test_client()
    assert login(other, "nadia", password).status_code == 302
    assert other.get("/admin/users").status_code == 403


def test_thresholds_set_by_an_admin_change_what_waits_and_bad_values_are_refused(client, app, scorer, site):
    login(client, "ada")
    post(client, "/admin/thresholds", {"toxic_review": "1", "toxic_reject": "", "qa_share": "0"})
    [calm] = receive(app, scorer, incoming("t1", "Ce ministre est un crétin, son projet de Constitution aussi"))
    assert fetch(app, select(Comment.toxic_flag).where(Comment.id == calm)) == [False]
    page = text_of(client.get(post(client, "/admin/thresholds", {"toxic_review": "2", "qa_share": "0"}).location))
    assert "de 0 à 1" in page and 'value="1.0"' in page


def test_premoderating_an_article_from_the_admin_page_holds_its_clean_comments(client, app, scorer, site):
    login(client, "ada")
    post(client, "/admin/premoderation", {"article": "politique-test", "premoderated": "on"})
    assert "politique-test" in client.get("/admin/premoderation").get_data(as_text=True)
    [held] = receive(app, scorer, incoming("p1", OPINION + " Je voterai quand même."))
    assert fetch(app, select(Comment.status).where(Comment.id == held)) == ["pending"]
    page = client.get(post(client, "/admin/premoderation", {"article": "inconnu", "premoderated": "on"}).location).get_data(as_text=True)
    assert "inconnu" in page


def test_unknown_pages_and_comments_get_a_page_in_the_users_language(client):
    login(client, "mona")
    response = client.get("/comments/999999")
    assert response.status_code == 404 and "Il n'y a rien à cette adresse." in text_of(response)
    assert client.get("/nowhere", headers={"Accept-Language": "en"}).status_code == 404


def test_readiness_reports_the_model_and_database(client, scorer):
    assert client.get("/readyz").json == {"status": "ok", "model_version": scorer.version}


def test_the_dashboard_counts_todays_comments_decisions_and_overrides(client, site):
    login(client, "mona")
    post(client, f"/comments/{site['insult']}/decision", {"action": "reject", "reason": "toxic"})
    post(client, f"/comments/{site['spam']}/decision", {"action": "approve"})
    post(client, "/logout")
    login(client, "ada")
    page = text_of(client.get("/admin/dashboard"))
    today = re.search(r"<tbody>\s*<tr><td>[^<]+</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>\s*<td>([^<]+)</td>", page)
    assert today.groups() == ("3", "1", "2", "50\xa0%")
    assert re.search(r'<td><a href="/history\?moderator=mona">mona</a></td><td>2</td><td>1</td>', page)
    assert page.count("<svg") == 2 and '<span class="big">0</span> en attente' in page


@pytest.mark.parametrize("path", ["/queue?language=fr%00", "/history?moderator=%00", "/queue?page=1000000000000000000000000000000"])
def test_odd_query_strings_get_a_clear_answer_not_an_error(client, site, path):
    login(client, "mona")
    response = client.get(path)
    if "%00" in path:
        assert response.status_code == 400 and "NUL" in text_of(response)
    else:
        assert response.status_code == 200


def test_a_nul_in_the_login_form_is_refused_by_name(client):
    token = csrf_token(client)
    response = client.post("/login", data={"username": "mo\x00na", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 400 and "username" in text_of(response)


def test_an_article_url_that_is_not_http_is_shown_but_not_linked(client, app, scorer):
    [comment] = receive(app, scorer, incoming("u1", OPINION, article="lien", article_url="javascript:alert(1)"))
    login(client, "mona")
    with app.extensions["palabre.database"].session() as session:
        article_id = session.get(Comment, comment).article_id
    page = client.get(f"/articles/{article_id}").get_data(as_text=True)
    assert "javascript:alert(1)" in page and 'href="javascript:' not in page


def test_an_admin_creates_an_api_client_sees_its_key_once_and_revokes_it(client, app):
    login(client, "ada")
    page = text_of(post(client, "/admin/clients", {"name": "site", "webhook_url": "https://site.example/h"}))
    key = re.search(r"(pal_[A-Za-z0-9_-]{43})", page).group(1)
    listing = text_of(client.get("/admin/clients"))
    assert key not in listing and key[:12] in listing
    from moderation.api.clients import authenticate

    found = authenticate(app.extensions["palabre.database"], key)
    secret, client_id = found.webhook_secret, found.id
    assert secret in text_of(client.get(f"/admin/clients/{client_id}"))
    post(client, f"/admin/clients/{client_id}", {"action": "revoke"}, token_from=f"/admin/clients/{client_id}")
    assert "révoqué" in text_of(client.get("/admin/clients"))



def test_an_admin_cannot_point_a_webhook_at_the_servers_own_network(client, app, monkeypatch):
    monkeypatch.delenv(ALLOW_PRIVATE)
    login(client, "ada")
    refused = text_of(post(client, "/admin/clients", {"name": "probe", "webhook_url": "http://169.254.169.254/latest/meta-data/"},
                        follow_redirects=True))
    assert "169.254.169.254 is a link-local address" in refused and "pal_" not in refused
    post(client, "/admin/clients", {"name": "site", "webhook_url": "https://site.example/h"})
    with app.extensions["palabre.database"].session() as session:
        site = session.scalars(select(ApiClient)).one()
    page = text_of(post(client, f"/admin/clients/{site.id}", {"webhook_url": "http://127.0.0.1:6379/"},
                        token_from=f"/admin/clients/{site.id}", follow_redirects=True))
    assert "127.0.0.1 is a loopback address" in page
    with app.extensions["palabre.database"].session() as session:
        assert session.get(ApiClient, site.id).webhook_url == "https://site.example/h", "the refused URL was not saved"

def test_metrics_count_comments_decisions_and_name_the_model(client, site, scorer):
    text = client.get("/metrics").get_data(as_text=True)
    assert 'palabre_comments{status="pending"} 2' in text and 'palabre_comments{status="published"} 1' in text
    assert 'palabre_decisions_total{decided_by="model"} 3' in text
    assert f'palabre_model_info{{version="{scorer.version}"}} 1' in text


def coral_secrets(app) -> list[str]:
    """The Coral signing secrets stored from the admin pages."""
    with app.extensions["palabre.database"].session() as session:
        return settings.coral_secrets(session)


def test_a_moderator_can_neither_see_nor_change_corals_signing_secrets(client, app):
    login(client, "mona")
    assert client.get("/admin/clients").status_code == 403
    assert post(client, "/admin/clients/coral", {"secret": "ssc_moderator"}).status_code == 403
    assert post(client, "/admin/clients/coral", {"action": "remove", "position": "0", "start": "ssc_"}).status_code == 403
    assert coral_secrets(app) == []


def test_a_coral_secret_without_the_forms_csrf_token_is_refused(client, app):
    login(client, "ada")
    assert client.post("/admin/clients/coral", data={"secret": "ssc_no_token"}).status_code == 400
    assert coral_secrets(app) == []


@pytest.mark.parametrize("secret, problem", [
    ("", "Le secret de signature est vide"),
    ("  \t ", "Le secret de signature est vide"),
    ("ssc_" + "a" * 296, "Le secret de signature fait 300 caractères\xa0; la limite est de 200."),
    ("ssc_ab\x07cd", "caractère invisible (U+0007) au caractère 7"),
    ("ssc_ab\ncd", "(U+000A) au caractère 7"),
    ("ssc_ab cd", "(U+0020) au caractère 7"),
    ("ssc_ab\u200bcd", "(U+200B) au caractère 7"),
])
def test_a_coral_secret_that_cannot_be_one_is_refused_naming_the_problem(client, app, secret, problem):
    login(client, "ada")
    page = text_of(client.get(post(client, "/admin/clients/coral", {"secret": secret}).location))
    assert problem in page and "Aucun secret de signature n'est configuré" in page
    assert coral_secrets(app) == []


def test_the_same_coral_secret_twice_and_a_removal_the_list_no_longer_matches_are_refused(client, app):
    login(client, "ada")
    post(client, "/admin/clients/coral", {"secret": "ssc_first_secret"})
    page = text_of(client.get(post(client, "/admin/clients/coral", {"secret": "ssc_first_secret"}).location))
    assert "Ce secret de signature est déjà accepté." in page
    stale = {"action": "remove", "position": "0", "start": "ssc_ot"}
    page = text_of(client.get(post(client, "/admin/clients/coral", stale).location))
    assert "rien n'a été retiré" in page and coral_secrets(app) == ["ssc_first_secret"]
    for position in ("1", "-1", "x", "9" * 5000):
        post(client, "/admin/clients/coral", {**stale, "position": position, "start": "ssc_fi"})
    assert coral_secrets(app) == ["ssc_first_secret"]
