"""The service layer on SQLite and PostgreSQL: receiving, deciding, claiming, and refusing what must be refused."""

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from moderation import settings
from moderation.admin.models import ApiClient, Delivery
from moderation.api.clients import create_client
from moderation.comments.models import Article, Comment, Decision, Revision, Score
from moderation.database import Database, utcnow
from moderation.intake import Intake
from moderation.policy import LabelThresholds
from moderation.receiving import Received, receive_comment, receive_comments
from moderation.service import AlreadyDecided, ClaimedByOther, Edited, claim, decide, set_premoderation
from moderation.validation import InputError

from .conftest import add_user, incoming

# On the article's subject, so it is flagged toxic and not also off-topic.
INSULT = "Espèce de crétin, ferme ta sale gueule avec ton référendum sur la Constitution"
OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."
SPAM = "Gagnez 500 000 FCFA par jour depuis chez vous, écrivez-moi vite sur WhatsApp"


def count(session, model) -> int:
    """How many rows a table holds."""
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def no_sample(session):
    """Switch the QA sample off so a clean comment is published deterministically."""
    settings.set_qa_share(session, 0.0)
    session.commit()


@pytest.fixture
def mona(session, password_hash):
    """A moderator."""
    return add_user(session, "mona", "moderator", password_hash)


@pytest.fixture
def marc(session, password_hash):
    """A second moderator."""
    return add_user(session, "marc", "moderator", password_hash)


def test_an_insult_waits_for_review_with_its_score_explanation_and_a_model_decision(session, scorer, no_sample):
    received = receive_comment(session, scorer, incoming("c1", INSULT, author_id="u1", author_name="Awa", language="fr"))
    comment = received.comment
    assert received.outcome == "created"
    assert comment.status == "pending" and comment.labels == ["toxic"] and comment.suggestion == "reject"
    assert received.comment.model_version == scorer.version
    terms = [term["term"] for term in received.comment.explanation["toxic"]]
    assert any("cretin" in term or "gueule" in term for term in terms), terms
    decision = session.scalars(select(Decision).where(Decision.comment_id == comment.id)).one()
    assert (decision.decided_by, decision.status, decision.reason, decision.moderator_id) == ("model", "pending", "toxic", None)
    assert session.get(Article, comment.article_id).external_id == "politique-test"


def test_a_clean_on_topic_comment_is_published_by_the_policy(session, scorer, no_sample):
    comment = receive_comment(session, scorer, incoming("c2", OPINION)).comment
    assert (comment.status, comment.decided_by, comment.labels) == ("published", "model", [])


def test_the_same_id_and_text_again_returns_what_is_stored_without_new_rows(session, scorer, no_sample):
    first = receive_comment(session, scorer, incoming("c3", INSULT))
    again = receive_comment(session, scorer, incoming("c3", INSULT))
    assert again.outcome == "unchanged" and again.comment.id == first.comment.id and again.comment.score_id == first.comment.score_id
    assert (count(session, Comment), count(session, Revision), count(session, Score), count(session, Decision)) == (1, 1, 1, 1)


def test_new_text_for_the_same_id_is_an_edit_rescored_with_the_first_revision_kept(session, scorer, no_sample):
    receive_comment(session, scorer, incoming("c4", OPINION))
    edited = receive_comment(session, scorer, incoming("c4", INSULT))
    assert edited.outcome == "edited" and edited.comment.revision == 2 and edited.comment.status == "pending"
    texts = session.scalars(select(Revision.text).where(Revision.comment_id == edited.comment.id).order_by(Revision.number)).all()
    assert texts == [OPINION, INSULT]
    assert count(session, Score) == 2 and edited.comment.text == INSULT


def test_text_is_stored_exactly_as_sent(session, scorer, no_sample):
    text = "  Ça\u00a0va ? 🇨🇮 \u202eeliam\u202c e\u0301té\u200b  \n\nFin.  "
    comment = receive_comment(session, scorer, incoming("c5", text)).comment
    session.expire_all()
    assert session.get(Comment, comment.id).text == text
    assert session.scalars(select(Revision.text)).one() == text


@pytest.mark.parametrize("text, problem", [
    ("", "'text'"),
    ("a\x00b", "NUL"),
    ("x" * 20_001, "20,000"),
    ("\ud800 seul", "surrogate"),
    ("\u200b\u200b", "visible"),
])
def test_text_that_cannot_be_stored_exactly_is_refused_and_nothing_is_written(session, scorer, text, problem):
    with pytest.raises(InputError, match=problem):
        receive_comment(session, scorer, incoming("bad", text))
    assert count(session, Comment) == count(session, Article) == count(session, Decision) == 0


def test_a_missing_comment_or_article_id_is_refused(session, scorer):
    with pytest.raises(InputError, match="'id'"):
        receive_comment(session, scorer, incoming(" ", OPINION))
    with pytest.raises(InputError, match="'article_id'"):
        receive_comment(session, scorer, incoming("c6", OPINION, article=""))


def test_premoderated_article_sends_even_a_clean_comment_to_review(session, scorer, no_sample):
    receive_comment(session, scorer, incoming("c7", OPINION, article="chaud"))
    article = session.scalars(select(Article).where(Article.external_id == "chaud")).one()
    set_premoderation(session, article, True)
    comment = receive_comment(session, scorer, incoming("c8", OPINION + " Vraiment.", article="chaud")).comment
    assert (comment.status, comment.review_reason, comment.suggestion) == ("pending", "premoderated", "publish")


def test_the_qa_sample_sends_about_its_share_of_clean_comments_to_review(session, scorer):
    settings.set_qa_share(session, 0.5)
    session.commit()
    statuses = [receive_comment(session, scorer, incoming(f"s{n}", f"{OPINION} Avis numéro {n}.")).comment for n in range(40)]
    sampled = [c for c in statuses if c.review_reason == "sample"]
    assert 8 <= len(sampled) <= 32 and all(c.status == "pending" and c.suggestion == "publish" for c in sampled)
    assert all(c.status == "published" for c in statuses if c.review_reason != "sample")


def test_pinned_thresholds_override_the_model_and_a_reject_threshold_rejects(session, scorer, no_sample):
    settings.pin_thresholds(session, {"toxic": LabelThresholds(0.3, 0.5)})
    session.commit()
    rejected = receive_comment(session, scorer, incoming("c9", INSULT)).comment
    assert (rejected.status, rejected.decided_by) == ("rejected", "model")
    settings.pin_thresholds(session, {"toxic": LabelThresholds(1.0)})
    session.commit()
    assert receive_comment(session, scorer, incoming("c10", INSULT + " !")).comment.status == "published"


def test_rejecting_a_flagged_comment_confirms_the_model_and_approving_overrides_it(session, scorer, no_sample, mona):
    flagged = [receive_comment(session, scorer, incoming(f"f{n}", f"{INSULT} {n}")).comment for n in range(2)]
    confirm = decide(session, flagged[0].id, mona, "rejected", "toxic")
    override = decide(session, flagged[1].id, mona, "published")
    assert (confirm.verdict, confirm.reason, confirm.moderator_id) == ("confirm", "toxic", mona.id)
    assert (override.verdict, override.reason) == ("override", None)
    assert [session.get(Comment, c.id).status for c in flagged] == ["rejected", "published"]


def test_a_second_decision_is_refused_naming_who_decided(session, scorer, no_sample, mona, marc):
    comment = receive_comment(session, scorer, incoming("c11", INSULT)).comment
    decide(session, comment.id, mona, "rejected", "toxic")
    with pytest.raises(AlreadyDecided, match="already rejected by mona"):
        decide(session, comment.id, marc, "published")
    assert session.get(Comment, comment.id).status == "rejected"
    assert count(session, Decision) == 2


def test_a_moderator_can_take_down_a_comment_the_model_published(session, scorer, no_sample, mona):
    comment = receive_comment(session, scorer, incoming("c12", OPINION)).comment
    taken_down = decide(session, comment.id, mona, "rejected", "other")
    assert taken_down.verdict == "override" and session.get(Comment, comment.id).status == "rejected"


def test_rejecting_needs_one_of_the_four_reasons(session, scorer, no_sample, mona):
    comment = receive_comment(session, scorer, incoming("c13", INSULT)).comment
    for reason in (None, "rude"):
        with pytest.raises(InputError, match="reason"):
            decide(session, comment.id, mona, "rejected", reason)
    assert session.get(Comment, comment.id).status == "pending"


def test_a_comment_open_by_another_moderator_is_theirs_until_the_claim_expires(session, scorer, no_sample, mona, marc):
    comment = receive_comment(session, scorer, incoming("c14", INSULT)).comment
    assert claim(session, mona, [comment.id]) == [comment.id]
    assert claim(session, marc, [comment.id]) == []
    with pytest.raises(ClaimedByOther, match="mona"):
        decide(session, comment.id, marc, "published")
    later = utcnow() + timedelta(minutes=6)
    assert decide(session, comment.id, marc, "published", now=later).moderator_id == marc.id


def test_a_decision_on_text_that_changed_since_it_was_opened_is_refused(session, scorer, no_sample, mona):
    comment = receive_comment(session, scorer, incoming("c15", INSULT)).comment
    receive_comment(session, scorer, incoming("c15", INSULT + " et toute ta famille"))
    with pytest.raises(Edited):
        decide(session, comment.id, mona, "published", revision=1)
    assert decide(session, comment.id, mona, "rejected", "toxic", revision=2).revision == 2


def test_two_concurrent_decisions_on_one_comment_give_exactly_one(database, session, scorer, no_sample, password_hash):
    moderators = [add_user(session, f"m{n}", "moderator", password_hash) for n in range(6)]
    comment_id = receive_comment(session, scorer, incoming("race", INSULT)).comment.id
    outcomes, barrier = [], threading.Barrier(len(moderators))

    def attempt(moderator):
        with database.session() as own:
            barrier.wait()
            try:
                decide(own, comment_id, moderator, "rejected", "toxic")
                outcomes.append("decided")
            except AlreadyDecided:
                outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(moderator,)) for moderator in moderators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["decided"] + ["refused"] * (len(moderators) - 1)
    moderator_decisions = select(func.count()).select_from(Decision).where(Decision.decided_by == "moderator")
    assert session.scalar(moderator_decisions) == 1


def test_the_same_new_comment_sent_twice_at_once_is_stored_once(database, scorer, no_sample):
    barrier, errors = threading.Barrier(4), []

    def send():
        with database.session() as own:
            barrier.wait()
            try:
                receive_comment(own, scorer, incoming("twice", OPINION))
            except Exception as error:  # any failure here is what the test reports
                errors.append(error)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.session() as check:
        assert count(check, Comment) == 1 and count(check, Revision) == 1


def test_waiting_comments_on_an_article_move_up_when_it_is_premoderated(session, scorer, mona):
    settings.set_qa_share(session, 1.0)
    session.commit()
    comment = session.get(Comment, receive_comment(session, scorer, incoming("c16", OPINION, article="monte")).comment.id)
    before = comment.priority
    set_premoderation(session, comment.article, True)
    session.expire_all()
    assert session.get(Comment, comment.id).priority == pytest.approx(before + 0.3)


def test_a_fresh_database_from_migrations_matches_the_tables_the_code_declares(database):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from moderation.database import Base, load_tables

    load_tables()
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_migrations_are_safe_to_run_again(database, session, scorer, no_sample):
    receive_comment(session, scorer, incoming("kept", OPINION))
    database.upgrade()
    assert session.scalars(select(Comment.text)).all() == [OPINION]


def test_a_batch_is_stored_in_order_refusing_only_its_bad_comments(session, scorer, no_sample):
    results = receive_comments(session, scorer, [
        incoming("b1", OPINION),
        incoming("b2", "a\x00b"),
        incoming("b3", INSULT, article="inconnu", article_title=None, article_body=None),
        incoming("b1", OPINION),
        incoming("b1", INSULT),
        incoming("b4", SPAM, article="nouveau", article_title="Un autre article"),
    ])
    assert [type(result).__name__ for result in results] == ["Received", "InputError", "UnknownArticle", "Received", "Received",
                                                             "Received"]
    assert [result.outcome for result in results if isinstance(result, Received)] == ["created", "unchanged", "edited", "created"]
    assert "'inconnu' is unknown" in str(results[2]) and results[2].field == "article.title"
    assert results[4].comment.revision == 2 and results[4].comment.status == "pending"
    assert session.scalars(select(Article.external_id).order_by(Article.external_id)).all() == ["nouveau", "politique-test"]
    assert (count(session, Comment), count(session, Revision), count(session, Decision)) == (2, 3, 3)


def test_an_edit_is_scored_against_its_thread_without_itself(session, scorer, no_sample):
    receive_comments(session, scorer, [incoming(f"t{n}", f"{OPINION} Avis {n}.") for n in range(3)])
    edited = receive_comment(session, scorer, incoming("t0", INSULT))
    alone = scorer.score(INSULT, {"title": "Référendum : le projet de nouvelle Constitution soumis au vote",
                                  "body": incoming("x", "x").article_body,
                                  "comments": [f"{OPINION} Avis {n}." for n in (2, 1)]})
    assert edited.comment.off_topic == pytest.approx(alone["off_topic"])


def test_comments_handed_over_by_many_threads_at_once_are_each_stored_once(database, scorer, no_sample):
    intake = Intake(database, lambda: scorer, max_batch=8)
    results: dict[str, object] = {}

    def send(number: int) -> None:
        try:
            results[f"i{number}"] = intake.receive(incoming(f"i{number % 30}", f"{OPINION} Avis {number % 30}."))
        except Exception as error:  # recorded, so the assertion names it
            results[f"i{number}"] = error

    threads = [threading.Thread(target=send, args=(number,)) for number in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(result, Received) for result in results.values()), results
    with database.session() as check:
        assert count(check, Comment) == 30 and count(check, Revision) == 30
    outcomes = sorted(result.outcome for result in results.values())
    assert outcomes.count("created") == 30 and outcomes.count("unchanged") == 10


def test_the_intake_replaces_a_connection_the_database_dropped_without_failing_the_comment(postgres_url, scorer):
    if postgres_url is None:
        pytest.skip("needs PostgreSQL to drop a connection: set MODERATION_TEST_DATABASE_URL")
    database = Database(f"{postgres_url}?application_name=palabre-kept")
    intake = Intake(database, lambda: scorer)
    try:
        assert intake.receive(incoming("kept-1", OPINION)).outcome == "created"
        with database.engine.connect() as other:
            dropped = other.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                         "WHERE application_name = 'palabre-kept' AND pid <> pg_backend_pid()")).scalar_one()
        assert dropped == 1
        assert intake.receive(incoming("kept-2", f"{OPINION} Encore.")).outcome == "created"
        with database.session() as check:
            assert check.scalar(select(func.count()).select_from(Comment).where(Comment.external_id.like("kept-%"))) == 2
    finally:
        database.engine.dispose()


def test_the_intake_stores_what_the_site_changes_in_an_article_it_read_a_moment_ago(database, scorer, no_sample):
    intake = Intake(database, lambda: scorer)
    for number, title in enumerate(("Référendum : le vote", "Référendum : le vote", "Référendum : le vote reporté")):
        intake.receive(incoming(f"a{number}", OPINION, article_title=title))
    with database.session() as check:
        assert check.scalar(select(Article.title).where(Article.external_id == "politique-test")) == "Référendum : le vote reporté"
    with database.session() as session:
        set_premoderation(session, session.scalar(select(Article).where(Article.external_id == "politique-test")), True)
    intake.forget_articles()
    held = intake.receive(incoming("a3", OPINION, article_title="Référendum : le vote reporté")).comment
    assert (held.status, held.review_reason) == ("pending", "premoderated")


def test_the_intake_applies_thresholds_changed_in_this_process_at_once(database, session, scorer, no_sample):
    intake = Intake(database, lambda: scorer)
    assert intake.receive(incoming("s1", INSULT)).comment.status == "pending"
    settings.pin_thresholds(session, {"toxic": LabelThresholds(0.3, 0.5)})
    session.commit()
    intake.forget_settings()
    assert intake.receive(incoming("s2", INSULT)).comment.status == "rejected"


def test_a_mixed_batch_writes_one_revision_and_score_each_and_one_event_per_decision_and_webhook_client(
        session, scorer, no_sample, mona):
    create_client(session, "site", "http://127.0.0.1:9/hook")
    create_client(session, "mirror", "http://127.0.0.1:9/mirror")
    create_client(session, "no-hook")
    receive_comments(session, scorer, [incoming("m1", OPINION), incoming("m2", OPINION.replace("court", "bref"))])
    decide(session, session.scalar(select(Comment.id).where(Comment.external_id == "m2")), mona, "published")
    earlier_events = count(session, Delivery)
    results = receive_comments(session, scorer, [incoming("m1", INSULT), incoming("m2", f"{OPINION} Vraiment."),
                                                 incoming("m3", INSULT), incoming("m4", OPINION)])
    assert [(one.outcome, one.comment.revision, one.comment.status) for one in results] == [
        ("edited", 2, "pending"), ("edited", 2, "published"), ("created", 1, "pending"), ("created", 1, "published")]
    for one in results:
        revision = session.scalars(select(Revision).where(Revision.comment_id == one.comment.id,
                                                          Revision.number == one.comment.revision)).one()
        assert session.scalars(select(Score.id).where(Score.revision_id == revision.id)).all() == [one.comment.score_id]
    model_decisions = session.scalars(select(Decision).where(Decision.decided_by == "model").order_by(Decision.id)).all()
    assert [(d.comment.external_id, d.revision, d.status) for d in model_decisions[2:]] == [
        ("m1", 2, "pending"), ("m3", 1, "pending"), ("m4", 1, "published")], "the moderator's approval of m2 stands"
    events = session.execute(select(Delivery.event_id, Delivery.body).order_by(Delivery.id).offset(earlier_events)).all()
    assert [json.loads(body)["data"]["comment_id"] for _, body in events] == ["m4", "m4"], "m1 and m3 wait: nothing to tell"
    decided_now = [d for d in model_decisions[2:] if d.status == "published"]
    clients = session.scalars(select(ApiClient.id).where(ApiClient.webhook_url.is_not(None)).order_by(ApiClient.id)).all()
    assert [event_id for event_id, _ in events] == [f"evt_{d.id}_{c}" for d in decided_now for c in clients]
