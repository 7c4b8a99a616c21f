"""`python app.py` on a fresh install: one command trains, loads the demo, creates an admin and serves."""

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from .conftest import ROOT, TEST_KEY

STARTUP_SECONDS = 600


def free_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(env_changes: dict) -> tuple[subprocess.Popen, list[str]]:
    """Start `python app.py` and read its output until it says where it runs."""
    env = dict(os.environ, MODERATION_SECRET_KEY=TEST_KEY, **env_changes)
    process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines, deadline = [], time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.startswith("Palabre is running"):
            return process, lines
    process.kill()
    process.wait()
    process.stdout.close()
    raise AssertionError("app.py did not start:\n" + "\n".join(lines[-30:]))


def browser() -> urllib.request.OpenerDirector:
    """An HTTP client that keeps cookies, as a browser does."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def log_in(opener, base: str, username: str, password: str) -> str:
    """Log in through the real form and return the page landed on."""
    page = opener.open(f"{base}/login").read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": username, "password": password, "csrf_token": token}).encode()
    with opener.open(f"{base}/login", data=form) as response:
        return response.geturl(), response.read().decode()


def check_running_install(process, lines, port):
    """The printed address serves the demo queue to the printed admin."""
    try:
        assert f"Palabre is running at http://127.0.0.1:{port}/" in lines
        password = re.search(r"First admin: user 'admin', password (\S+)", "\n".join(lines)).group(1)
        base = f"http://127.0.0.1:{port}"
        landed, page = log_in(browser(), base, "admin", password)
        assert landed == f"{base}/queue"
        waiting = int(re.sub(r"\D", "", re.search(r"([\d\u202f\xa0]+) commentaires en attente", page).group(1)))
        assert waiting > 50, "the demo should leave a queue to work on"
        assert page.count('class="item"') == 25
        assert b'"status":"ok"' in urllib.request.urlopen(f"{base}/readyz").read().replace(b" ", b"")
    finally:
        process.terminate()
        process.wait(timeout=30)
        process.stdout.close()


def test_first_run_trains_the_model_loads_the_demo_and_prints_the_admin_password(tmp_path):
    port = free_port()
    process, lines = start({"MODERATION_DATABASE_URL": f"sqlite:///{tmp_path / 'palabre.sqlite3'}",
                            "MODERATION_MODELS_DIR": str(tmp_path / "models"), "PORT": str(port)})
    assert any("training the default model" in line for line in lines)
    assert any(line.endswith("demo: 1500 comments loaded") for line in lines)
    assert not [line for line in lines if "alembic" in line or "upgrade" in line], "the migrations run without chatter"
    check_running_install(process, lines, port)


def test_first_run_on_postgresql(postgres_url, models_dir):
    if postgres_url is None:
        pytest.skip("MODERATION_TEST_DATABASE_URL is not set: this run needs a PostgreSQL server (CI sets it)")
    from sqlalchemy import create_engine, text

    from moderation.database import Base, load_tables

    load_tables()
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    port = free_port()
    process, lines = start({"MODERATION_DATABASE_URL": postgres_url, "MODERATION_MODELS_DIR": str(models_dir), "PORT": str(port)})
    assert not any("training" in line for line in lines), "an active model must be used as it is"
    check_running_install(process, lines, port)
