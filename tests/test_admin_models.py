"""Over real HTTP: the admin pages for model versions (metrics, verdicts, plots), activate and roll back, "refresh now",
and the dashboard's agreement per model version (issue 11).
"""

import fcntl
import html
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect, sync_playwright

from moderation import refresh
from moderation.comments.models import CONFIRM, OVERRIDE, PUBLISHED, REJECTED
from moderation.policy import REJECT
from moderation.receiving import receive_comment
from moderation.registry import Registry
from moderation.service import decide

from .conftest import PASSWORD, ROOT, LiveServer, add_user, incoming, resign

BASE, CANDIDATE = "20261130-030000", "20261207-030000"
PLOTS = ("pr_toxic.png", "scores_toxic.png", "pr_off_topic.png", "scores_off_topic.png")
WORSE = "toxic PR-AUC on the data/ holdout: 0.8101 against the active model's 0.8827 (more than 0.01 worse)"
VERDICT = {
    "active_before": BASE, "promoted": False, "dry_run": False, "reasons": [WORSE],
    "comparison": {
        "holdout": {"candidate": {"toxic": {"rows": 12691, "roc_auc": 0.7712, "pr_auc": 0.8101},
                                  "off_topic": {"rows": 2176, "roc_auc": 0.9701, "pr_auc": 0.9155}},
                    "active": {"toxic": {"rows": 12691, "roc_auc": 0.7948, "pr_auc": 0.8827},
                               "off_topic": {"rows": 2176, "roc_auc": 0.9715, "pr_auc": 0.9167}}},
        "recent": {"candidate": {"toxic": {"rows": 48, "roc_auc": 0.9456, "pr_auc": 0.9123}},
                   "active": {"toxic": {"rows": 48, "roc_auc": 0.8012, "pr_auc": 0.7930}}},
    },
    "site_rows": 192, "recent_rows": 48, "cut": "2026-11-24T09:12:00+00:00",
    "overridden": [{"text": "<b>Ce kpatoglo</b> bloque le vote", "at": "2026-11-25T10:00:00+00:00",
                    "labels": {"toxic": 1.0, "off_topic": 0.0},
                    "scores": {"candidate": {"toxic": 0.91, "off_topic": 0.02}, "active": {"toxic": 0.12, "off_topic": 0.03}}}],
}
CHROMIUM = Path("/usr/bin/chromium")
PROGRESS = re.compile(r"^\[\s*\d+\.\ds\] ", re.M)  # a refresh's progress line, as build.Progress writes it


@pytest.fixture
def registry(models_dir, tmp_path):
    """The session's model as version BASE (active), and a refresh's refused candidate CANDIDATE beside it."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copytree(models_dir / Registry(models_dir).active(), root / BASE)
    resign(root / BASE, version=BASE, created_at="2026-11-30T03:00:00+00:00")
    shutil.copytree(root / BASE, root / CANDIDATE)
    shutil.copy(root / CANDIDATE / "pr_toxic.png", root / CANDIDATE / "compare_recent_toxic.png")  # as a refresh's report draws
    resign(root / CANDIDATE, version=CANDIDATE, created_at="2026-12-07T03:00:00+00:00", refresh=VERDICT)
    registry = Registry(root)
    registry.activate(BASE)
    return registry


@pytest.fixture
def data(tmp_path):
    """A data folder the refresh started from the page learns from: a name no other process has in its command line."""
    folder = tmp_path / "refresh-data"
    (folder / "comments").mkdir(parents=True)
    shutil.copy(ROOT / "data" / "comments" / "insultes.csv", folder / "comments")
    shutil.copytree(ROOT / "data" / "articles", folder / "articles")
    return folder


@pytest.fixture
def site(registry, data, database, database_url, password_hash):
    """The app on the test's database and registry, served over HTTP, with an admin (ada) and a moderator (mona)."""
    from moderation import create_app

    with database.session() as session:
        add_user(session, "ada", "admin", password_hash)
        add_user(session, "mona", "moderator", password_hash)
    app = create_app({"DATABASE_URL": database_url, "MODELS_DIR": str(registry.root), "REFRESH_OPTIONS": ["--data", str(data)]})
    server = LiveServer(app)
    yield server.url
    server.close()
    for pid in refresh_processes(data):  # a refresh a failed test left behind
        os.kill(pid, signal.SIGKILL)
    app.extensions["palabre.database"].engine.dispose()


class Browser:
    """A requests session logged in through the form, reading pages in English unless told otherwise."""

    def __init__(self, url: str, username: str, language: str = "en"):
        self.url = url
        self.http = requests.Session()
        self.http.headers["Accept-Language"] = language
        self.post("/login", {"username": username, "password": PASSWORD}, token_from="/login")

    def get(self, path: str) -> requests.Response:
        """GET a page or file of the site."""
        return self.http.get(self.url + path, timeout=30)

    def post(self, path: str, data: dict | None = None, token_from: str = "/admin/models") -> requests.Response:
        """POST a form with the CSRF token of the page that shows it, following the redirect as a browser does."""
        token = re.search(r'name="csrf_token" value="([^"]+)"', self.get(token_from).text).group(1)
        return self.http.post(self.url + path, data={"csrf_token": token, **(data or {})}, timeout=60)


def text_of(response: requests.Response) -> str:
    """A page's text as a reader sees it, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.text)))


def refresh_processes(data: Path) -> list[int]:
    """Running `moderation refresh` processes given this test's data folder."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] if arguments else "Z"
        except OSError:
            continue
        if b"refresh" in arguments and str(data).encode() in arguments and state != "Z":
            found.append(int(entry.name))
    return found


def until(condition, seconds: float = 30):
    """Wait for condition() to give something true, and return it; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.2)
    return found


def test_the_models_page_lists_every_version_newest_first_with_its_metrics_checks_and_the_active_one(site, registry):
    page = text_of(Browser(site, "ada").get("/admin/models"))
    holdout, checks = registry.verify(BASE)["metrics"]["holdout"], registry.verify(BASE)["checks"]
    metrics = " ".join(f"{holdout[label][name]:.4f}" for label in ("toxic", "off_topic") for name in ("roc_auc", "pr_auc"))
    assert re.search(rf"{BASE} 11/30/26, 3:00\s?AM {metrics} {checks['passed']}/{checks['total']} – active", page), page
    assert re.search(rf"{CANDIDATE} 12/7/26, 3:00\s?AM {metrics} .*not promoted: {BASE} stayed active {re.escape(WORSE)} Activate", page)
    assert page.index(CANDIDATE) < page.index(BASE), "newest first"
    assert "No refresh is running." in page and "Refresh now" in page and "Roll back" in page


def test_moderators_may_not_see_or_change_model_versions(site, registry):
    moderator = Browser(site, "mona")
    for path in ("/admin/models", f"/admin/models/{BASE}", f"/admin/models/{BASE}/plots/pr_toxic.png", "/admin/models/refresh/progress"):
        assert moderator.get(path).status_code == 403, path
    for path in (f"/admin/models/{CANDIDATE}/activate", "/admin/models/rollback", "/admin/models/refresh"):
        assert moderator.post(path, token_from="/queue").status_code == 403, path
    assert registry.active() == BASE and not (registry.root / "refresh.log").exists()


def test_a_versions_page_shows_the_refresh_comparison_side_by_side_its_reasons_and_its_plots(site):
    response = Browser(site, "ada").get(f"/admin/models/{CANDIDATE}")
    page = text_of(response)
    assert f"not promoted: {BASE} stayed active" in page and WORSE in page
    assert f"Active before: {BASE} · 192 of the site's comments learnt from, 48 judged on (the site's recent decisions)" in page
    assert "the data/ holdout toxic 0.8101 0.8827 0.7712 0.7948 12691" in page
    assert "the data/ holdout off-topic 0.9155 0.9167 0.9701 0.9715 2176" in page
    assert "the site's recent decisions toxic 0.9123 0.7930 0.9456 0.8012 48" in page
    assert "the site's recent decisions off-topic – – – – –" in page
    shown = re.findall(r'<img src="([^"]+)" alt="([^"]+)"', response.text)
    assert [src for src, _ in shown] == [f"/admin/models/{CANDIDATE}/plots/{name}" for name in (*PLOTS, "compare_recent_toxic.png")]
    assert [alt for _, alt in shown][:2] == ["Precision and recall on the holdout: toxic", "Scores on the holdout: toxic"]
    assert html.unescape(shown[-1][1]) == "Both models' precision and recall on the site's recent decisions: toxic"
    assert "<b>Ce kpatoglo</b> bloque le vote 11/25/26, 10:00 AM toxic: yes, off-topic: no toxic 0.91, off-topic 0.02 " \
           "toxic 0.12, off-topic 0.03" in page.replace("\u202f", " ")
    assert "&lt;b&gt;Ce kpatoglo" in response.text, "a comment's text is shown as text"
    assert "Activate" in page


def test_plots_are_served_only_from_a_verified_version_and_by_a_name_listed_in_its_folder(site, registry):
    admin, folder = Browser(site, "ada"), registry.root / CANDIDATE
    plot = admin.get(f"/admin/models/{CANDIDATE}/plots/pr_toxic.png")
    assert plot.status_code == 200 and plot.headers["Content-Type"] == "image/png"
    assert plot.content == (folder / "pr_toxic.png").read_bytes()
    shutil.copy(folder / "pr_toxic.png", folder / "calibration.png")
    shutil.copy(folder / "pr_toxic.png", folder / ".hidden.png")
    (folder / "passwd.png").symlink_to("/etc/passwd")
    assert admin.get(f"/admin/models/{CANDIDATE}/plots/calibration.png").status_code == 200, "any other PNG the folder holds"
    assert f"/admin/models/{CANDIDATE}/plots/calibration.png" in admin.get(f"/admin/models/{CANDIDATE}").text
    for name in ("nowhere.png", ".hidden.png", "passwd.png", "model.joblib", "metadata.json", "..%2Factive.json",
                 "%2E%2E%2F..%2F..%2Fetc%2Fpasswd", "..", "%2E%2E"):
        assert admin.get(f"/admin/models/{CANDIDATE}/plots/{name}").status_code == 404, name
    assert admin.get("/admin/models/..%2F..%2Fetc/plots/passwd").status_code == 404
    assert admin.get("/admin/models/.hidden/plots/pr_toxic.png").status_code == 404

    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps(dict(metadata, created_at="2026-12-08T03:00:00+00:00")))
    assert admin.get(f"/admin/models/{CANDIDATE}/plots/pr_toxic.png").status_code == 404, "metadata no longer verifies"
    page = admin.get(f"/admin/models/{CANDIDATE}")
    assert "The registry refuses this version" in text_of(page) and "not signed by this installation's key" in text_of(page)
    assert "<img" not in page.text and "/activate" not in page.text


def test_activate_and_roll_back_move_the_active_pointer_the_app_follows_and_say_so_in_the_users_language(site, registry):
    admin = Browser(site, "ada", language="fr")
    assert admin.http.post(f"{site}/admin/models/{CANDIDATE}/activate", timeout=30).status_code == 400, "no CSRF token, no change"
    assert registry.active() == BASE
    page = text_of(admin.post(f"/admin/models/{CANDIDATE}/activate"))
    assert registry.active() == CANDIDATE
    assert f"La version {CANDIDATE} est maintenant active" in page
    until(lambda: requests.get(site + "/readyz", timeout=30).json().get("model_version") == CANDIDATE)

    page = text_of(admin.post("/admin/models/rollback"))
    assert registry.active() == BASE and f"Retour en arrière : la version {BASE} est de nouveau active." in page
    page = text_of(admin.post("/admin/models/rollback"))
    assert registry.active() == BASE and "Rien n'a été annulé : nothing to roll back to" in page

    metadata = json.loads((registry.root / CANDIDATE / "metadata.json").read_text())
    (registry.root / CANDIDATE / "metadata.json").write_text(json.dumps(dict(metadata, refresh={**VERDICT, "promoted": True})))
    page = text_of(admin.post(f"/admin/models/{CANDIDATE}/activate"))
    assert registry.active() == BASE and f"La version {CANDIDATE} n'a pas été activée" in page
    assert admin.post("/admin/models/.nothing/activate").status_code == 200 and registry.active() == BASE


def test_refresh_now_is_refused_while_a_refresh_runs_and_starts_nothing(site, registry, database, data):
    admin, log, versions = Browser(site, "ada"), registry.root / "refresh.log", registry.versions()
    log.write_text("[ 412.0s] saved the last candidate\n")
    with refresh.one_at_a_time(database):
        page = text_of(admin.post("/admin/models/refresh"))
        assert "A refresh is already running" in page and "nothing was started" in page
        assert "A refresh is running." in page and "saved the last candidate" in page
        assert admin.get("/admin/models/refresh/progress").json() == {"running": True, "log": ["[ 412.0s] saved the last candidate"]}
    assert log.read_text() == "[ 412.0s] saved the last candidate\n" and not refresh_processes(data)
    assert admin.get("/admin/models/refresh/progress").json()["running"] is False

    with open(log, "ab") as held:  # what a refresh started from the page holds for as long as it runs
        fcntl.flock(held, fcntl.LOCK_EX)
        assert "A refresh is already running" in text_of(admin.post("/admin/models/refresh"))
        assert admin.get("/admin/models/refresh/progress").json()["running"] is True
    assert not refresh_processes(data) and registry.versions() == versions


def test_refresh_now_starts_the_refresh_in_the_background_and_the_page_follows_its_log(site, registry, data):
    admin, log = Browser(site, "ada"), registry.root / "refresh.log"
    log.write_text("the last refresh's log\n")
    page = text_of(admin.post("/admin/models/refresh"))
    assert "Refresh started" in page and "A refresh is running." in page
    [pid] = until(lambda: refresh_processes(data))
    progress = until(lambda: (answer := admin.get("/admin/models/refresh/progress").json()) and
                     any(PROGRESS.match(line) and "the site's own comments: 0 to learn from" in line for line in answer["log"])
                     and answer, seconds=120)
    assert progress["running"] and "the last refresh's log" not in progress["log"], "the log starts afresh"
    assert "A refresh is already running" in text_of(admin.post("/admin/models/refresh")), "a second press starts nothing"
    assert refresh_processes(data) == [pid]

    os.kill(pid, signal.SIGKILL)
    until(lambda: not admin.get("/admin/models/refresh/progress").json()["running"])
    assert registry.active() == BASE and "No refresh is running." in text_of(admin.get("/admin/models"))


def test_the_dashboard_shows_each_versions_override_rate_and_agreement(site, registry, database):
    base, candidate = registry.load(BASE), registry.load(CANDIDATE)
    texts = {"calendar": "Le calendrier du référendum est trop court pour lire le projet de Constitution.",
             "insult": "Espèce de crétin, ferme-la, personne ne veut lire tes âneries.",
             "boycott": "Je pense que l'opposition a tort de boycotter le référendum.",
             "debate": "Un débat public sur la nouvelle Constitution aurait rassuré les électeurs."}
    expected = {BASE: [0, 0], CANDIDATE: [0, 0]}
    with database.session() as session:
        moderator = add_user(session, "marc", "moderator", password_hash="unused")
        scored = {key: receive_comment(session, base, incoming(f"dash-{key}", text)).comment for key, text in texts.items()}
        edited = receive_comment(session, candidate, incoming("dash-debate", texts["debate"] + " Hélas.")).comment
        assert edited.revision == 2, "the edit is scored by the candidate"
        for key, status in (("calendar", PUBLISHED), ("insult", REJECTED), ("boycott", REJECTED), ("debate", PUBLISHED)):
            comment = edited if key == "debate" else scored[key]
            decision = decide(session, comment.id, moderator, status, "toxic" if status == REJECTED else None)
            version = CANDIDATE if key == "debate" else BASE
            expected[version][0] += 1
            expected[version][1] += decision.verdict == OVERRIDE
            assert decision.verdict == (CONFIRM if (status == REJECTED) == (comment.suggestion == REJECT) else OVERRIDE)
    assert expected[BASE][1] >= 1, "the clean comment rejected goes against the model"
    page = text_of(Browser(site, "ada").get("/admin/dashboard"))
    for version, (decided, overrides) in expected.items():
        rate = round(100 * overrides / decided)
        assert f"{version} {decided} {overrides} {rate}% {100 - rate}%" in page, page[page.index("Model version"):]


def test_the_models_page_follows_a_running_refresh_in_a_real_browser_and_reloads_when_it_ends(site, registry, database):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium (apt-get install -y chromium)")
    log, errors = registry.root / "refresh.log", []
    log.write_text("[   1.0s] the site's own comments: 0 to learn from, 0 to judge on (the site's recent decisions)\n")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"], headless=True)
        page = chromium.new_context(base_url=site, locale="en-US").new_page()
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/login")
        login = page.locator("section.login")
        login.locator("input[name=username]").fill("ada")
        login.locator("input[name=password]").fill(PASSWORD)
        login.locator("button[type=submit]").click()
        expect(page).not_to_have_url(re.compile(r"/login"))
        with refresh.one_at_a_time(database):
            page.goto("/admin/models")
            expect(page.locator(".refresh-state")).to_contain_text("A refresh is running.")
            with open(log, "a") as output:
                output.write("[  42.5s] loaded 15 comments from 1 files\n")
            expect(page.locator(".refresh-log")).to_contain_text("[  42.5s] loaded 15 comments", timeout=10_000)
        expect(page.locator(".refresh-state")).to_contain_text("No refresh is running.", timeout=10_000)
        chromium.close()
    assert not errors, "the page logged errors (a CSP violation shows there)"
