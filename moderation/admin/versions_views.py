"""Admin pages for model versions: their metrics, plots and refresh verdicts; activate, roll back, and refresh now."""

import fcntl
import os
import subprocess
import sys
import threading
from collections import deque
from datetime import datetime
from pathlib import Path

from flask import abort, current_app, flash, jsonify, redirect, render_template, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import refresh
from ..corpora import LABELS
from ..registry import PROJECT_ROOT, Registry, RegistryError
from ..web import admin_required, database, label_name
from .views import blueprint

REFRESH_LOG = "refresh.log"  # in the models folder: the output of the last refresh started from these pages
LOG_LINES = 30
JUDGED_ON = {"holdout": _l("the data/ holdout"), "recent": _l("the site's recent decisions")}  # the refresh's two holdouts
HISTORY_JUDGED = _l("the site's held-out history")  # "recent" before the moderators' decisions are enough (feedback.py)


def registry() -> Registry:
    """The registry the app serves from, so what is shown and activated is what the app follows."""
    return current_app.extensions["palabre.scorer"].registry


@blueprint.route("/models")
@admin_required
def models():
    """Every version, newest first, with its metrics, checks and refresh verdict; and the refresh's progress."""
    versions = list(reversed(registry().versions()))
    return render_template("admin/models.html", versions=versions, labels=LABELS, moment=moment, running=refresh_running(),
                           log=log_tail(), can_roll_back=any(version.get("active") for version in versions))


def moment(value) -> datetime | None:
    """A time written in a version's metadata, for the page to show in the reader's language; None if it is not one."""
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


@blueprint.route("/models/<version>")
@admin_required
def model(version):
    """One version: its metrics, the refresh's comparison and reasons, and its plots once the registry has verified it."""
    found = next((entry for entry in registry().versions() if entry.get("version") == version), None) or abort(404)
    try:
        registry().verify(version)
        problem = None
    except RegistryError as error:
        problem = str(error)
    judged_on = dict(JUDGED_ON)
    if (found.get("refresh") or {}).get("judged") == "the site's held-out history":
        judged_on["recent"] = HISTORY_JUDGED
    return render_template("admin/model.html", version=found, labels=LABELS, moment=moment, problem=problem, judged_on=judged_on,
                           plots=[] if problem else plots(registry().root / version))


def plots(folder: Path) -> list[tuple[str, str]]:
    """The PNG files of a version folder with what each shows: the report's own plots first, then any other by its name."""
    names = {name for name in os.listdir(folder) if name.endswith(".png") and not name.startswith(".")}
    captions = {}
    for label in LABELS:
        captions[f"pr_{label}.png"] = _("Precision and recall on the holdout: %(label)s", label=label_name(label))
        captions[f"scores_{label}.png"] = _("Scores on the holdout: %(label)s", label=label_name(label))
    for where, judged_on in JUDGED_ON.items():
        for label in LABELS:
            captions[f"compare_{where}_{label}.png"] = _("Both models' precision and recall on %(where)s: %(label)s",
                                                         where=judged_on, label=label_name(label))
    return [(name, caption) for name, caption in captions.items() if name in names] + \
        [(name, name) for name in sorted(names - captions.keys())]


@blueprint.route("/models/<version>/plots/<name>")
@admin_required
def model_plot(version, name):
    """A plot of a version the registry verifies, by a name listed in its folder: never a file the registry did not write."""
    if "/" in name or name.startswith(".") or not name.endswith(".png"):
        abort(404)
    try:
        registry().verify(version)
    except RegistryError:
        abort(404)
    path = registry().root / version / name
    if name not in os.listdir(path.parent) or path.is_symlink() or not path.is_file():
        abort(404)
    return send_file(path, mimetype="image/png")


@blueprint.route("/models/<version>/activate", methods=["POST"])
@admin_required
def activate_model(version):
    """Make a version the active one; every app process follows within seconds."""
    try:
        registry().activate(version)
    except RegistryError as error:
        flash(_("Version %(version)s was not activated: %(reason)s", version=version, reason=str(error)), "error")
    else:
        flash(_("Version %(version)s is now active: every app process serves it within a few seconds.", version=version), "info")
    return redirect(url_for("admin.models"))


@blueprint.route("/models/rollback", methods=["POST"])
@admin_required
def rollback_model():
    """Go back to the version active before the current one."""
    try:
        version = registry().rollback()
    except RegistryError as error:
        flash(_("Nothing was rolled back: %(reason)s", reason=str(error)), "error")
    else:
        flash(_("Rolled back: version %(version)s is active again.", version=version), "info")
    return redirect(url_for("admin.models"))


@blueprint.route("/models/refresh", methods=["POST"])
@admin_required
def refresh_now():
    """Start the refresh in the background now, unless one is running."""
    if start_refresh():
        flash(_("Refresh started: a candidate is trained and judged beside the active model. Its progress shows below."), "info")
    else:
        flash(_("A refresh is already running (started here, by the scheduler or on another server): nothing was started."),
              "error")
    return redirect(url_for("admin.models"))


@blueprint.route("/models/refresh/progress")
@admin_required
def refresh_progress():
    """Whether a refresh runs and the end of its log, for the models page to follow it."""
    return jsonify(running=refresh_running(), log=log_tail())


def start_refresh() -> bool:
    """Start `python -m moderation refresh` detached, its output in the log; False if a refresh is running.

    The refresh's output keeps the log locked (flock) while it runs, so a second press in the seconds
    before it takes the database's refresh lock is refused too.
    """
    registry().root.mkdir(parents=True, exist_ok=True)
    log = open(registry().root / REFRESH_LOG, "ab")
    with log:
        try:
            fcntl.flock(log, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if refresh.is_running(database()):
            return False
        log.truncate(0)
        process = subprocess.Popen([sys.executable, "-m", "moderation", "refresh", *current_app.config.get("REFRESH_OPTIONS", ())],
                                   cwd=PROJECT_ROOT, env=refresh_environment(), stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    threading.Thread(target=process.wait, daemon=True).start()  # reaped when it ends: no zombie left in a worker
    return True


def refresh_environment() -> dict[str, str]:
    """The app's environment, with the database and models folder this app uses."""
    return dict(os.environ, MODERATION_DATABASE_URL=current_app.config["DATABASE_URL"],
                MODERATION_MODELS_DIR=str(registry().root.resolve()))


def refresh_running() -> bool:
    """Whether a refresh runs: one started here still holds its log, or any refresh holds the database's lock."""
    try:
        with open(registry().root / REFRESH_LOG, "rb") as log:
            fcntl.flock(log, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except FileNotFoundError:
        pass
    return refresh.is_running(database())


def log_tail() -> list[str]:
    """The last lines of the log of the refresh last started here."""
    try:
        with open(registry().root / REFRESH_LOG, encoding="utf-8", errors="replace") as log:
            return [line.rstrip("\n") for line in deque(log, maxlen=LOG_LINES)]
    except FileNotFoundError:
        return []
