"""Logging in over real HTTP: failures counted per account, per address and per known browser, the same answer for
every username, and a new session (and CSRF token) at login."""

import html
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import werkzeug.security
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from moderation import create_app
from moderation.database import Database

from .conftest import PASSWORD, LiveServer, add_user

WRONG = "Nom d'utilisateur inconnu ou mot de passe incorrect."
THROTTLED = re.compile("Trop d'échecs de connexion\u00a0: réessayez après (\\d\\d:\\d\\d)\\.")
CSRF_TOKEN = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
FLASH_ERROR = re.compile(r'<p class="flash flash-error">(.*?)</p>', re.S)


@pytest.fixture
def server(models_dir, database_url, password_hash):
    """The app served by waitress with 16 threads (attempts sent at once are handled at once), on SQLite and PostgreSQL.

    Accounts: mona and marc (moderators), ada (admin) and dora (deactivated); each one's password is PASSWORD.
    """
    database = Database(database_url)
    with database.session() as session:
        for username, role in (("mona", "moderator"), ("marc", "moderator"), ("ada", "admin")):
            add_user(session, username, role, password_hash)
        add_user(session, "dora", "moderator", password_hash, active=False)
    database.engine.dispose()
    app = create_app({"DATABASE_URL": database_url, "MODELS_DIR": str(models_dir)})
    live = LiveServer(app, threads=16)
    live.app = app
    yield live
    live.close()
    app.extensions["palabre.database"].engine.dispose()


class Browser:
    """One browser: its own cookies, talking to the live server from 127.0.0.1."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()

    def token(self, path="/login") -> str:
        """The CSRF token of a page's forms."""
        return CSRF_TOKEN.search(self.http.get(self.base + path, timeout=30).text).group(1)

    def post(self, path, data) -> requests.Response:
        """Send a form, without following the redirect."""
        return self.http.post(self.base + path, data=data, allow_redirects=False, timeout=60)

    def log_in(self, username, password=PASSWORD, token=None) -> requests.Response:
        """Fill in and send the login form."""
        return self.post("/login", {"username": username, "password": password, "csrf_token": token or self.token()})

    def log_out(self) -> None:
        """Press "Log out"."""
        assert self.post("/logout", {"csrf_token": self.token("/queue")}).status_code == 302


def refusal(response) -> str:
    """The message a refused login shows; a login let through fails the test."""
    assert response.status_code == 200, f"the login was not refused (HTTP {response.status_code})"
    messages = FLASH_ERROR.findall(response.text)
    assert len(messages) == 1, response.text[:500]
    return html.unescape(messages[0])


def test_a_strangers_wrong_passwords_do_not_stop_the_moderator_on_a_browser_she_used_before(server):
    mona = Browser(server.url)
    first = mona.log_in("mona")
    assert first.status_code == 302
    device = next(cookie for cookie in first.raw.headers.getlist("Set-Cookie") if cookie.startswith("palabre_device="))
    assert "HttpOnly" in device and "SameSite=Lax" in device and "Max-Age=31536000" in device
    mona.log_out()
    stranger = Browser(server.url)
    answers = [refusal(stranger.log_in("mona", f"devinette {number}")) for number in range(30)]
    assert answers[:5] == [WRONG] * 5 and all(THROTTLED.fullmatch(answer) for answer in answers[5:])
    assert THROTTLED.fullmatch(refusal(Browser(server.url).log_in("mona"))), "a new browser waits like the stranger"
    welcomed = mona.log_in("mona")
    assert welcomed.status_code == 302 and welcomed.headers["Location"] == "/queue"


def test_guesses_sent_at_once_get_five_passwords_checked_and_then_the_right_one_waits(server):
    browsers = [Browser(server.url) for _ in range(16)]
    tokens = [browser.token() for browser in browsers]
    together = threading.Barrier(16)

    def guess(browser, token):
        """One wrong password, sent with the fifteen others."""
        together.wait()
        return refusal(browser.log_in("marc", "pas le bon mot de passe", token))

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(guess, browsers, tokens))
    assert answers.count(WRONG) == 5, answers
    assert all(THROTTLED.fullmatch(answer) for answer in answers if answer != WRONG), answers
    assert THROTTLED.fullmatch(refusal(Browser(server.url).log_in("marc")))


@pytest.fixture
def password_checks(monkeypatch):
    """How many password hashes the server has computed (a check costs one; it is what a failed login's time is made of)."""
    checks = []
    hash_internal = werkzeug.security._hash_internal

    def counted(*args):
        checks.append(args[0])
        return hash_internal(*args)

    monkeypatch.setattr(werkzeug.security, "_hash_internal", counted)
    return checks


def test_unknown_deactivated_and_real_usernames_get_the_same_answers_and_one_password_check_each(server, password_checks):
    browser = Browser(server.url)
    attempts = {"personne": "pas le bon mot de passe", "dora": PASSWORD, "mona": "pas le bon mot de passe"}
    answers = {username: [] for username in attempts}
    for _ in range(6):
        for username, password in attempts.items():
            token = browser.token()
            checked_before = len(password_checks)
            answers[username].append(refusal(browser.log_in(username, password, token)))
            assert len(password_checks) - checked_before == 1, f"{username}: one password check per attempt"
    assert answers["mona"][:5] == [WRONG] * 5 and THROTTLED.fullmatch(answers["mona"][5])
    # The windows of the three names start within a second: only the minute they end at may differ.
    same_minute = {username: [THROTTLED.sub("HH:MM", answer) for answer in given] for username, given in answers.items()}
    assert same_minute["personne"] == same_minute["dora"] == same_minute["mona"]


def test_twenty_failures_from_one_address_hold_back_a_new_browser_there_whatever_the_username(server):
    stranger = Browser(server.url)
    for number in range(20):
        assert refusal(stranger.log_in(f"visiteur{number}", "pas le bon mot de passe")) == WRONG
    assert THROTTLED.fullmatch(refusal(Browser(server.url).log_in("marc")))


def test_moderators_logging_in_from_one_office_do_not_use_up_its_attempts(server):
    for number in range(21):
        assert Browser(server.url).log_in(("mona", "marc", "ada")[number % 3]).status_code == 302
    assert refusal(Browser(server.url).log_in("mona", "pas le bon mot de passe")) == WRONG


def test_guesses_from_many_addresses_count_against_the_account_but_not_against_a_known_browser(server):
    from moderation.auth import throttle
    from moderation.database import utcnow

    app, now = server.app, utcnow()
    with app.app_context(), app.extensions["palabre.database"].session() as session:
        counted = [throttle.reserve(session, [throttle.account_key("Mona"), throttle.address_key(f"10.0.{number}.1")], now)
                   for number in range(6)]
        assert counted[:5] == [None] * 5 and counted[5] == now + throttle.WINDOW
        assert throttle.reserve(session, [throttle.device_key("mona's laptop")], now) is None
        assert throttle.reserve(session, [throttle.account_key("mona")], now + throttle.WINDOW) is None, "a new window"


def test_logging_in_renews_the_session_so_a_planted_csrf_token_stops_working(server):
    browser = Browser(server.url)
    planted = browser.token()
    assert browser.post("/language", {"language": "en", "csrf_token": planted}).status_code == 302
    assert browser.log_in("mona", token=planted).status_code == 302
    assert browser.post("/language", {"language": "fr", "csrf_token": planted}).status_code == 400
    renewed = browser.token("/queue")
    assert renewed != planted
    assert "Log out" in browser.http.get(server.url + "/queue", timeout=30).text, "the language chosen before is kept"
    assert browser.post("/language", {"language": "fr", "csrf_token": renewed}).status_code == 302



def test_a_username_is_one_account_whatever_its_case(server, password_hash):
    database = server.app.extensions["palabre.database"]
    with database.session() as session:
        assert add_user(session, "Awa.Koné", "moderator", password_hash).username == "awa.koné"
        with pytest.raises(IntegrityError):
            add_user(session, "AWA.KONÉ", "moderator", password_hash)
    for typed in ("awa.koné", "AWA.KONÉ", "Awa.Koné"):
        browser = Browser(server.url)
        answer = browser.log_in(typed)
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/queue"), typed


@pytest.mark.parametrize("names, folded", [(["Mona", "ADA"], ["ada", "mona"]), (["Mona", "mona"], None)])
def test_upgrading_folds_existing_usernames_and_refuses_two_that_differ_only_by_case(tmp_path, names, folded):
    from alembic import command

    from moderation.database import alembic_config

    url = f"sqlite:///{tmp_path / 'before.sqlite3'}"
    command.upgrade(alembic_config(url), "0005")
    engine = create_engine(url)
    with engine.begin() as connection:
        for name in names:
            connection.execute(text("INSERT INTO users (username, password_hash, role, active, session_token, failed_logins, "
                                    "created_at) VALUES (:name, 'x', 'moderator', 1, 'token', 0, '2026-01-01')"), {"name": name})
    if folded is None:
        with pytest.raises(RuntimeError, match="differ only by case.*Mona, mona"):
            command.upgrade(alembic_config(url), "head")
    else:
        command.upgrade(alembic_config(url), "head")
        with engine.connect() as connection:
            assert sorted(connection.scalars(text("SELECT username FROM users"))) == folded
    engine.dispose()
