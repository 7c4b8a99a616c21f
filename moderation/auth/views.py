"""Logging in and out, with lockout after repeated failures, and the interface language switch."""

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import format_time
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from ..database import utcnow
from ..web import back_or, db, local_target
from .forms import LoginForm
from .models import LANGUAGES, User

blueprint = Blueprint("auth", __name__, template_folder="templates")

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
_DUMMY_HASH = generate_password_hash("a password no account has")


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """The login form; five wrong passwords in a row lock the account for 15 minutes."""
    if current_user.is_authenticated:
        return redirect(local_target(request.args.get("next")) or url_for("queue.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = db().scalar(select(User).where(User.username == form.username.data.strip()))
        refusal = _check_login(user, form.password.data)
        if refusal is None:
            login_user(user)
            session.permanent = True
            return redirect(local_target(request.args.get("next")) or url_for("queue.index"))
        flash(refusal, "error")
    return render_template("auth/login.html", form=form)


def _check_login(user: User | None, password: str) -> str | None:
    """None when the password is right, else the message to show; counts failures.

    A password is hashed whatever the account, so the answer time does not tell which
    usernames exist; failures are counted in the database, so guesses sent at once all count.
    """
    now = utcnow()
    right = user.check_password(password) if user is not None else check_password_hash(_DUMMY_HASH, password)
    if user is None or not user.active:
        return _("Unknown username or wrong password.")
    if user.locked_until and user.locked_until > now:
        return _locked_message(user.locked_until)
    if not right:
        failures = db().execute(update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1)
                                .returning(User.failed_logins)).scalar_one()
        if failures >= MAX_FAILURES:
            db().execute(update(User).where(User.id == user.id).values(locked_until=now + LOCKOUT, failed_logins=0))
            db().commit()
            return _locked_message(now + LOCKOUT)
        db().commit()
        return _("Unknown username or wrong password.")
    user.failed_logins, user.locked_until = 0, None
    db().commit()
    return None


def _locked_message(until) -> str:
    """What a locked account is told."""
    return _("Too many failed attempts: this account is locked until %(time)s.", time=format_time(until, "HH:mm"))


@blueprint.route("/logout", methods=["POST"])
def logout():
    """End the session here and on every other device (a copied cookie stops working too)."""
    if current_user.is_authenticated:
        current_user.rotate_session_token()
        db().commit()
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
    return redirect(back_or(url_for("queue.index")))
