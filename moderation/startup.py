"""`python app.py`: make a fresh install usable in one step, then serve it.

Migrates the database, trains and activates the default model if none is active, loads the
demo into an empty database, creates a first admin with a generated password when there is
no active admin, and serves, delivering webhooks from a background thread
with waitress (the README says how to serve in production).
"""

import logging
import os
import secrets
import sys
import threading

from sqlalchemy import func, select

from . import webhooks
from .auth.models import ADMIN, User
from .build import DEFAULT_CHECKS, Progress, build
from .comments.models import Comment
from .database import utcnow
from .demo import DATA, load_demo
from .registry import Registry

FIRST_ADMIN = "admin"


def prepare(app, echo=print) -> str | None:
    """Bring a fresh install to a usable state; return the first admin's password if one was made."""
    database = app.extensions["palabre.database"]
    progress = Progress(echo)
    database.upgrade()
    registry = Registry(app.config["MODELS_DIR"])
    if registry.active() is None:
        progress("no active model: training the default model from data/ (about a minute)")
        built = build([DATA], registry, DEFAULT_CHECKS, progress)
        registry.activate(built.version)
        if not built.checks_passed:
            progress(f"warning: {built.version} failed some checks; see {registry.root / built.version / 'report.md'}")
        progress(f"activated {built.version}")
    with database.session() as session:
        if session.scalar(select(func.count()).select_from(Comment)) == 0:
            count = load_demo(session, registry.load(), utcnow(), progress)
            progress(f"demo: {count} comments loaded")
        if session.scalar(select(func.count()).select_from(User).where(User.role == ADMIN, User.active)) == 0:
            password = secrets.token_urlsafe(12)
            admin = session.scalar(select(User).where(User.username == FIRST_ADMIN)) or User(username=FIRST_ADMIN)
            admin.role, admin.active = ADMIN, True
            admin.set_password(password)
            session.add(admin)
            session.commit()
            return password
    return None


def run(app) -> None:
    """Prepare, print where to go and how to log in, and serve until interrupted."""
    from waitress import create_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per migration and plugin tells a newcomer nothing
    password = prepare(app)
    server = create_server(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "5000")),
                           threads=8, ident="palabre")
    if password:
        print(f"\nFirst admin: user '{FIRST_ADMIN}', password {password} (shown once; change it in Admin > Users)", flush=True)
    print(f"\nPalabre is running at http://{server.effective_host}:{server.effective_port}/", flush=True)
    stop = threading.Event()
    threading.Thread(target=webhooks.run, args=(app.extensions["palabre.database"], stop), name="webhooks", daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        stop.set()
        sys.exit(0)
