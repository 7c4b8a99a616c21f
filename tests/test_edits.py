"""Edits over real HTTP: a moderator's decision stands until a moderator changes it, whatever the author edits."""

import json
import re
import threading

import pytest
import requests
from sqlalchemy import func, select

from moderation import create_app, settings
from moderation.api.clients import create_client
from moderation.comments.models import Comment, Decision, Revision
from moderation.database import Database
from moderation.receiving import receive_comment
from moderation.service import Refused, decide

from .conftest import PASSWORD, LiveServer, add_user, incoming

OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."
OTHER_OPINION = "La Constitution proposée renforce le président ; je voterai non au référendum."
INSULT = "Espèce de crétin, ferme ta sale gueule"
ARTICLE = {"id": "politique-edits", "title": "Référendum : le projet de nouvelle Constitution soumis au vote",
           "body": "Le gouvernement soumet au vote le projet de Constitution ; l'opposition appelle au boycott du référendum."}


def form_token(page: str) -> str:
    """The CSRF token of a page's first form."""
    return re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)


class Site:
    """The comment system and a moderator's browser, both talking to one running server."""

    def __init__(self, url: str, key: str, database: Database):
        self.url, self.key, self.database = url, key, database
        self.browser = requests.Session()

    def send(self, comment_id: str, text: str) -> tuple[int, dict]:
        """The comment system sends a comment (or a new text for it)."""
        response = requests.post(f"{self.url}/api/v1/comments", json={"id": comment_id, "text": text, "article": ARTICLE},
                                 headers={"Authorization": f"Bearer {self.key}"}, timeout=30)
        return response.status_code, response.json()

    def log_in(self, username: str) -> None:
        """The moderator logs in through the form."""
        token = form_token(self.browser.get(f"{self.url}/login", timeout=30).text)
        answer = self.browser.post(f"{self.url}/login", data={"username": username, "password": PASSWORD, "csrf_token": token},
                                   allow_redirects=False, timeout=30)
        assert answer.status_code == 302, answer.text[:300]

    def decide(self, comment_id: str, action: str, reason: str | None = None) -> dict:
        """The moderator approves or rejects the comment from its page, as the queue's script does."""
        internal = self.comment(comment_id).id
        token = form_token(self.browser.get(f"{self.url}/comments/{internal}", timeout=30).text)
        answer = self.browser.post(f"{self.url}/comments/{internal}/decision", headers={"Accept": "application/json"},
                                   data={"action": action, "reason": reason or "", "csrf_token": token}, timeout=30)
        assert answer.status_code == 200, answer.text[:300]
        return answer.json()

    def comment(self, comment_id: str) -> Comment:
        """The comment as stored."""
        with self.database.session() as session:
            return session.scalar(select(Comment).where(Comment.external_id == comment_id))

    def events(self, comment_id: str) -> list[dict]:
        """The webhook events written for the comment, oldest first (what the site's receiver is sent)."""
        from moderation.admin.models import Delivery

        with self.database.session() as session:
            bodies = session.scalars(select(Delivery.body).join(Comment, Comment.id == Delivery.comment_id)
                                     .where(Comment.external_id == comment_id).order_by(Delivery.id))
            return [json.loads(body)["data"] for body in bodies]

    def set_review_rejected_edits(self, on: bool) -> None:
        """An admin chooses, on the thresholds page, what becomes of edits of rejected comments."""
        admin = Site(self.url, self.key, self.database)
        admin.log_in("ada")
        token = form_token(admin.browser.get(f"{self.url}/admin/thresholds", timeout=30).text)
        form = {"csrf_token": token, "qa_share": "0", **({"review_rejected_edits": "on"} if on else {})}
        assert admin.browser.post(f"{self.url}/admin/thresholds", data=form, timeout=30).status_code == 200


@pytest.fixture
def site(models_dir, database_url, password_hash):
    """A real server on a fresh database (SQLite, and PostgreSQL where set), a webhook client, mona the moderator."""
    database = Database(database_url)
    with database.session() as session:
        settings.set_qa_share(session, 0.0)
        add_user(session, "mona", "moderator", password_hash)
        add_user(session, "ada", "admin", password_hash)
        _, key = create_client(session, "site", "https://site.example/hooks")
        session.commit()
    app = create_app({"DATABASE_URL": database_url, "MODELS_DIR": str(models_dir)})
    server = LiveServer(app)
    site = Site(server.url, key, database)
    site.log_in("mona")
    yield site
    server.close()
    app.extensions["palabre.database"].engine.dispose()
    database.engine.dispose()


def test_an_edit_of_a_comment_a_moderator_took_down_stays_down(site):
    """The probe's case: published by the model, rejected by a moderator, then sent again with one more space and then
    with new words. The comment stays rejected, decided by the moderator; the new text is scored and kept as revision 2;
    the site is sent no event claiming the model published it."""
    assert site.send("troll-1", OPINION)[1]["status"] == "published"
    site.decide("troll-1", "reject", "off_topic")
    status, answer = site.send("troll-1", OPINION + " ")
    assert (status, answer["status"], answer["revision"]) == (200, "rejected", 1)
    status, answer = site.send("troll-1", OTHER_OPINION)
    assert (status, answer["status"], answer["revision"]) == (201, "rejected", 2)
    stored = site.comment("troll-1")
    assert (stored.status, stored.decided_by, stored.text) == ("rejected", "moderator", OTHER_OPINION)
    assert [(e["status"], e["decided_by"]) for e in site.events("troll-1")] == [("published", "model"), ("rejected", "moderator")]


def test_a_site_may_send_edits_of_rejected_comments_back_to_the_queue(site):
    """With the site's setting on, the edit of a rejected comment waits for a moderator (hidden meanwhile), marked as edited."""
    site.send("troll-2", OPINION)
    site.decide("troll-2", "reject", "toxic")
    site.set_review_rejected_edits(True)
    status, answer = site.send("troll-2", OTHER_OPINION)
    assert (status, answer["status"]) == (201, "pending")
    stored = site.comment("troll-2")
    assert (stored.status, stored.review_reason, stored.decided_by) == ("pending", "edited", None)
    assert site.decide("troll-2", "approve")["status"] == "published"


def test_an_approved_comment_edited_into_abuse_goes_back_to_a_moderator(site):
    """A moderator approved a flagged comment; its author then makes it worse: it is held for review again (hidden),
    marked as edited, not left published nor decided by the model. A harmless edit of an approved comment stays
    published, still the moderator's."""
    for comment_id in ("swap-1", "swap-2"):
        assert site.send(comment_id, INSULT)[1]["status"] == "pending"
        assert site.decide(comment_id, "approve")["status"] == "published"
    status, answer = site.send("swap-1", INSULT + " Et toi aussi, imbécile.")
    assert (status, answer["status"]) == (201, "pending") and "toxic" in answer["labels"]
    assert (site.comment("swap-1").review_reason, site.comment("swap-1").decided_by) == ("edited", None)
    status, answer = site.send("swap-2", OTHER_OPINION)
    assert (status, answer["status"]) == (201, "published")
    assert site.comment("swap-2").decided_by == "moderator"


def test_webhooks_report_only_what_changed(site):
    """An edit that leaves the model's decision as it was sends no new event; one that changes it sends exactly one."""
    site.send("hook-1", OPINION)
    site.send("hook-1", OTHER_OPINION)
    assert [e["status"] for e in site.events("hook-1")] == ["published"]
    site.send("hook-2", INSULT)
    assert site.events("hook-2") == []
    site.send("hook-2", OPINION)
    assert [e["status"] for e in site.events("hook-2")] == ["published"]


@pytest.mark.parametrize("variant", [OPINION + "  ", " " + OPINION.replace(" ", "  "), OPINION.replace(" ", "\u200b ", 3),
                                     OPINION.replace("é", "e\u0301")])
def test_an_edit_that_only_changes_spacing_or_invisible_characters_changes_nothing(site, variant):
    """The same words with other spacing, zero-width characters or decomposed accents are not an edit: the stored
    result comes back (200), no new revision, no new decision, no event."""
    site.send("same-1", OPINION)
    with site.database.session() as session:
        before = session.scalar(select(func.count()).select_from(Decision))
    status, answer = site.send("same-1", variant)
    assert (status, answer["revision"], answer["text"]) == (200, 1, OPINION)
    with site.database.session() as session:
        assert session.scalar(select(func.count()).select_from(Decision)) == before
        assert session.scalar(select(func.count()).select_from(Revision)) == 1
    assert len(site.events("same-1")) == 1


def test_a_decision_and_an_edit_at_the_same_moment_never_lose_the_decision(database, scorer, password_hash):
    """A moderator rejects while the author keeps editing: whichever lands first, a recorded rejection is the comment's
    status at the end (the edit read before the decision is tried again, and the decision on a replaced text is refused)."""
    with database.session() as session:
        moderator = add_user(session, "mona", "moderator", password_hash)
        settings.set_qa_share(session, 0.0)
        session.commit()
        comment_id = receive_comment(session, scorer, incoming("race", OPINION)).comment.id
    stop = threading.Event()

    def edit():
        with database.session() as session:
            number = 0
            while not stop.is_set():
                number += 1
                receive_comment(session, scorer, incoming("race", f"{OPINION} (précision {number})"))

    editor = threading.Thread(target=edit)
    editor.start()
    try:
        with database.session() as session:
            for _ in range(40):
                try:
                    decide(session, comment_id, moderator, "rejected", "toxic")
                    break
                except Refused:  # the text changed under the moderator: they read it again and decide again
                    session.rollback()
    finally:
        stop.set()
        editor.join()
    with database.session() as session:
        rejected = session.scalar(select(func.count()).select_from(Decision).where(Decision.decided_by == "moderator"))
        assert rejected == 1
        assert session.get(Comment, comment_id).status == "rejected"
