"""Shared fixtures: one real model trained from data/ per session, and a CLI runner."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from moderation.destinations import ALLOW_PRIVATE

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEED = SHARED / "seed" / "000_63fa037eb8ff925a.txt"
DATASETS = SHARED / "datasets"
TEST_KEY = "test-signing-key"


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """Never touch the project's models/ or instance/ key: every test works in temporary folders.

    The tests' webhook receivers listen on 127.0.0.1, so private addresses are allowed here; the
    tests of the refusal take that back.
    """
    saved = {name: os.environ.get(name) for name in ("MODERATION_MODELS_DIR", "MODERATION_SECRET_KEY", ALLOW_PRIVATE)}
    os.environ["MODERATION_MODELS_DIR"] = str(tmp_path_factory.mktemp("unused-models"))
    os.environ["MODERATION_SECRET_KEY"] = TEST_KEY
    os.environ[ALLOW_PRIVATE] = "1"
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def run_cli(*args, models_dir, stdin: bytes | None = None, check=False, timeout=600):
    """Run `python -m moderation ...` in a real subprocess, as a user would."""
    env = dict(os.environ, MODERATION_MODELS_DIR=str(models_dir), MODERATION_SECRET_KEY=TEST_KEY)
    result = subprocess.run(
        [sys.executable, "-m", "moderation", *args], cwd=ROOT, env=env, input=stdin,
        capture_output=True, timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"moderation {' '.join(args)} failed:\n{result.stderr.decode()}")
    return result


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The default model, trained from data/ by the CLI exactly as the README says (once per session).

    MODERATION_TEST_MODELS_DIR names a folder to keep that model in between local runs, saving
    the minute of training; CI leaves it unset and trains afresh.
    """
    kept = os.environ.get("MODERATION_TEST_MODELS_DIR")
    models_dir = Path(kept) if kept else tmp_path_factory.mktemp("models")
    if kept and (models_dir / "active.json").exists():
        version = json.loads((models_dir / "active.json").read_text())["version"]
        return models_dir, version, None
    result = run_cli("train", "--data", "data", models_dir=models_dir, check=True)
    version = result.stdout.decode().split("\n")[0].removeprefix("version ").strip()
    run_cli("models", "activate", version, models_dir=models_dir, check=True)
    return models_dir, version, result


@pytest.fixture(scope="session")
def models_dir(trained):
    """Folder holding the session's trained and activated model."""
    return trained[0]


@pytest.fixture(scope="session")
def scorer(models_dir):
    """The session model's scorer, loaded through the public library entry point."""
    import moderation

    return moderation.load_scorer(models_dir)


@pytest.fixture
def seed_page():
    """The real sample page, read in place; skipped with a reason where shared/ is absent."""
    if not SEED.exists():
        pytest.skip(f"the seed page {SEED} is missing (it lives in ../shared/seed beside the checkout)")
    return SEED.read_text(encoding="utf-8").splitlines()


def resign(folder, **changes):
    """Rewrite a version's metadata.json with changes, signed with the test key as the registry would."""
    from moderation.registry import _signature

    path = folder / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    metadata["signature"] = _signature(metadata, TEST_KEY.encode())
    path.write_text(json.dumps(metadata))


def json_lines(output: bytes) -> list[dict]:
    """Parse the CLI's JSON-lines output."""
    return [json.loads(line) for line in output.decode("utf-8").splitlines()]


PASSWORD = "un mot de passe solide"
POSTGRES_URL = os.environ.get("MODERATION_TEST_DATABASE_URL")
POSTGRES_MISSING = ("MODERATION_TEST_DATABASE_URL is not set: the PostgreSQL runs of the store tests need a server "
                    "(CI sets it to postgresql+psycopg://postgres@127.0.0.1:5432/test)")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated, empty SQLite database, copied for each test (migrating once is faster than per test)."""
    from moderation.database import upgrade

    path = tmp_path_factory.mktemp("template") / "palabre.sqlite3"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url():
    """A scratch database on the PostgreSQL server, migrated once, dropped at the end; None without a server."""
    if not POSTGRES_URL:
        yield None
        return
    import secrets

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from moderation.database import upgrade

    name = f"palabre_test_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path, sqlite_template):
    """A fresh SQLite database for one test."""
    import shutil

    path = tmp_path / "palabre.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, sqlite_url):
    """Each store test runs on SQLite and, where MODERATION_TEST_DATABASE_URL is set, on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url
    url = request.getfixturevalue("postgres_url")
    if url is None:
        pytest.skip(POSTGRES_MISSING)
    from sqlalchemy import create_engine, text

    from moderation.database import Base, load_tables

    load_tables()
    engine = create_engine(url)
    with engine.begin() as connection:
        tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def database(database_url):
    """The test's database."""
    from moderation.database import Database

    database = Database(database_url)
    yield database
    database.engine.dispose()


@pytest.fixture
def session(database):
    """A session on the test's database."""
    with database.session() as session:
        yield session


@pytest.fixture(scope="session")
def password_hash():
    """PASSWORD hashed once: hashing is deliberately slow."""
    from werkzeug.security import generate_password_hash

    return generate_password_hash(PASSWORD)


def add_user(session, username, role="moderator", password_hash=None, **fields):
    """Store an account whose password is PASSWORD."""
    from moderation.auth.models import User

    user = User(username=username, role=role, password_hash=password_hash, **fields)
    session.add(user)
    session.commit()
    return user


def incoming(comment_id, text, article="politique-test", **fields):
    """An incoming comment on a small test article about a constitutional referendum."""
    from moderation.receiving import IncomingComment

    fields.setdefault("article_title", "Référendum : le projet de nouvelle Constitution soumis au vote")
    fields.setdefault("article_body", "Le gouvernement soumet au vote le projet de Constitution. L'opposition appelle au boycott "
                                      "du référendum et dénonce un calendrier électoral trop court.")
    return IncomingComment(id=comment_id, text=text, article_id=article, **fields)


@pytest.fixture
def app(models_dir, sqlite_url, password_hash):
    """The web app on a fresh SQLite database, with the session's model and three accounts."""
    from moderation import create_app
    from moderation.database import Database

    with Database(sqlite_url).session() as session:
        for username, role in (("mona", "moderator"), ("marc", "moderator"), ("ada", "admin")):
            add_user(session, username, role, password_hash)
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "MODELS_DIR": str(models_dir)})
    yield app
    app.extensions["palabre.database"].engine.dispose()


@pytest.fixture
def client(app):
    """A test client of the app (CSRF protection stays on, as in production)."""
    return app.test_client()


def csrf_token(client, path="/login") -> str:
    """The CSRF token a page's forms carry."""
    import re

    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)


def login(client, username, password=PASSWORD):
    """Log in through the form, as a browser would."""
    return client.post("/login", data={"username": username, "password": password, "csrf_token": csrf_token(client)})


class LiveServer:
    """The app served by waitress on a free local port, in a thread, as `python app.py` serves it."""

    def __init__(self, app, threads: int = 4):
        import threading

        import waitress

        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        """Waitress's loop in short polls, closing its own sockets when asked to stop.

        Closed from another thread, a socket can vanish under a poll in progress (EBADF).
        """
        from waitress import wasyncore

        while not self.stopping.is_set():
            wasyncore.loop(timeout=0.05, map=self.server._map, count=1)
        wasyncore.close_all(self.server._map)

    def close(self):
        """Finish the worker threads, then let the server thread stop and close its sockets."""
        self.server.task_dispatcher.shutdown()
        self.stopping.set()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def keyed_app(models_dir, sqlite_template, tmp_path_factory):
    """An app on its own database with one API key and no rate limit in the way, for a whole module: (app, key)."""
    import shutil

    from moderation import create_app
    from moderation.api.clients import create_client
    from moderation.database import Database

    path = tmp_path_factory.mktemp("keyed") / "palabre.sqlite3"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    with database.session() as session:
        _, key = create_client(session, "tests")
    database.engine.dispose()
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "MODELS_DIR": str(models_dir),
                      "API_RATE_PER_SECOND": 10_000.0, "API_RATE_BURST": 10_000.0})
    yield app, key
    app.extensions["palabre.database"].engine.dispose()


@contextmanager
def gunicorn_serving(env: dict, log: Path, workers: int = 2, threads: int = 2):
    """`gunicorn app:app` on a free local port, as the README's production setup runs it; its base URL once /readyz answers.

    Skipped where gunicorn is not installed; stopped with SIGINT (as a Ctrl-C would) at the end of the block.
    """
    gunicorn = Path(sys.executable).parent / "gunicorn"
    if not gunicorn.exists():
        pytest.skip(f"gunicorn is not installed beside {sys.executable}: pip install -r requirements.txt")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("wb") as output:
        server = subprocess.Popen([str(gunicorn), "--workers", str(workers), "--threads", str(threads), "--bind",
                                   f"127.0.0.1:{port}", "app:app"], cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(base + "/readyz", timeout=5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, log.read_text()
                time.sleep(0.2)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    assert server.returncode == 0, log.read_text()[-2000:]
