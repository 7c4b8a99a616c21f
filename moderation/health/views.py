"""Health checks for load balancers (up; ready: database and model) and metrics for Prometheus."""

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import func, select, text

from ..admin.models import Delivery
from ..comments.models import Comment, Decision
from ..registry import NoModelError
from ..timings import exposition
from ..web import db

blueprint = Blueprint("health", __name__)


@blueprint.route("/healthz")
def healthz():
    """The process answers."""
    return jsonify(status="ok")


@blueprint.route("/readyz")
def readyz():
    """Ready when the database answers and a model is loaded; 503 says which is missing."""
    problems = {}
    try:
        db().execute(text("SELECT 1"))
    except Exception as error:  # any failure to reach the database means not ready
        problems["database"] = type(error).__name__
    active = current_app.extensions["palabre.scorer"]
    try:
        version = active.get().version
    except Exception as error:  # no model, or one that failed to load
        problems["model"] = str(error)[:300] or type(error).__name__
        version = None
    if problems:
        return jsonify(status="unavailable", problems=problems), 503
    return jsonify(status="ok", model_version=version)


@blueprint.route("/metrics")
def metrics():
    """Prometheus text: comments by status, the backlog, decisions, webhook deliveries, the model in use, and where
    answers' time goes (see moderation/timings.py)."""
    lines = []
    _family(lines, "palabre_comments", "gauge", "Comments stored, by status.",
            db().execute(select(Comment.status, func.count()).group_by(Comment.status)), "status")
    _family(lines, "palabre_decisions_total", "counter", "Decisions recorded, by who made them.",
            db().execute(select(Decision.decided_by, func.count()).group_by(Decision.decided_by)), "decided_by")
    waiting = db().execute(select(
        func.count(Delivery.id).filter(Delivery.delivered_at.is_(None), Delivery.given_up_at.is_(None)),
        func.count(Delivery.id).filter(Delivery.given_up_at.is_not(None)))).one()
    _family(lines, "palabre_webhook_deliveries", "gauge", "Webhook events not yet delivered, and given up.",
            [("pending", waiting[0]), ("given_up", waiting[1])], "state")
    try:
        version = current_app.extensions["palabre.scorer"].get().version
        _family(lines, "palabre_model_info", "gauge", "The model version this process scores with.", [(version, 1)], "version")
    except NoModelError:
        pass
    return Response("\n".join(lines) + "\n" + exposition().decode(), mimetype="text/plain; version=0.0.4")


def _family(lines: list[str], name: str, kind: str, help_text: str, rows, label: str) -> None:
    """One metric family in Prometheus's text format."""
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for value, count in rows:
        escaped = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        lines.append(f'{name}{{{label}="{escaped}"}} {count}')
