"""Logging in and out, with failed logins held back per account, address and browser, and the interface language switch."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import format_time
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from ..database import utcnow
from ..web import back_or, db, local_target
from .forms import LoginForm
from .logins import DEVICE_COOKIE, DEVICE_LIFETIME, Attempt, Device, authenticate, device_cookie, device_for, read_device
from .models import LANGUAGES, User

blueprint = Blueprint("auth", __name__, template_folder="templates")


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """The login form; failures are held back as moderation/auth/logins.py says."""
    if current_user.is_authenticated:
        return redirect(local_target(request.args.get("next")) or url_for("queue.index"))
    form = LoginForm()
    if form.validate_on_submit():
        device = read_device(request.cookies.get(DEVICE_COOKIE), current_app.secret_key)
        attempt = authenticate(db(), form.username.data.strip(), form.password.data, request.remote_addr, device, utcnow())
        if attempt.user is not None:
            return _logged_in(attempt.user, device)
        flash(_refusal(attempt), "error")
    return render_template("auth/login.html", form=form)


def _logged_in(user: User, device: Device | None):
    """A new session (so a CSRF token planted before no longer works), and a device cookie that lasts a year."""
    language = session.get("language")
    session.clear()
    if language:
        session["language"] = language
    login_user(user)
    session.permanent = True
    response = redirect(local_target(request.args.get("next")) or url_for("queue.index"))
    response.set_cookie(DEVICE_COOKIE, device_cookie(device_for(user, device), current_app.secret_key),
                        max_age=int(DEVICE_LIFETIME.total_seconds()), httponly=True, samesite="Lax",
                        secure=request.is_secure or current_app.config["SESSION_COOKIE_SECURE"])
    return response


def _refusal(attempt: Attempt) -> str:
    """The same words for an unknown name, a deactivated account and a wrong password; a wait for everyone held back."""
    if attempt.retry_after is not None:
        return _("Too many failed attempts: try again after %(time)s.", time=format_time(attempt.retry_after, "HH:mm"))
    return _("Unknown username or wrong password.")


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
