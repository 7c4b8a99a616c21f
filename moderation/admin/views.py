"""Admin pages: moderator accounts, thresholds and QA share, pre-moderated articles, API clients, Coral's signing secrets."""

import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import settings
from ..api.clients import create_client, revoke_client
from ..auth import throttle
from ..auth.models import ADMIN, LANGUAGES, ROLES, User, username_problem
from ..comments.models import Article
from ..database import utcnow
from ..destinations import check_url
from ..integrations.coral import environment_secrets, forget_admin_secrets
from ..policy import LabelThresholds
from ..registry import NoModelError
from ..service import set_premoderation
from ..validation import InputError
from ..web import admin_required, db, intake, label_name, scorer
from .dashboard import dashboard as figures
from .models import ApiClient, Delivery, DeliveryAttempt

blueprint = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")

CLIENT_DELIVERIES = 100
SHOWN_SECRET_CHARS = 6


@blueprint.route("/")
@admin_required
def index():
    """The admin home is the dashboard."""
    return redirect(url_for("admin.dashboard"))


@blueprint.route("/dashboard")
@admin_required
def dashboard():
    """Volume, backlog, automatic versus human decisions, overrides and per-moderator counts."""
    return render_template("admin/dashboard.html", board=figures(db(), utcnow()))


@blueprint.after_request
def _not_stored(response):
    """Admin pages show secrets (webhook secrets, one-time passwords and keys): no browser or proxy may keep a copy."""
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/users", methods=["GET", "POST"])
@admin_required
def users():
    """List accounts and create one; its generated password is shown in the answer only, never kept in the session."""
    if request.method == "GET":
        return users_page()
    username, role = request.form.get("username", "").strip(), request.form.get("role")
    problem = new_user_problem(username, role)
    if problem:
        flash(problem, "error")
        return redirect(url_for("admin.users"))
    password = secrets.token_urlsafe(12)
    user = User(username=username, role=role, language=request.form.get("language") if request.form.get("language") in LANGUAGES else None)
    user.set_password(password)
    db().add(user)
    try:
        db().commit()
    except IntegrityError:
        db().rollback()
        flash(_("The username %(name)s is taken.", name=user.username), "error")
        return redirect(url_for("admin.users"))
    return users_page(_("Account %(name)s created. Its password, shown only now:", name=user.username), password)


def users_page(secret_note: str | None = None, secret: str | None = None):
    """The accounts page, with the one-time secret an action just made: a flash would carry it in the session cookie."""
    return render_template("admin/users.html", users=list(db().scalars(select(User).order_by(User.username))), roles=ROLES,
                           secret_note=secret_note, secret=secret)


def new_user_problem(username: str, role: str | None) -> str | None:
    """Why a new account cannot be made with these values, or None."""
    if username_problem(username):
        return _("A username is 1 to 80 visible characters without spaces.")
    if role not in ROLES:
        return _("Choose the role moderator or admin.")
    return None


@blueprint.route("/users/<int(max=2147483647):user_id>", methods=["POST"])
@admin_required
def user(user_id):
    """Change one account: role, active, unlock, or a new password (shown in the answer only)."""
    found = db().get(User, user_id) or abort(404)
    action = request.form.get("action")
    if found.id == current_user.id and action in ("deactivate", "role"):
        flash(_("You cannot demote or deactivate your own account."), "error")
        return redirect(url_for("admin.users"))
    if action == "role" and request.form.get("role") in ROLES:
        found.role = request.form["role"]
        flash(_("%(name)s is now %(role)s.", name=found.username, role=_("admin") if found.role == ADMIN else _("moderator")), "info")
    elif action in ("activate", "deactivate"):
        found.active = action == "activate"
        found.rotate_session_token()
        flash(_("%(name)s can log in again.", name=found.username) if found.active else _("%(name)s can no longer log in.", name=found.username), "info")
    elif action == "unlock":
        throttle.clear(db(), [throttle.account_key(found.username)])
        flash(_("%(name)s is unlocked.", name=found.username), "info")
    elif action == "password":
        password = secrets.token_urlsafe(12)
        found.set_password(password)
        throttle.clear(db(), [throttle.account_key(found.username)])
        db().commit()
        return users_page(_("New password for %(name)s, shown only now:", name=found.username), password)
    else:
        flash(_("Unknown change."), "error")
        return redirect(url_for("admin.users"))
    db().commit()
    return redirect(url_for("admin.users"))


@blueprint.route("/thresholds", methods=["GET", "POST"])
@admin_required
def thresholds():
    """Review and reject thresholds per label (blank follows the model), the QA sample share, and edits of rejected comments."""
    try:
        model_policy = scorer().policy
    except NoModelError:
        model_policy = None
    site = settings.current(db())
    if request.method == "POST":
        labels = model_policy.thresholds if model_policy else site.thresholds
        pinned, problems = {}, []
        for label in labels:
            review, reject = (request.form.get(f"{label}_{kind}", "").strip() for kind in ("review", "reject"))
            if not review and not reject:
                continue
            try:
                review_value = float(review) if review else labels[label].review
                pinned[label] = LabelThresholds(review_value, float(reject) if reject else None)
            except ValueError:
                problems.append(_("%(label)s: thresholds are numbers from 0 to 1, and reject is at least review.", label=label_name(label)))
        share = request.form.get("qa_share", "").strip()
        try:
            share_value = float(share) / 100 if share else settings.DEFAULT_QA_SHARE
            if not 0 <= share_value <= 1:
                raise ValueError
        except ValueError:
            problems.append(_("The QA sample is a percentage from 0 to 100."))
        for problem in problems:
            flash(problem, "error")
        if not problems:
            settings.pin_thresholds(db(), pinned)
            settings.set_qa_share(db(), share_value)
            settings.set_review_rejected_edits(db(), request.form.get("review_rejected_edits") == "on")
            db().commit()
            intake().forget_settings()
            flash(_("Thresholds saved. They apply to comments received from now on."), "info")
        return redirect(url_for("admin.thresholds"))
    return render_template("admin/thresholds.html", model_policy=model_policy, site=site)


@blueprint.route("/premoderation", methods=["GET", "POST"])
@admin_required
def premoderation():
    """Articles under pre-moderation; add one by its id on the site, or take one off."""
    if request.method == "POST":
        external_id = request.form.get("article", "").strip()
        found = db().scalar(select(Article).where(Article.external_id == external_id))
        if found is None:
            flash(_("No article has the id %(id)s.", id=external_id[:80]), "error")
        else:
            set_premoderation(db(), found, request.form.get("premoderated") == "on")
            intake().forget_articles()
            flash(_("Saved."), "info")
        return redirect(url_for("admin.premoderation"))
    articles = list(db().scalars(select(Article).where(Article.premoderated).order_by(Article.title)))
    return render_template("admin/premoderation.html", articles=articles)


@blueprint.app_context_processor
def _roles():
    """Templates show admin links by role."""
    return {"ADMIN": ADMIN}


@blueprint.route("/clients", methods=["GET", "POST"])
@admin_required
def clients():
    """API clients: create one (its key is shown in the answer only), see each one's webhook secret and delivery health."""
    if request.method == "GET":
        return clients_page()
    webhook_url = request.form.get("webhook_url", "").strip() or None
    try:
        client, key = create_client(db(), request.form.get("name", ""), webhook_url)
    except InputError as error:
        flash(str(error), "error")
        return redirect(url_for("admin.clients"))
    return clients_page(_("Client %(name)s created. Its API key, shown only now:", name=client.name), key)


def clients_page(secret_note: str | None = None, secret: str | None = None):
    """The clients page, with the key a creation just made: a flash would carry it in the session cookie."""
    rows = db().execute(
        select(ApiClient, func.count(Delivery.id).filter(Delivery.delivered_at.is_(None), Delivery.given_up_at.is_(None)),
               func.count(Delivery.id).filter(Delivery.given_up_at.is_not(None)))
        .outerjoin(Delivery, Delivery.client_id == ApiClient.id).group_by(ApiClient.id).order_by(ApiClient.name)
    ).all()
    return render_template("admin/clients.html", rows=rows, coral_environment=list(map(secret_start, environment_secrets())),
                           coral_admin=list(map(secret_start, settings.coral_secrets(db()))), secret_note=secret_note, secret=secret)


@blueprint.route("/clients/coral", methods=["POST"])
@admin_required
def coral():
    """Add a signing secret for Coral Talk (a second one during a rotation) or remove one."""
    if request.form.get("action") == "remove":
        remove_coral_secret(request.form.get("position", ""), request.form.get("start", ""))
    else:
        add_coral_secret(request.form.get("secret", "").strip())
    forget_admin_secrets()
    return redirect(url_for("admin.clients", _anchor="coral"))


def add_coral_secret(secret: str) -> None:
    """Store the secret if it can be one, saying what is wrong otherwise; it is never shown again in full."""
    problem = coral_secret_problem(secret)
    if problem:
        flash(problem, "error")
        return
    settings.add_coral_secret(db(), secret)
    db().commit()
    flash(_("Signing secret %(start)s… added: Coral's requests signed with it are accepted from now on.",
            start=secret_start(secret)), "info")


def coral_secret_problem(secret: str) -> str | None:
    """Why this cannot be a signing secret (1 to 200 visible characters, not one already accepted), or None."""
    if not secret:
        return _("The signing secret is empty: paste the one Coral shows for Palabre's external moderation phase.")
    if len(secret) > settings.MAX_CORAL_SECRET_CHARS:
        return _("The signing secret is %(count)s characters long; the limit is %(limit)s.", count=len(secret),
                 limit=settings.MAX_CORAL_SECRET_CHARS)
    for position, char in enumerate(secret, start=1):
        if not char.isprintable() or char.isspace():
            return _("The signing secret contains a space or an invisible character (U+%(code)s) at character "
                     "%(position)s; a secret is made of visible characters only.", code=f"{ord(char):04X}", position=position)
    if secret in settings.coral_secrets(db()):
        return _("This signing secret is already accepted.")
    return None


def remove_coral_secret(position: str, start: str) -> None:
    """Remove the secret the admin saw at that place in the list; if the list has changed since, remove nothing."""
    stored = settings.coral_secrets(db())
    try:
        index = int(position)
    except ValueError:
        index = -1
    if not 0 <= index < len(stored) or secret_start(stored[index]) != start:
        flash(_("That signing secret is no longer in the list: nothing was removed."), "error")
        return
    settings.remove_coral_secret(db(), stored[index])
    db().commit()
    flash(_("Signing secret %(start)s… removed: Coral's requests signed with it are refused from now on.", start=start), "info")


def secret_start(secret: str) -> str:
    """What the pages show of a secret: its first 6 characters, and never more than half of a short one."""
    return secret[:min(SHOWN_SECRET_CHARS, len(secret) // 2)]


@blueprint.route("/clients/<int(max=2147483647):client_id>", methods=["GET", "POST"])
@admin_required
def client(client_id):
    """One client: revoke its key, change its webhook URL, and read every delivery with its attempts."""
    found = db().get(ApiClient, client_id) or abort(404)
    if request.method == "POST":
        if request.form.get("action") == "revoke":
            revoke_client(db(), found)
            flash(_("The key of %(name)s is revoked: its requests are refused from now on.", name=found.name), "info")
        else:
            url = request.form.get("webhook_url", "").strip() or None
            try:
                found.webhook_url = url and check_url(url)
            except InputError as error:
                flash(str(error), "error")
            else:
                db().commit()
                flash(_("Saved."), "info")
        return redirect(url_for("admin.client", client_id=found.id))
    deliveries = list(db().scalars(select(Delivery).where(Delivery.client_id == found.id).order_by(Delivery.id.desc())
                                   .limit(CLIENT_DELIVERIES)))
    attempts = {}
    for attempt in db().scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_([d.id for d in deliveries]))
                                .order_by(DeliveryAttempt.id)):
        attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return render_template("admin/client.html", client=found, deliveries=deliveries, attempts=attempts)


from . import versions_views  # noqa: E402,F401  (the model-version pages join this blueprint)
