"""The moderators' queue in a real browser: Debian's headless Chromium, driven by Playwright, on the app served by waitress."""

import re
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import waitress
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select

import moderation
from moderation.comments.models import Decision
from moderation.database import Database
from moderation.receiving import receive_comment

from .conftest import PASSWORD, ROOT, add_user, incoming

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
SCREENSHOT = ROOT / "test-artifacts" / "queue.png"
MARKUP = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2"><b>gras</b> espèce d\'idiot'

# Comments on one article about a constitutional referendum: what a moderator must see, and what they must not.
FLAGGED = {
    "insult": ("Espèce de crétin, ferme-la, personne ne veut lire tes âneries.", "Bakary"),
    "imbecile": ("T'es vraiment un imbécile fini, va te cacher.", "Clarisse"),
    "dunce": ("Pauvre idiot, retourne à l'école avant de parler du référendum.", "Jojo75"),
    "spam": ("Gagnez 500 000 FCFA par jour depuis chez vous, écrivez-moi sur WhatsApp", "Opportunité"),
    "markup": (MARKUP, "<i>hacker</i>"),
}
CLEAN = {
    "calendar": ("Le calendrier du référendum est trop court pour que les citoyens lisent le projet de Constitution.", "Awa"),
    "boycott": ("Je pense que l'opposition a tort de boycotter : il vaut mieux voter non que rester chez soi.", "Koffi"),
    "debate": ("Un débat public sur la nouvelle Constitution aurait rassuré beaucoup d'électeurs.", "Mariam"),
}
FRENCH = {"nav": ["File d'attente", "Historique"], "logout": "Se déconnecter", "approve": "Approuver", "reject": "Rejeter"}
ENGLISH = {"nav": ["Queue", "History"], "logout": "Log out", "approve": "Approve", "reject": "Reject"}


@dataclass
class Site:
    """The served app and what was put in its database."""

    url: str
    database_url: str
    ids: dict[str, int]
    statuses: dict[str, str]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module: starting it is the slow part."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: the browser tests need Debian's Chromium (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def seed(database_url: str, scorer, password_hash: str) -> tuple[dict[str, int], dict[str, str]]:
    """Accounts and comments, put in through the service layer as the comment system would."""
    database = Database(database_url)
    ids, statuses = {}, {}
    with database.session() as session:
        add_user(session, "mona", "moderator", password_hash)
        add_user(session, "ada", "admin", password_hash)
        for key, (text, author) in {**CLEAN, **FLAGGED}.items():
            comment = receive_comment(session, scorer, incoming(f"browser-{key}", text, author_name=author)).comment
            ids[key], statuses[key] = comment.id, comment.status
    database.engine.dispose()
    return ids, statuses


@pytest.fixture
def site(models_dir, scorer, sqlite_url, password_hash):
    """The app on a seeded database, served by waitress on a free local port for the test's duration."""
    ids, statuses = seed(sqlite_url, scorer, password_hash)
    app = moderation.create_app({"DATABASE_URL": sqlite_url, "MODELS_DIR": str(models_dir)})
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield Site(f"http://127.0.0.1:{server.effective_port}", sqlite_url, ids, statuses)
    server.close()
    server.task_dispatcher.shutdown()
    thread.join(timeout=5)
    app.extensions["palabre.database"].engine.dispose()


@pytest.fixture
def open_page(browser, site):
    """Open pages in fresh contexts (separate cookies, a French-speaking browser); our pages must log no errors."""
    contexts, errors = [], []

    def watch(page):
        """Keep console errors (CSP violations show there) and uncaught exceptions from our own pages."""
        def on_console(message):
            """An error logged while one of our pages was open."""
            where = message.location.get("url") or page.url
            if message.type == "error" and where.startswith(site.url):
                errors.append(f"{where}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: errors.append(f"{page.url}: uncaught {error}"))

    def opener():
        """A new page in a new browser context, watched for errors."""
        context = browser.new_context(base_url=site.url, locale="fr-FR", viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        watch(page)
        return page

    yield opener
    for context in contexts:
        context.close()
    assert errors == [], "our pages logged errors in the browser console"


@pytest.fixture
def page(open_page):
    """A page in a fresh browser context."""
    return open_page()


def log_in(page, username="mona"):
    """Ask for the queue, get sent to the login form, log in and land on the queue."""
    page.goto("/queue")
    expect(page).to_have_url(re.compile(r"/login\b"))
    login = page.locator("section.login")
    login.locator("input[name=username]").fill(username)
    login.locator("input[name=password]").fill(PASSWORD)
    login.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/queue$"))


def rows(page):
    """The queue's comment rows."""
    return page.locator("ol[data-queue] li.item")


def row_ids(page) -> list[int]:
    """Comment ids of the queue's rows, top to bottom."""
    return [int(value) for value in rows(page).evaluate_all("items => items.map(item => item.dataset.comment)")]


def has_class(name: str) -> re.Pattern:
    """Matches a class attribute holding this class."""
    return re.compile(rf"(^|\s){name}(\s|$)")


def selected_id(page) -> int:
    """The comment id of the row the keyboard acts on."""
    return int(page.locator("li.item.selected").get_attribute("data-comment"))


def row_of(page, comment_id: int):
    """The queue row of one comment."""
    return page.locator(f"li.item[data-comment='{comment_id}']")


def answered(row):
    """Wait until the row shows the server's answer to a decision, and return that answer."""
    expect(row.locator("output.outcome")).not_to_have_text("")
    return row.locator("output.outcome").inner_text()


def work_the_queue(page) -> tuple[int, int]:
    """With the keyboard only: approve the selected comment (a), move down (j), choose off-topic (2), reject (r)."""
    approved = selected_id(page)
    page.keyboard.press("a")
    answered(row_of(page, approved))
    page.keyboard.press("j")
    rejected = selected_id(page)
    page.keyboard.press("2")
    page.keyboard.press("r")
    answered(row_of(page, rejected))
    return approved, rejected


def expect_decided(page, comment_id: int):
    """The row shows an accepted decision, not a refusal."""
    row = row_of(page, comment_id)
    expect(row, f"comment {comment_id} was not decided; the row says: {answered(row)!r}").to_have_class(has_class("decided"))
    expect(row, f"comment {comment_id} was refused; the row says: {answered(row)!r}").not_to_have_class(has_class("refused"))


def header_labels(page) -> dict:
    """The navigation and button labels a moderator reads, in the page's language."""
    return {
        "nav": [page.locator(f'header.top nav a[href="{path}"]').inner_text() for path in ("/queue", "/history")],
        "logout": page.locator("header.top .account button.link").inner_text().strip(),
        "approve": page.locator("li.item button.approve").first.inner_text().split()[0],
        "reject": page.locator("li.item button.reject").first.inner_text().split()[0],
    }


def switch_language(page, code: str):
    """Press a language button in the header and wait for the page to come back in that language."""
    page.locator(f"header.top form.language button[value={code}]").click()
    expect(page.locator("html")).to_have_attribute("lang", code)


def test_moderator_logs_in_and_sees_the_flagged_comments_only(page, site):
    assert {key: site.statuses[key] for key in FLAGGED} == dict.fromkeys(FLAGGED, "pending")
    assert {key: site.statuses[key] for key in CLEAN} == dict.fromkeys(CLEAN, "published")
    log_in(page)
    assert sorted(row_ids(page)) == sorted(site.ids[key] for key in FLAGGED)
    expect(rows(page).first).to_have_class(has_class("selected"))
    queue_text = page.locator("ol[data-queue]").inner_text()
    assert "Espèce de crétin, ferme-la" in queue_text
    assert "écrivez-moi sur WhatsApp" in queue_text
    shown = page.locator("main").inner_text()
    for text, _author in CLEAN.values():
        assert text not in shown
    assert page.locator("header.top .who").inner_text().startswith("mona")
    assert page.locator('header.top nav a[href^="/admin"]').count() == 0


def test_keyboard_approve_and_reject_are_recorded_with_the_moderator(page, site):
    log_in(page)
    queue = row_ids(page)
    expect(row_of(page, queue[0])).to_have_class(has_class("selected"))
    approved_id, rejected_id = work_the_queue(page)
    expect_decided(page, approved_id)
    expect_decided(page, rejected_id)
    assert [approved_id, rejected_id] == [queue[0], queue[2]], "a moves on to the next comment, then j moves one further"
    expect(row_of(page, queue[1])).not_to_have_class(has_class("decided"))

    page.goto("/history")
    for comment_id, status in ((approved_id, "published"), (rejected_id, "rejected")):
        line = page.locator("table.history tbody tr").filter(has=page.locator(f'a[href="/comments/{comment_id}"]'))
        mine = line.filter(has_text="mona")
        expect(mine).to_have_count(1)
        expect(mine.locator(f".status-{status}")).to_have_count(1)

    database = Database(site.database_url)
    with database.session() as session:
        made = session.scalars(select(Decision).where(Decision.decided_by == "moderator")).all()
        recorded = sorted((d.comment_id, d.status, d.reason, d.moderator.username) for d in made)
    database.engine.dispose()
    assert recorded == sorted([(approved_id, "published", None, "mona"), (rejected_id, "rejected", "off_topic", "mona")])


def shows_as_text(page, text, markup: str):
    """The markup is visible as typed, and no element was made from it."""
    shown = text.inner_text()
    assert markup in shown, shown
    assert text.locator("script, img, b, i").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("Array.from(document.scripts).every(s => s.src.startsWith(location.origin + '/static/'))")


def test_html_and_script_in_a_comment_show_as_plain_text(page, site):
    dialogs = []

    def on_dialog(dialog):
        """An alert, confirm or prompt would mean the comment's script ran: note it and close it."""
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    log_in(page)
    row = page.locator(f"li.item[data-comment='{site.ids['markup']}']")
    for markup in ("<script>window.__pwned = 1</script>", '<img src=x onerror="window.__pwned=2">', "<b>gras</b>"):
        shows_as_text(page, row.locator(".comment-text"), markup)
    shows_as_text(page, row.locator(".author"), "<i>hacker</i>")

    page.goto(f"/comments/{site.ids['markup']}")
    shows_as_text(page, page.locator(".panel .comment-text"), MARKUP)
    assert dialogs == []


def test_english_choice_changes_the_labels_and_is_kept_for_the_user(open_page):
    page = open_page()
    log_in(page)
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    switch_language(page, "en")
    assert header_labels(page) == ENGLISH
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert header_labels(page) == ENGLISH

    elsewhere = open_page()
    log_in(elsewhere)
    expect(elsewhere.locator("html")).to_have_attribute("lang", "en")
    colleague = open_page()
    log_in(colleague, "ada")
    expect(colleague.locator("html")).to_have_attribute("lang", "fr")


def test_french_is_the_default_and_comes_back_after_english(page):
    log_in(page)
    assert header_labels(page) == FRENCH
    switch_language(page, "en")
    switch_language(page, "fr")
    page.reload()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    assert header_labels(page) == FRENCH


def test_question_mark_shows_and_hides_the_shortcuts(page):
    log_in(page)
    help_dialog = page.locator("dialog#help")
    expect(help_dialog).to_be_hidden()
    expect(rows(page).first).to_have_class(has_class("selected"))  # the queue's script is listening
    page.keyboard.press("?")
    expect(help_dialog).to_be_visible()
    expect(help_dialog.locator("kbd", has_text="j").first).to_be_visible()
    page.keyboard.press("j")  # keys do nothing behind the help
    expect(rows(page).first).to_have_class(has_class("selected"))
    page.keyboard.press("?")
    expect(help_dialog).to_be_hidden()
    page.keyboard.press("?")
    expect(help_dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()


def test_screenshot_of_a_queue_being_worked(page):
    log_in(page)
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    decided = work_the_queue(page)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for comment_id in decided:
        expect_decided(page, comment_id)

