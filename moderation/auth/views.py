"""Logging in and out, with lockout after repeated failures, and the interface language switch."""

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import format_time
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from ..database import utcnow
from ..web import db
from .forms import LoginForm
from .models import LANGUAGES, User

blueprint = Blueprint("auth", __name__, template_folder="templates")

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """The login form; five wrong passwords in a row lock the account for 15 minutes."""
    if current_user.is_authenticated:
        return redirect(_safe_next() or url_for("queue.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = db().scalar(select(User).where(User.username == form.username.data.strip()))
        refusal = _check_login(user, form.password.data)
        if refusal is None:
            login_user(user)
            session.permanent = True
            return redirect(_safe_next() or url_for("queue.index"))
        flash(refusal, "error")
    return render_template("auth/login.html", form=form)


def _check_login(user: User | None, password: str) -> str | None:
    """None when the password is right, else the message to show; counts failures."""
    now = utcnow()
    if user is None or not user.active:
        return _("Unknown username or wrong password.")
    if user.locked_until and user.locked_until > now:
        return _("Too many failed attempts: this account is locked until %(time)s.", time=format_time(user.locked_until, "HH:mm"))
    if not user.check_password(password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until, user.failed_logins = now + LOCKOUT, 0
            db().commit()
            return _("Too many failed attempts: this account is locked until %(time)s.", time=format_time(user.locked_until, "HH:mm"))
        db().commit()
        return _("Unknown username or wrong password.")
    user.failed_logins, user.locked_until = 0, None
    db().commit()
    return None


def _safe_next() -> str | None:
    """The page asked for before login, only if it is on this site."""
    target = request.args.get("next") or ""
    parts = urlsplit(target)
    if target.startswith("/") and not target.startswith("//") and not parts.scheme and not parts.netloc and "\\" not in target:
        return target
    return None


@blueprint.route("/logout", methods=["GET", "POST"])
def logout():
    """End the session."""
    logout_user()
    flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login"))


@blueprint.route("/language", methods=["POST"])
def language():
    """Switch the interface language: kept on the account when logged in, in the session before."""
    choice = request.form.get("language")
    if choice not in LANGUAGES:
        flash(_("Choose French or English."), "error")
    elif current_user.is_authenticated:
        current_user.language = choice
        db().commit()
    else:
        session["language"] = choice
    return redirect(_safe_referrer() or url_for("queue.index"))


def _safe_referrer() -> str | None:
    """Go back to the page the switch was made on, if it is one of ours."""
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and referrer.path.startswith("/"):
        return referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return None
