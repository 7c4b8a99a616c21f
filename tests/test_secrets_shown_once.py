"""Over real HTTP: one-time secrets reach the admin's page but never the session cookie, pages showing a secret are
not cached, and /history's moderator filter shows moderators no more accounts than they need (issue 15, 4b and 6).
"""

import html
import re

import pytest
import requests
from sqlalchemy import select

from moderation.admin.models import ApiClient
from moderation.auth.models import User

from .conftest import PASSWORD, LiveServer, add_user


class Browser:
    """A requests session that follows redirects as a browser does and keeps every Set-Cookie the server sent."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()
        self.set_cookies: list[str] = []

    def get(self, path: str) -> requests.Response:
        """GET a page of the site."""
        return self._kept(self.http.get(self.url + path, timeout=30))

    def post(self, path: str, data: dict, token_from: str) -> requests.Response:
        """POST a form with the CSRF token the page `token_from` gave, as submitting that page's form would."""
        token = re.search(r'name="csrf_token" value="([^"]+)"', self.get(token_from).text).group(1)
        return self._kept(self.http.post(self.url + path, data={"csrf_token": token, **data}, timeout=30))

    def _kept(self, response: requests.Response) -> requests.Response:
        """Note the cookies set by the answer and by every redirect on the way to it."""
        for step in (*response.history, response):
            self.set_cookies += step.raw.headers.getlist("Set-Cookie")
        return response


@pytest.fixture
def site(app):
    """The app served over HTTP: (app, base URL)."""
    server = LiveServer(app)
    yield app, server.url
    server.close()


def logged_in(url: str, username: str, password: str = PASSWORD) -> Browser:
    """A browser logged in through the form."""
    browser = Browser(url)
    browser.post("/login", {"username": username, "password": password}, token_from="/login")
    return browser


def session_cookies(app, set_cookies: list[str]) -> list[tuple[str, object]]:
    """Each session cookie the server set: its raw value and what it holds once the signature is checked."""
    name = app.config["SESSION_COOKIE_NAME"]
    serializer = app.session_interface.get_signing_serializer(app)
    found = []
    for header in set_cookies:
        cookie_name, _, rest = header.partition("=")
        value = rest.split(";", 1)[0]
        if cookie_name == name and value:
            found.append((value, serializer.loads(value)))
    return found


def user_id(app, username: str) -> int:
    """An account's id."""
    with app.extensions["palabre.database"].session() as session:
        return session.scalar(select(User.id).where(User.username == username))


def shown_secret(page: requests.Response) -> str:
    """The secret a page shows: the last word of its marked box."""
    box = re.search(r'class="flash flash-secret"[^>]*>(.*?)</p>', page.text, re.S).group(1)
    return html.unescape(re.sub(r"<[^>]+>", " ", box)).split()[-1]


def admin_answers(app, url: str) -> tuple[Browser, dict[str, tuple[requests.Response, str]]]:
    """An admin creates an account, gives mona a new password and creates an API client: each answer and its secret."""
    admin = logged_in(url, "ada")
    created = admin.post("/admin/users", {"username": "nadia", "role": "moderator"}, token_from="/admin/users")
    renewed = admin.post(f"/admin/users/{user_id(app, 'mona')}", {"action": "password"}, token_from="/admin/users")
    client = admin.post("/admin/clients", {"name": "site", "webhook_url": "https://site.example/h"}, token_from="/admin/clients")
    return admin, {
        "account": (created, shown_secret(created)),
        "new password": (renewed, shown_secret(renewed)),
        "API key": (client, shown_secret(client)),
    }


def test_one_time_secrets_reach_the_page_but_never_a_session_cookie(site):
    app, url = site
    admin, answers = admin_answers(app, url)
    cookies = session_cookies(app, admin.set_cookies)
    assert cookies, "the admin's login must have set a session cookie"
    for what, (answer, secret) in answers.items():
        assert answer.status_code == 200 and secret in answer.text, what
        for raw, held in cookies:
            assert secret not in raw and secret not in repr(held), f"the {what} travelled in the session cookie"
    assert logged_in(url, "nadia", answers["account"][1]).get("/queue").url.endswith("/queue"), \
        "the password shown must open the new account"
    assert answers["API key"][1].startswith("pal_") and len(answers["new password"][1]) == 16


def test_every_page_showing_a_secret_is_sent_with_no_store(site):
    app, url = site
    admin, answers = admin_answers(app, url)
    for what, (answer, _) in answers.items():
        assert "no-store" in answer.headers.get("Cache-Control", ""), what
    with app.extensions["palabre.database"].session() as session:
        found = session.scalar(select(ApiClient).where(ApiClient.name == "site"))
    page = admin.get(f"/admin/clients/{found.id}")
    assert found.webhook_secret in page.text and "no-store" in page.headers.get("Cache-Control", "")
    for path in ("/admin/users", "/admin/clients", "/admin/dashboard"):
        assert "no-store" in admin.get(path).headers.get("Cache-Control", ""), path


def test_reloading_the_answer_page_makes_no_second_account_or_client(site):
    app, url = site
    admin = logged_in(url, "ada")
    for path, data, model, name in (("/admin/users", {"username": "nadia", "role": "moderator"}, User.username, "nadia"),
                                    ("/admin/clients", {"name": "site"}, ApiClient.name, "site")):
        first = admin.post(path, data, token_from=path)
        again = admin.post(path, data, token_from=path)
        assert first.status_code == 200 and "flash-secret" in first.text, path
        assert "flash-error" in again.text and name in again.text and "flash-secret" not in again.text, path
        with app.extensions["palabre.database"].session() as session:
            assert session.scalars(select(model).where(model == name)).all() == [name], path


def filter_names(page: requests.Response) -> list[str]:
    """The accounts offered in /history's moderator filter."""
    select_html = re.search(r'<select name="moderator">(.*?)</select>', page.text, re.S).group(1)
    return [html.unescape(name) for name in re.findall(r'<option value="([^"]+)"', select_html)]


def test_history_offers_moderators_only_active_moderators_and_admins_every_account(site):
    app, url = site
    with app.extensions["palabre.database"].session() as session:
        add_user(session, "nadia", "moderator", "unused hash")
    admin = logged_in(url, "ada")
    admin.post(f"/admin/users/{user_id(app, 'marc')}", {"action": "deactivate"}, token_from="/admin/users")
    assert filter_names(logged_in(url, "mona").get("/history")) == ["mona", "nadia"]
    assert filter_names(admin.get("/history")) == ["ada", "marc", "mona", "nadia"]
