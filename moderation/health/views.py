"""Health checks for load balancers: the process is up, and it can serve (database and model)."""

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

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
