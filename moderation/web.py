"""What every page shares: the request's database session, the serving scorer, login, language and safety headers."""

import hmac
import logging
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, g, jsonify, render_template, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel, format_date, format_datetime, format_decimal, format_percent, format_time, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import ServiceUnavailable

from .api.errors import error_response, http_error_response
from .api.limits import RateLimiter
from .auth.models import LANGUAGES, User
from .database import MAX_ID, Database, utcnow
from .intake import Intake
from .registry import ActiveScorer, Registry
from .scorer import LENGTH_TERM, NEGATED_TERM, QUOTED_TERM, RELEVANCE_TERM, Scorer
from .timings import timed

LABEL_NAMES = {
    "toxic": _l("toxic"), "off_topic": _l("off-topic"), "spam": _l("spam"), "other": _l("other"),
    "premoderated": _l("pre-moderated article"), "sample": _l("QA sample"), "flagged": _l("flagged"),
    "edited": _l("edited after a moderator's decision"),
}

ERROR_MESSAGES = {
    400: _l("The request could not be read. If you were filling in a form, your session may have expired: reload the page and try again."),
    403: _l("This page is for admins."),
    404: _l("There is nothing at this address."),
    405: _l("This address does not accept that kind of request."),
    413: _l("What was sent is too large."),
    503: _l("The database cannot be reached right now. Nothing was lost: try again in a few seconds."),
    500: _l("Something went wrong on our side. Nothing you sent was lost: try again, and tell an admin if it happens again."),
}

TERM_NAMES = {
    RELEVANCE_TERM: _l("(relevance to the article)"), LENGTH_TERM: _l("(length)"),
    QUOTED_TERM: _l("(quoted words)"), NEGATED_TERM: _l("(negated words)"),
}

MAX_PAGE = 10_000
RETRY_AFTER_SECONDS = 5
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")  # the bodies Flask reads as a form
API_PREFIXES = ("/api/", "/v1alpha1/", "/integrations/", "/$discovery/")
ANSWER_STAGES = {"/api/": "answer api", "/integrations/": "answer integrations", "/v1alpha1/": "answer perspective",
                 "/$discovery/": "answer perspective"}

logger = logging.getLogger(__name__)
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
API_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff"}
HSTS_SECONDS = 180 * 24 * 3600


def init_app(app) -> None:
    """Wire the database, the scorer, login, CSRF and translations into the app."""
    app.extensions["palabre.database"] = Database(app.config["DATABASE_URL"])
    app.extensions["palabre.scorer"] = ActiveScorer(Registry(app.config["MODELS_DIR"]), app.config["MODEL_CHECK_SECONDS"])
    app.extensions["palabre.intake"] = Intake(app.extensions["palabre.database"], app.extensions["palabre.scorer"].get)
    app.extensions["palabre.rate_limiter"] = RateLimiter(app.config["API_RATE_PER_SECOND"], app.config["API_RATE_BURST"])
    app.teardown_appcontext(_close_session)
    app.session_interface = _SessionsForPages()
    app.wsgi_app = _timed_answers(app.wsgi_app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    csrf.init_app(app)
    babel.init_app(app, locale_selector=interface_language)
    app.before_request(_refuse_nul)
    app.after_request(_security_headers)
    for code in ERROR_MESSAGES:
        app.register_error_handler(code, _error_page)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(InterfaceError, _database_unavailable)
    app.jinja_env.filters.update(
        label_name=label_name, term_name=term_name, flagged_only=flagged_only,
        dict_with=lambda args, **changes: {**args, **changes},
        dict_without=lambda args, name: {key: value for key, value in args.items() if key != name},
    )
    app.jinja_env.globals.update(
        now_utc=utcnow, get_locale=get_locale, format_date=format_date, format_datetime=format_datetime,
        format_time=format_time, format_decimal=format_decimal, format_percent=format_percent,
    )


def _timed_answers(wsgi_app):
    """Each answer timed whole (the app's part of it, not the server's), by kind: API, integrations, pages."""
    def timed_app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        stage = next((name for prefix, name in ANSWER_STAGES.items() if path.startswith(prefix)), "answer pages")
        with timed(stage):
            return wsgi_app(environ, start_response)
    return timed_app


def flagged_only(explanation: dict | None, labels: list[str]) -> dict:
    """The explanation of the labels a comment was flagged for: what the moderator has to judge."""
    return {label: terms for label, terms in (explanation or {}).items() if label in labels}


def term_name(term: str) -> str:
    """An explanation term; the model's named features in the interface language."""
    return str(TERM_NAMES.get(term, term))


def label_name(code: str | None) -> str:
    """A label, reason or review cause in the interface language."""
    return str(LABEL_NAMES.get(code, code or ""))


def database() -> Database:
    """The app's database."""
    return current_app.extensions["palabre.database"]


def db() -> Session:
    """This request's session, closed when the request ends."""
    if "db" not in g:
        g.db = database().session()
    return g.db


def _close_session(error=None) -> None:
    """Give the connection back to the pool at the end of every request."""
    session_ = g.pop("db", None)
    if session_ is not None:
        session_.close()


def intake() -> Intake:
    """Where API requests hand their comments, to be received together with whatever else is arriving."""
    return current_app.extensions["palabre.intake"]


def scorer() -> Scorer:
    """The active model's scorer, following activations without a restart."""
    return current_app.extensions["palabre.scorer"].get()


@login_manager.user_loader
def _load_user(session_id: str) -> User | None:
    """The logged-in user, if the account is still active and the session's token is still its own."""
    user_id, _, token = session_id.partition(":")
    user = db().get(User, int(user_id)) if user_id.isdecimal() and int(user_id) <= MAX_ID else None
    if user is None or not user.active or not hmac.compare_digest(user.session_token, token):
        return None
    return user


def interface_language() -> str:
    """The user's choice, else the one picked before logging in, else the browser's, else French."""
    if current_user and current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    if session.get("language") in LANGUAGES:
        return session["language"]
    return request.accept_languages.best_match(LANGUAGES) or "fr"


def admin_required(view):
    """Admins only: moderators get 403, logged-out visitors are sent to /login."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)
    return wrapper


def local_target(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None: never redirect a moderator elsewhere.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so "/\t/x" and
    "/\\x" lead off-site just like "//x".
    """
    if not target:
        return None
    cleaned = "".join(ch for ch in target if ch not in "\t\r\n").replace("\\", "/")
    parts = urlsplit(cleaned)
    if not cleaned.startswith("/") or cleaned.startswith("//") or parts.scheme or parts.netloc:
        return None
    return cleaned


def back_or(default: str) -> str:
    """The page the request came from, when it is one of ours; else `default`."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc != request.host:
        return default
    return local_target(referrer.path + (f"?{referrer.query}" if referrer.query else "")) or default


def page_number() -> int:
    """The ?page= asked for, kept between 1 and MAX_PAGE whatever was sent."""
    return min(max(request.args.get("page", 1, type=int), 1), MAX_PAGE)


def _refuse_nul():
    """A NUL character in a field is never meant, and PostgreSQL cannot store or compare it: refuse, naming the field."""
    for source in (request.args, request.form) if request.mimetype in FORM_TYPES else (request.args,):
        for name, value in source.items(multi=True):
            if ("\x00" in name or "\x00" in value) and is_api_request():
                return error_response(400, "invalid_query", f"the query field {name[:40]!r} contains a NUL character", name[:40])
            if "\x00" in name or "\x00" in value:
                return _error_page_for(400, _("The field %(name)s contains a NUL character, which is not allowed.",
                                              name=name.replace("\x00", "\\0")[:40]))
    return None


def is_api_request() -> bool:
    """Whether the request is for a machine (the API and the integrations): its errors are JSON, never a page."""
    return request.path.startswith(API_PREFIXES)


def _error_page(error):
    """Errors in the user's language: JSON for the queue's script, a page for a browser, the API's shape for the API."""
    if is_api_request():
        return http_error_response(error)
    code = getattr(error, "code", None) or 500
    message = str(ERROR_MESSAGES.get(code, ERROR_MESSAGES[500]))
    if isinstance(error, CSRFError):
        message = _("This form has expired (its security token is missing or too old). Reload the page and try again.")
    return _error_page_for(code, message)


def _database_unavailable(error):
    """The database went away (restarted, unreachable, locked): 503 with Retry-After on every surface, never a 500.

    A comment whose commit was cut off may or may not be stored; sent again with the same id and
    text it is answered from what is stored, never stored twice.
    """
    logger.warning("database unavailable, answered 503: %s", type(getattr(error, "orig", None) or error).__name__)
    if request.path.startswith(("/api/", "/integrations/")):
        response = error_response(503, "database_unavailable", "the database cannot be reached right now; retry in "
                                  f"{RETRY_AFTER_SECONDS} s with the same request (a comment sent again is never stored twice)")
    elif is_api_request():
        response = current_app.handle_http_exception(ServiceUnavailable())
    else:
        response = current_app.make_response(_error_page_for(503, str(ERROR_MESSAGES[503])))
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _error_page_for(code: int, message: str):
    """An error answer: JSON for the queue's script, a page for a browser."""
    if request.accept_mimetypes.best == "application/json":
        return jsonify(ok=False, message=message), code
    return render_template("error.html", code=code, message=message), code


def _security_headers(response):
    """No inline script, no framing, no type sniffing (all the API's JSON needs); over HTTPS, browsers told to stay on it."""
    for name, value in API_SECURITY_HEADERS.items() if is_api_request() else SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure or current_app.config["SESSION_COOKIE_SECURE"]:
        response.headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_SECONDS}")
    return response


class _SessionsForPages(SecureCookieSessionInterface):
    """The signed-cookie session for pages; machines' requests (the API, the integrations) get none, and no cookie."""

    def open_session(self, app, request):
        if request.path.startswith(API_PREFIXES):
            return self.null_session_class()
        return super().open_session(app, request)
