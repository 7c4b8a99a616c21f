"""Coral Talk's external moderation phase over real HTTP, with requests shaped and signed the way Coral sends them."""

import hashlib
import hmac
import html
import json
import re
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from sqlalchemy import func, select

from moderation import create_app, settings
from moderation.comments.models import Article, Comment, Revision, Score
from moderation.database import Database
from moderation.integrations import coral
from moderation.policy import LabelThresholds
from moderation.service import save_article

from .conftest import LiveServer, add_user, csrf_token, login

SECRET = "ems_test_secret_1"
OLD_SECRET = "ems_old_secret_0"
STORY = {"id": "245b3856-b0a0-4d2f-a6bb-58c71f18d6a6", "url": "https://www.abidjan-news.ci/politique/referendum-constitution"}
INSULT = "<div>Espèce de <b>crétin</b>, ferme ta sale gueule</div>"
OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."
SPAM = "Gagnez 500 000 FCFA par semaine depuis chez vous, écrivez-moi sur WhatsApp au 07 07 07 07 07"


def coral_request(body, comment_id=None, action="NEW", story=None, **comment_fields):
    """A request as Coral builds it (Coral itself sends no comment id; a proxy may add one)."""
    comment = {"body": body, "parentID": None, **comment_fields}
    if comment_id is not None:
        comment["id"] = comment_id
    return {"action": action, "comment": comment,
            "author": {"id": "baf4e943-3594-4fcc-b2ba-3e8de7a76352", "role": "COMMENTER"},
            "story": story or STORY, "site": {"id": "a4bede88-2d2c-4424-bc18-4322a9e285a6"},
            "tenantID": "19ba5794-7eeb-4d46-a81b-c00c61672501", "tenantDomain": "abidjan-news.ci"}


def signature(raw: bytes, *secrets: str) -> str:
    """X-Coral-Signature as Coral writes it: one sha256= signature per active secret, comma-separated."""
    return ",".join(f"sha256={hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()}" for secret in secrets)


class Coral:
    """Coral's side of the phase: it posts to the running server."""

    def __init__(self, base: str, database: Database, app):
        self.base, self.database, self.app = base, database, app

    def post(self, payload=None, raw: bytes | None = None, secrets=(SECRET,), header: str | None = "sign"):
        """Send one moderation request; return (status, parsed JSON or None, raw answer)."""
        data = raw if raw is not None else json.dumps(payload, indent=2, ensure_ascii=False).encode()
        request = urllib.request.Request(self.base + "/integrations/coral", data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if header is not None:
            request.add_header("X-Coral-Signature", signature(data, *secrets) if header == "sign" else header)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = response.read()
                return response.status, json.loads(answer) if answer else None, answer
        except urllib.error.HTTPError as error:
            answer = error.read()
            assert error.headers["Content-Type"].startswith("application/json"), answer[:300]
            return error.code, json.loads(answer), answer

    def stored(self, **where):
        """The stored comments matching, with their article."""
        with self.database.session() as session:
            query = select(Comment).filter_by(**where).order_by(Comment.id)
            return session.scalars(query).all()

    def count(self, model) -> int:
        """How many rows of a table there are."""
        with self.database.session() as session:
            return session.scalar(select(func.count()).select_from(model))


@contextmanager
def serving(sqlite_url, models_dir, **config):
    """The app on waitress in a thread, as `python app.py` serves it."""
    database = Database(sqlite_url)
    with database.session() as session:
        settings.set_qa_share(session, 0.0)
        session.commit()
    app = create_app({"DATABASE_URL": sqlite_url, "MODELS_DIR": str(models_dir), **config})
    server = LiveServer(app)
    try:
        yield Coral(server.url, database, app)
    finally:
        server.close()
        app.extensions["palabre.database"].engine.dispose()
        database.engine.dispose()


@pytest.fixture
def phase(models_dir, sqlite_url, monkeypatch):
    """The phase with its secret in the app's configuration."""
    monkeypatch.delenv(coral.SECRET_VARIABLE, raising=False)
    with serving(sqlite_url, models_dir, CORAL_SECRET=SECRET) as running:
        yield running


@pytest.fixture
def phase_from_environment(models_dir, sqlite_url, monkeypatch):
    """The phase with no secret in its configuration: MODERATION_CORAL_SECRET decides, read at each request."""
    monkeypatch.delenv(coral.SECRET_VARIABLE, raising=False)
    with serving(sqlite_url, models_dir) as running:
        yield running


def test_a_toxic_comment_is_held_in_premoderation_flagged_toxic_and_waits_in_palabres_queue(phase):
    status, answer, _ = phase.post(coral_request(INSULT, "c-insult"))
    assert status == 200
    assert answer == {"status": "PREMOD", "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}]}
    [comment] = phase.stored(external_id="c-insult")
    assert (comment.status, comment.labels, comment.text) == ("pending", ["toxic"], INSULT)
    assert comment.author_id == "baf4e943-3594-4fcc-b2ba-3e8de7a76352"


def test_html_is_scored_as_the_reader_sees_it_and_highlighted_inside_the_html_as_stored(phase):
    body = "<p>Quel cr&eacute;tin</p><p>celui-l&agrave;</p>"
    status, answer, _ = phase.post(coral_request(body, "c-html"))
    assert (status, answer["status"]) == (200, "PREMOD")
    assert phase.stored(external_id="c-html")[0].text == body
    with phase.database.session() as session:
        explanation = session.scalar(select(Score.explanation))
    assert "cr&eacute;tin" in {body[start:end] for term in explanation["toxic"] for start, end in term["spans"]}


def test_a_clean_on_topic_comment_gets_204_and_is_published(phase):
    status, answer, raw = phase.post(coral_request(OPINION, "c-opinion"))
    assert (status, answer, raw) == (204, None, b"")
    assert phase.stored(external_id="c-opinion")[0].status == "published"


def test_a_clean_comment_drawn_for_the_qa_sample_waits_in_palabre_but_coral_publishes_it(phase):
    with phase.database.session() as session:
        settings.set_qa_share(session, 1.0)
        session.commit()
    assert phase.post(coral_request(OPINION, "c-sample"))[0] == 204
    assert phase.stored(external_id="c-sample")[0].status == "pending"


def test_off_topic_spam_is_held_and_flagged_as_spam(phase):
    status, answer, _ = phase.post(coral_request(SPAM, "c-spam"))
    assert status == 200
    assert answer == {"status": "PREMOD", "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_SPAM"}]}
    assert phase.stored(external_id="c-spam")[0].labels == ["off_topic"]


def test_a_comment_over_the_reject_threshold_is_rejected_with_coral_reason_codes(phase):
    with phase.database.session() as session:
        settings.pin_thresholds(session, {"toxic": LabelThresholds(review=0.4, reject=0.9)})
        session.commit()
    status, answer, _ = phase.post(coral_request(INSULT, "c-reject"))
    assert status == 200 and answer["status"] == "REJECTED"
    assert answer["actions"] == [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}]
    assert answer["moderationAction"] == {"status": "REJECTED", "rejectionReason": {"code": "ABUSIVE"}}
    assert phase.stored(external_id="c-reject")[0].status == "rejected"


def test_a_story_palabre_premoderates_holds_even_clean_comments_without_flags(phase):
    with phase.database.session() as session:
        save_article(session, STORY["id"], title="Référendum : la Constitution soumise au vote", premoderated=True)
    status, answer, _ = phase.post(coral_request(OPINION, "c-premod"))
    assert (status, answer) == (200, {"status": "PREMOD", "actions": []})


def test_an_unknown_story_is_created_under_its_url_and_a_title_the_site_set_is_kept(phase):
    phase.post(coral_request(OPINION, "c-new-story", story={"id": "story-2", "url": "https://site.ci/sport/can"}))
    phase.post(coral_request(OPINION, "c-known-story"))
    with phase.database.session() as session:
        save_article(session, STORY["id"], title="Référendum : la Constitution soumise au vote")
    phase.post(coral_request(OPINION + " Vraiment.", "c-known-story-2"))
    with phase.database.session() as session:
        titles = dict(session.execute(select(Article.external_id, Article.title)).all())
    assert titles == {"story-2": "https://site.ci/sport/can", STORY["id"]: "Référendum : la Constitution soumise au vote"}


@pytest.mark.parametrize("comment_id", ["c-twice", None])
def test_the_same_comment_sent_twice_is_stored_once_and_answered_the_same(phase, comment_id):
    first = phase.post(coral_request(INSULT, comment_id))
    again = phase.post(coral_request(INSULT, comment_id))
    assert first == again and first[0] == 200
    assert (phase.count(Comment), phase.count(Revision), phase.count(Score)) == (1, 1, 1)


def test_an_edited_comment_is_rescored_as_a_new_revision(phase):
    assert phase.post(coral_request(OPINION, "c-edit"))[0] == 204
    status, answer, _ = phase.post(coral_request(INSULT, "c-edit", action="EDIT"))
    assert (status, answer["status"]) == (200, "PREMOD")
    [comment] = phase.stored(external_id="c-edit")
    assert (comment.revision, comment.status, comment.text) == (2, "pending", INSULT)
    assert phase.count(Score) == 2


@pytest.mark.parametrize("header, code", [
    (None, "missing_signature"),
    ("", "missing_signature"),
    ("sha256=" + "0" * 64, "invalid_signature"),
    ("sha256=not-hex-at-all-é", "invalid_signature"),
    ("v1=abc,t=123", "invalid_signature"),
])
def test_a_request_without_a_valid_signature_is_refused_and_nothing_is_stored(phase, header, code):
    status, answer, _ = phase.post(coral_request(INSULT, "c-unsigned"), header=header)
    assert (status, answer["error"]["code"]) == (401, code)
    assert "X-Coral-Signature" in answer["error"]["message"]
    assert phase.count(Comment) == 0


def test_the_right_digest_under_another_algorithm_name_is_refused(phase):
    raw = json.dumps(coral_request(INSULT, "c-sha1")).encode()
    status, answer, _ = phase.post(raw=raw, header=signature(raw, SECRET).replace("sha256=", "sha1="))
    assert status == 401 and "sha1" in answer["error"]["message"]


def test_a_body_changed_after_signing_is_refused(phase):
    raw = json.dumps(coral_request(OPINION, "c-tampered")).encode()
    status, _, _ = phase.post(raw=raw.replace(b"opposition", b"OPPOSITION"), header=signature(raw, SECRET))
    assert status == 401 and phase.count(Comment) == 0


def test_during_rotation_one_matching_signature_among_several_is_enough(phase):
    status, _, _ = phase.post(coral_request(OPINION, "c-rotated"), secrets=(OLD_SECRET, SECRET))
    assert status == 204


def test_during_rotation_the_environment_can_hold_the_old_and_the_new_secret(phase_from_environment, monkeypatch):
    monkeypatch.setenv(coral.SECRET_VARIABLE, f"{SECRET}, {OLD_SECRET}")
    assert phase_from_environment.post(coral_request(OPINION, "c-old"), secrets=(OLD_SECRET,))[0] == 204
    assert phase_from_environment.post(coral_request(OPINION + " Oui.", "c-new"), secrets=(SECRET,))[0] == 204
    monkeypatch.setenv(coral.SECRET_VARIABLE, SECRET)
    assert phase_from_environment.post(coral_request(OPINION + " Non.", "c-retired"), secrets=(OLD_SECRET,))[0] == 401


def test_without_a_secret_the_phase_says_which_variable_to_set(phase_from_environment):
    status, answer, _ = phase_from_environment.post(coral_request(INSULT, "c-no-secret"))
    assert (status, answer["error"]["code"]) == (503, "not_configured")
    assert "MODERATION_CORAL_SECRET" in answer["error"]["message"]
    assert phase_from_environment.count(Comment) == 0


def test_without_a_model_coral_is_told_and_carries_on(sqlite_url, tmp_path):
    with serving(sqlite_url, tmp_path, CORAL_SECRET=SECRET) as running:
        status, answer, _ = running.post(coral_request(INSULT, "c-no-model"))
        assert (status, answer["error"]["code"]) == (503, "no_model")
        assert running.count(Comment) == 0


@pytest.mark.parametrize("raw, code, field", [
    (b'{"comment": {"body": "x"', "invalid_json", None),
    (b"", "invalid_json", None),
    (b"\xff\xfe{}", "invalid_json", None),
    (b'{"comment": {"body": NaN}}', "invalid_json", None),
    (b"[" * 100_000 + b"]" * 100_000, "invalid_json", None),
    (b"[1, 2]", "invalid_field", None),
    (b'"comment"', "invalid_field", None),
    (b'{"story": {"id": "s"}}', "invalid_field", "comment"),
    (b'{"comment": "Bonjour", "story": {"id": "s"}}', "invalid_field", "comment"),
    (b'{"comment": {"parentID": null}, "story": {"id": "s"}}', "invalid_field", "comment.body"),
    (b'{"comment": {"body": 5}, "story": {"id": "s"}}', "invalid_field", "comment.body"),
    (b'{"comment": {"body": "   "}, "story": {"id": "s"}}', "invalid_field", "comment.body"),
    (b'{"comment": {"body": "<p></p>"}, "story": {"id": "s"}}', "invalid_field", "comment.body"),
    (b'{"comment": {"body": "a\\u0000b"}, "story": {"id": "s"}}', "invalid_field", "comment.body"),
    (b'{"comment": {"body": "\\ud800 seul"}, "story": {"id": "s"}}', "invalid_field", "comment.body"),
    (b'{"comment": {"body": "ok"}}', "invalid_field", "story"),
    (b'{"comment": {"body": "ok"}, "story": {}}', "invalid_field", "story.id"),
    (b'{"comment": {"body": "ok"}, "story": {"id": ["s"]}}', "invalid_field", "story.id"),
    (b'{"comment": {"body": "ok", "id": {"a": 1}}, "story": {"id": "s"}}', "invalid_field", "comment.id"),
    (b'{"comment": {"body": "ok"}, "story": {"id": "s", "url": 5}}', "invalid_field", "story.url"),
    (b'{"comment": {"body": "ok"}, "story": {"id": "s"}, "author": "Awa"}', "invalid_field", "author"),
    (b'{"comment": {"body": "ok"}, "story": {"id": "s"}, "author": {"id": true}}', "invalid_field", "author.id"),
])
def test_a_signed_request_coral_could_not_have_meant_gets_a_json_400_naming_the_problem(phase, raw, code, field):
    status, answer, _ = phase.post(raw=raw)
    assert (status, answer["error"]["code"], answer["error"]["field"]) == (400, code, field)
    assert answer["error"]["message"]
    assert phase.count(Comment) == 0


def test_a_comment_over_the_length_limit_is_refused_with_the_limit(phase):
    status, answer, _ = phase.post(coral_request("x" * 20_001, "c-long"))
    assert (status, answer["error"]["field"]) == (400, "comment.body") and "20,000" in answer["error"]["message"]


def test_a_body_over_the_size_limit_and_other_methods_answer_json(phase):
    status, answer, _ = phase.post(raw=b'{"comment": {"body": "' + b"x" * (3 * 1024 * 1024) + b'"}}')
    assert (status, answer["error"]["code"]) == (413, "too_large")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(phase.base + "/integrations/coral", timeout=30)
    assert (refused.value.code, json.loads(refused.value.read())["error"]["code"]) == (405, "method_not_allowed")


@pytest.mark.parametrize("body", ["<![if x]> ça passe", "&#xD800; &bogus; &amp", "<script>alert(1)</script> bonjour",
                                  "Ça va ? 🇨🇮\u200b\u202eeliam\u202c", "<p>a</p>" * 2_000])
def test_odd_but_storable_bodies_are_stored_exactly_as_sent(phase, body):
    status, _, _ = phase.post(coral_request(body, "c-odd"))
    assert status in (200, 204)
    assert phase.stored(external_id="c-odd")[0].text == body


@pytest.fixture
def admin(phase_from_environment, password_hash):
    """An admin logged in to the admin pages of the app that serves the phase."""
    with phase_from_environment.database.session() as session:
        add_user(session, "ada", "admin", password_hash)
    browser = phase_from_environment.app.test_client()
    login(browser, "ada")
    return browser


def add_secret(admin, secret: str) -> str:
    """Add a signing secret in the admin pages' Coral Talk section; return the page the admin then sees."""
    response = admin.post("/admin/clients/coral", data={"csrf_token": csrf_token(admin, "/admin/clients"), "secret": secret})
    assert response.location == "/admin/clients#coral"
    return html.unescape(admin.get(response.location).get_data(as_text=True))


def remove_secret(admin, start: str) -> str:
    """Press Remove beside the secret shown as starting with `start`; return the page the admin then sees."""
    page = admin.get("/admin/clients").get_data(as_text=True)
    position = re.search(rf'name="position" value="(\d+)">\s*<input type="hidden" name="start" value="{start}">', page).group(1)
    response = admin.post("/admin/clients/coral", data={"csrf_token": csrf_token(admin, "/admin/clients"), "action": "remove",
                                                        "position": position, "start": start})
    return html.unescape(admin.get(response.location).get_data(as_text=True))


def test_without_a_secret_the_phase_also_names_the_admin_page_where_one_can_be_added(phase_from_environment):
    status, answer, _ = phase_from_environment.post(coral_request(INSULT, "c-no-secret"))
    assert status == 503 and "/admin/clients#coral" in answer["error"]["message"]


def test_a_secret_an_admin_adds_in_the_admin_pages_signs_corals_requests_and_no_other_does(phase_from_environment, admin):
    page = add_secret(admin, SECRET)
    assert "ems_te… ajouté" in page
    assert phase_from_environment.post(coral_request(OPINION, "c-admin-secret"))[0] == 204
    status, answer, _ = phase_from_environment.post(coral_request(OPINION + " Non.", "c-other"), secrets=(OLD_SECRET,))
    assert (status, answer["error"]["code"]) == (401, "invalid_signature")
    assert [comment.external_id for comment in phase_from_environment.stored()] == ["c-admin-secret"]


def test_during_rotation_two_secrets_from_the_admin_pages_are_accepted_until_the_old_one_is_removed(phase_from_environment,
                                                                                                      admin):
    add_secret(admin, OLD_SECRET)
    add_secret(admin, SECRET)
    assert phase_from_environment.post(coral_request(OPINION, "c-old"), secrets=(OLD_SECRET,))[0] == 204
    assert phase_from_environment.post(coral_request(OPINION + " Oui.", "c-new"), secrets=(SECRET,))[0] == 204
    assert "ems_ol… retiré" in remove_secret(admin, OLD_SECRET[:6])
    assert phase_from_environment.post(coral_request(OPINION + " Non.", "c-retired"), secrets=(OLD_SECRET,))[0] == 401
    assert phase_from_environment.post(coral_request(OPINION + " Si.", "c-kept"), secrets=(SECRET,))[0] == 204
    remove_secret(admin, SECRET[:6])
    assert phase_from_environment.post(coral_request(OPINION + " Fin.", "c-none"))[0] == 503


def test_the_environments_secret_and_the_admin_pages_are_both_accepted_while_a_site_moves(phase_from_environment, admin,
                                                                                         monkeypatch):
    monkeypatch.setenv(coral.SECRET_VARIABLE, OLD_SECRET)
    page = add_secret(admin, SECRET)
    assert "ems_ol…" in page and "l'environnement du serveur (MODERATION_CORAL_SECRET)" in page
    assert phase_from_environment.post(coral_request(OPINION, "c-env"), secrets=(OLD_SECRET,))[0] == 204
    assert phase_from_environment.post(coral_request(OPINION + " Oui.", "c-page"), secrets=(SECRET,))[0] == 204


def test_a_saved_secret_is_never_shown_again_in_full(phase_from_environment, admin):
    saved = add_secret(admin, SECRET)
    later = html.unescape(admin.get("/admin/clients").get_data(as_text=True))
    for page in (saved, later):
        assert SECRET[:6] + "…" in page and SECRET[:7] not in page
