"""The review queue: waiting comments by priority, filters, and single or bulk decisions."""

from dataclasses import replace

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required

from ..comments.decisions import ACTIONS, refusal_message, status_for
from ..comments.models import REASONS
from ..database import MAX_ID, utcnow
from ..service import Refused, claim, decide
from ..validation import InputError
from ..web import back_or, db, page_number
from .listing import Filters, claimed_elsewhere, waiting

blueprint = Blueprint("queue", __name__, template_folder="templates")

MAX_BULK = 200
FILTER_NAMES = {"label": _l("Label"), "article": _l("Article"), "language": _l("Language"),
                "min_score": _l("Score from"), "max_score": _l("Score up to")}


@blueprint.route("/")
@login_required
def home():
    """The queue is where moderators start."""
    return redirect(url_for("queue.index"))


@blueprint.route("/queue")
@login_required
def index():
    """A page of the queue; the comments shown are claimed for the moderator for a few minutes."""
    filters = Filters.from_args(request.args)
    for name, value in filters.errors.items():
        flash(_("The filter %(name)s was ignored: %(value)s is not a valid value.", name=FILTER_NAMES[name], value=value[:40]), "error")
    now = utcnow()
    page = waiting(db(), current_user, filters, page_number(), now)
    mine = set(claim(db(), current_user, [comment.id for comment in page.comments], now))
    page = replace(page, comments=[comment for comment in page.comments if comment.id in mine])
    return render_template("queue/index.html", page=page, filters=filters, reasons=REASONS,
                           claimed_elsewhere=claimed_elsewhere(db(), current_user, now))


@blueprint.route("/queue/bulk", methods=["POST"])
@login_required
def bulk():
    """Approve or reject every ticked comment; each refusal is reported, the rest go through."""
    action, reason = request.form.get("action"), request.form.get("reason") or None
    selected = request.form.getlist("comment")[:MAX_BULK]
    if action not in ACTIONS or not selected:
        flash(_("Tick at least one comment, then choose approve or reject."), "error")
        return redirect(back_or(url_for("queue.index")))
    done, refused = 0, []
    for value in selected:
        comment_id, _sep, revision = value.partition(":")
        if not _readable_id(comment_id) or not _readable_id(revision):
            refused.append(_("%(value)s is not a comment of this queue.", value=value[:40]))
            continue
        try:
            decide(db(), int(comment_id), current_user, status_for(action), reason, int(revision))
            done += 1
        except (Refused, InputError) as error:
            refused.append(refusal_message(error, int(comment_id)))
    if done:
        flash(ngettext("%(num)d comment approved.", "%(num)d comments approved.", done) if action == "approve"
              else ngettext("%(num)d comment rejected.", "%(num)d comments rejected.", done), "info")
    for message in refused:
        flash(message, "error")
    return redirect(back_or(url_for("queue.index")))


def _readable_id(value: str) -> bool:
    """Whether a ticked value's part is a number the database can hold."""
    return value.isascii() and value.isdigit() and int(value) <= MAX_ID
