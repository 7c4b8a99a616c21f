"""Comment, article and history pages, and the moderator's decision on one comment."""

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select

from ..auth.models import MODERATOR, User
from ..database import utcnow
from ..queue.listing import explanations
from ..service import Refused, claim, decide, set_premoderation
from ..validation import InputError
from ..web import back_or, db, intake, local_target, page_number
from .decisions import ACTIONS, refusal_message, status_for
from .highlight import pieces
from .models import BY_MODEL, BY_MODERATOR, OVERRIDE, PENDING, REASONS, Article, Comment, Decision, Revision, Score

blueprint = Blueprint("comments", __name__, template_folder="templates")

HISTORY_PAGE = 50
ARTICLES_PAGE = 50


@blueprint.app_template_global("pieces")
def _pieces(text, explanation, limit=None):
    """Templates cut comment text into display pieces with this."""
    return pieces(text, explanation, limit)


@blueprint.route("/comments/<int(max=2147483647):comment_id>")
@login_required
def comment(comment_id):
    """The whole comment: text, scores, explanation, revisions, decisions and the author's other comments."""
    found = db().get(Comment, comment_id) or abort(404)
    if found.status == PENDING:
        claim(db(), current_user, [found.id])
    revisions = list(db().scalars(select(Revision).where(Revision.comment_id == found.id).order_by(Revision.number.desc())))
    scores = {revision_id: score for revision_id, score in db().execute(
        select(Score.revision_id, Score).where(Score.revision_id.in_([r.id for r in revisions])).order_by(Score.id))}
    decisions = list(db().scalars(select(Decision).where(Decision.comment_id == found.id).order_by(Decision.id.desc())))
    others = []
    if found.author_id:
        others = list(db().scalars(select(Comment).where(Comment.author_id == found.author_id, Comment.id != found.id)
                                   .order_by(Comment.received_at.desc()).limit(20)))
    return render_template("comments/comment.html", comment=found, revisions=revisions, scores=scores, decisions=decisions,
                           others=others, explanation=explanations(db(), [found]).get(found.id), reasons=REASONS)


@blueprint.route("/comments/<int(max=2147483647):comment_id>/decision", methods=["POST"])
@login_required
def decision(comment_id):
    """Approve or reject one comment; answers JSON to the queue's script, a redirect to a plain form."""
    action, reason = request.form.get("action"), request.form.get("reason") or None
    revision = request.form.get("revision") or None
    wants_json = request.accept_mimetypes.best == "application/json"
    try:
        if action not in ACTIONS:
            raise InputError(f"action must be one of {', '.join(ACTIONS)}", "action")
        if revision is not None and not (revision.isascii() and revision.isdigit() and len(revision) < 10):
            raise InputError("revision must be a number", "revision")
        made = decide(db(), comment_id, current_user, status_for(action), reason, int(revision) if revision else None)
    except (Refused, InputError) as error:
        message = refusal_message(error, comment_id)
        if wants_json:
            return jsonify(ok=False, message=message), 409 if isinstance(error, Refused) else 422
        flash(message, "error")
        return redirect(back_or(url_for("comments.comment", comment_id=comment_id)))
    message = _("Approved.") if action == "approve" else _("Rejected.")
    if wants_json:
        return jsonify(ok=True, message=message, status=made.status, verdict=made.verdict)
    flash(message, "info")
    return redirect(local_target(request.form.get("next")) or url_for("queue.index"))


@blueprint.route("/articles")
@login_required
def articles():
    """Articles, newest first, with how many comments wait on each."""
    page = page_number()
    waiting = (select(Comment.article_id, func.count().label("waiting")).where(Comment.status == PENDING)
               .group_by(Comment.article_id).subquery())
    rows = db().execute(
        select(Article, func.coalesce(waiting.c.waiting, 0)).outerjoin(waiting, waiting.c.article_id == Article.id)
        .order_by(Article.created_at.desc(), Article.id.desc()).offset((page - 1) * ARTICLES_PAGE).limit(ARTICLES_PAGE + 1)
    ).all()
    return render_template("comments/articles.html", rows=rows[:ARTICLES_PAGE], page=page, more=len(rows) > ARTICLES_PAGE)


@blueprint.route("/articles/<int(max=2147483647):article_id>")
@login_required
def article(article_id):
    """The article and every comment on it with its status."""
    found = db().get(Article, article_id) or abort(404)
    comments = list(db().scalars(select(Comment).where(Comment.article_id == found.id).order_by(Comment.received_at)))
    return render_template("comments/article.html", article=found, comments=comments)


@blueprint.route("/articles/<int(max=2147483647):article_id>/premoderation", methods=["POST"])
@login_required
def premoderation(article_id):
    """Turn pre-moderation of an article on or off."""
    found = db().get(Article, article_id) or abort(404)
    on = request.form.get("premoderated") == "on"
    set_premoderation(db(), found, on)
    intake().forget_articles()
    flash(_("Pre-moderation is on: every new comment on this article waits for a moderator.") if on
          else _("Pre-moderation is off: comments on this article follow the usual thresholds."), "info")
    return redirect(local_target(request.form.get("next")) or url_for("comments.article", article_id=found.id))


@blueprint.route("/history")
@login_required
def history():
    """Every decision, newest first, filtered by moderator, by who decided, or to overrides."""
    query = select(Decision)
    moderators = filter_moderators()
    moderator = request.args.get("moderator", "").strip()
    if moderator not in moderators:  # the filter offers no one else, so it filters by no one else
        moderator = ""
    if moderator:
        query = query.join(User, Decision.moderator_id == User.id).where(User.username == moderator)
    by = request.args.get("by")
    if by in (BY_MODEL, BY_MODERATOR):
        query = query.where(Decision.decided_by == by)
    overrides = request.args.get("verdict") == OVERRIDE
    if overrides:
        query = query.where(Decision.verdict == OVERRIDE)
    page = page_number()
    rows = list(db().scalars(query.order_by(Decision.id.desc()).offset((page - 1) * HISTORY_PAGE).limit(HISTORY_PAGE + 1)))
    return render_template("comments/history.html", decisions=rows[:HISTORY_PAGE], more=len(rows) > HISTORY_PAGE, page=page,
                           moderator=moderator, by=by, overrides=overrides, moderators=moderators, now=utcnow())


def filter_moderators() -> list[str]:
    """Whom the history can be filtered by: admins manage every account anyway, a moderator needs only active moderators."""
    query = select(User.username).order_by(User.username)
    if not current_user.is_admin:
        query = query.where(User.active, User.role == MODERATOR)
    return list(db().scalars(query))
