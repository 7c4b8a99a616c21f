"""Receiving comments from the site: score, decide and store a batch in one transaction, and enqueue its webhooks.

`receive_comments` takes comments from the site (the API, Coral, the demo, an import), scores
each with the active model against its article and thread, applies the site's policy and
records the revision, score, status and the model's decision together; the same id and text
again returns what is stored, new text is an edit. The API, Coral and the intake call it and
do not repeat it.
"""

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from . import settings, storage
from .comments.models import (
    BY_MODEL,
    BY_MODERATOR,
    PENDING,
    PUBLISHED,
    REJECTED,
    Article,
    Comment,
    Decision,
    Revision,
    Score,
)
from .database import utcnow
from .policy import PUBLISH, REJECT, REVIEW, in_sample, moderator_decision_stands, priority
from .scorer import Scorer
from .timings import timed
from .validation import MAX_ARTICLE_CHARS, InputError, check_moment, check_optional_text, check_text, same_visible_text
from .versions import ModelVersion

OPTIONAL_FIELDS = {"author_id": 255, "author_name": 255, "language": 16,
                   "article_title": 2_000, "article_body": MAX_ARTICLE_CHARS, "article_url": 2_000}
ARTICLE_SECONDS = 2.0
RECENT_ARTICLES = 1024
ATTEMPTS = 3
MAX_ID_CHARS = 255
STATUS_OF = {PUBLISH: PUBLISHED, REVIEW: PENDING, REJECT: REJECTED}
EDITED = "edited"  # why an edit of a comment a moderator decided waits for a moderator again
ARTICLES, COMMENTS, REVISIONS, SCORES, DECISIONS = (model.__table__ for model in (Article, Comment, Revision, Score, Decision))
MODEL_VERSIONS = ModelVersion.__table__
logger = logging.getLogger(__name__)
# Built once: receiving runs for every comment a site sends, and building a statement costs as much as running it.
_FIND_ARTICLES = select(ARTICLES.c.id, ARTICLES.c.external_id, ARTICLES.c.title, ARTICLES.c.body, ARTICLES.c.url,
                        ARTICLES.c.premoderated).where(ARTICLES.c.external_id.in_(bindparam("ids", expanding=True)))
_STORED = select(
    COMMENTS.c.id, COMMENTS.c.external_id, COMMENTS.c.article_id, ARTICLES.c.external_id.label("article_external_id"),
    COMMENTS.c.text, COMMENTS.c.revision, COMMENTS.c.status, COMMENTS.c.suggestion, COMMENTS.c.review_reason,
    COMMENTS.c.decided_by, COMMENTS.c.toxic, COMMENTS.c.off_topic, SCORES.c.labels, SCORES.c.id.label("score_id"),
    SCORES.c.decision, SCORES.c.explanation, SCORES.c.model_version,
).join(ARTICLES, ARTICLES.c.id == COMMENTS.c.article_id) \
    .join(REVISIONS, (REVISIONS.c.comment_id == COMMENTS.c.id) & (REVISIONS.c.number == COMMENTS.c.revision)) \
    .join(SCORES, SCORES.c.revision_id == REVISIONS.c.id) \
    .where(COMMENTS.c.external_id.in_(bindparam("ids", expanding=True))).order_by(SCORES.c.id)
_FIND_MODEL_VERSION = select(MODEL_VERSIONS.c.version).where(MODEL_VERSIONS.c.version == bindparam("version"))
_INSERT_ARTICLE = insert(ARTICLES).returning(ARTICLES.c.id)


@dataclass(frozen=True)
class IncomingComment:
    """A comment as the site sends it."""

    id: str
    text: str
    article_id: str
    article_title: str | None = None
    article_body: str | None = None
    article_url: str | None = None
    author_id: str | None = None
    author_name: str | None = None
    created_at: datetime | None = None
    language: str | None = None
    article_fallback_title: str | None = None  # the title of an article first seen with this comment, when none is sent


class UnknownArticle(InputError):
    """A comment on an article Palabre has never seen, sent without the article's title."""

    def __init__(self, article_id: str):
        super().__init__(f"article {article_id!r} is unknown: send its title (and body) with this comment, or create it "
                         "first with PUT /api/v1/articles/{id}", "article.title")


@dataclass(frozen=True)
class StoredComment:
    """A comment as stored now, with the score of its current revision: what the API and Coral answer from."""

    id: int
    external_id: str
    article_id: int
    article_external_id: str
    text: str
    revision: int
    status: str
    suggestion: str
    review_reason: str | None
    decided_by: str | None
    toxic: float
    off_topic: float
    labels: list[str]
    score_id: int
    decision: str
    explanation: dict
    model_version: str


@dataclass(frozen=True)
class Received:
    """What became of an incoming comment: created, unchanged (same id and text) or edited."""

    comment: StoredComment
    outcome: str


@dataclass(frozen=True)
class _ArticleContext:
    """What scoring and the policy need of the comment's article (and its URL, to tell whether the site changed it)."""

    id: int
    external_id: str
    title: str
    body: str
    url: str | None
    premoderated: bool


class RecentArticles:
    """Articles read lately, trusted for ARTICLE_SECONDS without reading them again: most comments are on a few articles.

    Only a row read as the database holds it is kept, never one this batch wrote (its
    transaction may yet roll back). A change made in this process holds at once (`forget`),
    one made in another process within ARTICLE_SECONDS, as with the site's settings.
    """

    def __init__(self, seconds: float = ARTICLE_SECONDS, size: int = RECENT_ARTICLES):
        self._seconds, self._size = seconds, size
        self._kept: dict[str, tuple[float, _ArticleContext]] = {}
        self._lock = threading.Lock()  # the intake's leader keeps, a view's thread forgets

    def get(self, external_id: str) -> "_ArticleContext | None":
        """The article as read lately, if that was less than ARTICLE_SECONDS ago."""
        with self._lock:
            kept = self._kept.get(external_id)
        return kept[1] if kept is not None and kept[0] > time.monotonic() else None

    def keep(self, article: "_ArticleContext") -> None:
        """Remember an article as just read."""
        with self._lock:
            self._kept.pop(article.external_id, None)
            self._kept[article.external_id] = (time.monotonic() + self._seconds, article)
            if len(self._kept) > self._size:
                del self._kept[next(iter(self._kept))]

    def forget(self) -> None:
        """Read every article again (after pre-moderation was switched in this process)."""
        with self._lock:
            self._kept.clear()


def receive_comment(session: Session | Connection, scorer: Scorer, incoming: IncomingComment,
                    now: datetime | None = None) -> Received:
    """Score, decide and store one comment; the same id and text again returns what is stored."""
    result = receive_comments(session, scorer, [incoming], now)[0]
    if isinstance(result, Exception):
        raise result
    return result


def receive_comments(session: Session | Connection, scorer: Scorer, incomings: list[IncomingComment], now: datetime | None = None,
                     site: settings.SiteSettings | None = None, recent: RecentArticles | None = None) -> list[Received | Exception]:
    """Receive many comments in one transaction; each gets what became of it, or the error refusing it, in order.

    One transaction and a few statements for the lot, whatever their number (on PostgreSQL a
    read and a write: `storage`): this is how a busy site's comments (and the batch endpoint's) are stored at the rate they come. A comment
    that makes the transaction fail fails alone: the others are received again without it. Only
    a database that cannot be reached fails them all (raised). `site` is the settings in force
    when the caller has them at hand; they are read otherwise. `recent` spares reading articles
    read a moment ago.
    """
    now = now or utcnow()
    results: list[Received | Exception | None] = [None] * len(incomings)
    rounds: list[dict[str, int]] = []  # the same id twice is an edit of what the round before stored
    for index, incoming in enumerate(incomings):
        try:
            _check_incoming(incoming)
        except InputError as error:
            results[index] = error
            continue
        free = next((batch for batch in rounds if incoming.id not in batch), None)
        if free is None:
            free = {}
            rounds.append(free)
        free[incoming.id] = index
    for batch in rounds:
        indexes = list(batch.values())
        for index, one in zip(indexes, _receive_apart_on_failure(session, scorer, [incomings[i] for i in indexes], now, site, recent)):
            results[index] = one
    return results


def _receive_apart_on_failure(session: Session | Connection, scorer: Scorer, batch: list[IncomingComment], now: datetime,
                              site: settings.SiteSettings | None, recent: RecentArticles | None) -> list[Received | Exception]:
    """Receive comments together; if that fails, each alone, so a failure is only the failing comment's."""
    try:
        return _receive_and_commit(session, scorer, batch, now, site, recent)
    except (OperationalError, InterfaceError):  # the database, not a comment: nothing to set apart
        raise
    except Exception as error:
        if len(batch) > 1:
            return [one for incoming in batch for one in _receive_apart_on_failure(session, scorer, [incoming], now, site, recent)]
        logger.exception("comment %r could not be received", batch[0].id)
        return [error]


def _receive_and_commit(session: Session | Connection, scorer: Scorer, batch: list[IncomingComment], now: datetime,
                        site: settings.SiteSettings | None, recent: RecentArticles | None) -> list[Received | InputError]:
    """Receive comments with distinct ids, committed, or rolled back entirely.

    Tried again when the comments changed under it (the same comment arriving at once through
    another process, or a moderator deciding one that is being edited): the next try reads them anew.
    """
    for attempt in range(ATTEMPTS):
        try:
            received = _receive(session, scorer, batch, now, site, recent)
            with timed("commit"):
                session.commit()
            return received
        except (IntegrityError, _ChangedMeanwhile):
            session.rollback()
            if attempt == ATTEMPTS - 1:
                raise
        except BaseException:
            session.rollback()
            raise


class _ChangedMeanwhile(Exception):
    """A comment being edited was changed by someone else (a moderator's decision) since it was read."""


def _check_incoming(incoming: IncomingComment) -> None:
    """Refuse what cannot be stored exactly, naming the field: nothing refused here can fail later in a batch."""
    check_text(incoming.text)
    for field in ("id", "article_id"):
        value = getattr(incoming, field)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"'{field}' must be a non-empty string", field)
        check_text(value, field, MAX_ID_CHARS)
    for field, limit in OPTIONAL_FIELDS.items():
        check_optional_text(getattr(incoming, field), field, limit)
    if incoming.created_at is not None:
        check_moment(incoming.created_at, "created_at")


def _receive(session: Session | Connection, scorer: Scorer, comments: list[IncomingComment], now: datetime,
             site: settings.SiteSettings | None, recent: RecentArticles | None) -> list[Received | InputError]:
    """The body of receive_comments for comments with distinct ids, inside its transaction.

    Statements for the whole batch (`storage`'s), on the session's connection (or the
    connection given), never through the ORM: this runs for every comment a site sends.
    """
    connection = session.connection() if isinstance(session, Session) else session
    articles = _articles(connection, comments, recent or RecentArticles(0))
    refused = {one.id: UnknownArticle(one.article_id) for one in comments if one.article_id not in articles}
    batch = [one for one in comments if one.id not in refused]
    current, threads = storage.read(connection, [one.id for one in batch], {articles[one.article_id].id for one in batch})
    unchanged = _stored(connection, [one.id for one in batch if one.id in current and same_visible_text(current[one.id].text, one.text)])
    fresh = [one for one in batch if one.id not in unchanged]
    site = site or settings.current(connection)
    revisions = [_new_revision(scorer, site, one, current.get(one.id), articles[one.article_id], threads, now) for one in fresh]
    for revision in revisions:
        if revision.current is not None:
            _update_edited(connection, revision)
    stored = {}
    written = storage.write(connection, [revision.rows(scorer.version, now) for revision in revisions], now)
    for revision, (comment_id, score_id) in zip(revisions, written):
        revision.comment_id = comment_id
        stored[revision.incoming.id] = revision.stored(score_id, scorer.version)
    if revisions:
        _note_model_version(connection, scorer, now)
    return [refused[one.id] if one.id in refused else Received(unchanged[one.id], "unchanged") if one.id in unchanged else
            Received(stored[one.id], "created" if one.id not in current else "edited") for one in comments]


@dataclass(frozen=True)
class _ModelDecision:
    """What the policy made of a revision's scores: stored with its score, whatever becomes of the comment."""

    labels: list[str]
    decision: str
    review_reason: str | None

    @property
    def reason(self) -> str | None:
        """The reason the model's decision record gives: why it waits, or the label it was flagged for."""
        if self.review_reason in ("premoderated", "sample"):
            return self.review_reason
        return self.labels[0] if self.labels else None


@dataclass(frozen=True)
class _Standing:
    """Where the comment stands after a revision: its status, who decided it and why it waits, if it does.

    `placed_by_model` is false when a moderator's earlier decision stands: then nothing is decided now.
    """

    status: str
    decided_by: str | None
    review_reason: str | None
    reason: str | None
    placed_by_model: bool


@dataclass
class _NewRevision:
    """A new comment or a new text of one, scored and decided, on its way into the tables."""

    incoming: IncomingComment
    article: _ArticleContext
    current: Row | None
    number: int
    scores: dict
    explanation: dict
    model: _ModelDecision
    standing: _Standing
    values: dict
    comment_id: int | None = None

    @property
    def status_decided_now(self) -> bool:
        """Whether the model decided a status that the comment did not have: what a webhook reports."""
        return (self.standing.placed_by_model and self.standing.status != PENDING
                and (self.current is None or self.current.status != self.standing.status))

    def rows(self, model_version: str, now: datetime) -> storage.NewRows:
        """The rows this revision adds."""
        comment = None if self.current is not None else {
            "external_id": self.incoming.id, "article_id": self.article.id, "created_at": self.incoming.created_at or now,
            **self.values, "author_id": self.incoming.author_id, "author_name": self.incoming.author_name,
            "language": self.incoming.language or None}
        placed = self.standing.placed_by_model
        return storage.NewRows(
            comment_id=self.comment_id, comment=comment,
            revision={"number": self.number, "text": self.incoming.text, "received_at": now},
            score={"model_version": model_version, "toxic": self.scores["toxic"], "off_topic": self.scores["off_topic"],
                   "labels": self.model.labels, "explanation": self.explanation, "decision": self.model.decision, "created_at": now},
            decision={"revision": self.number, "status": self.standing.status, "decided_by": BY_MODEL,
                      "reason": self.standing.reason, "created_at": now} if placed else None,
            event=event_data(self.incoming.id, self.article.external_id, self.standing.status, BY_MODEL, self.standing.reason,
                             self.scores) if self.status_decided_now else None)

    def stored(self, score_id: int, model_version: str) -> StoredComment:
        """The comment as it now stands."""
        return StoredComment(
            id=self.comment_id, external_id=self.incoming.id, article_id=self.article.id,
            article_external_id=self.article.external_id, text=self.incoming.text, revision=self.number,
            status=self.standing.status, suggestion=self.values["suggestion"], review_reason=self.standing.review_reason,
            decided_by=self.standing.decided_by, toxic=self.scores["toxic"], off_topic=self.scores["off_topic"],
            labels=self.model.labels, score_id=score_id, decision=self.model.decision, explanation=self.explanation,
            model_version=model_version,
        )


def _new_revision(scorer: Scorer, site: settings.SiteSettings, incoming: IncomingComment, current: Row | None,
                  article: _ArticleContext, threads: dict[int, list[tuple[int, str]]], now: datetime) -> _NewRevision:
    """Score one new comment or edit against its article and thread, and decide it under the site's policy."""
    comment_id = current.id if current is not None else None
    number = 1 if current is None else current.revision + 1
    thread = [text for other_id, text in threads.get(article.id, []) if other_id != comment_id][:storage.THREAD_COMMENTS]
    with timed("score"):
        result = scorer.score(incoming.text, {"title": article.title, "body": article.body, "comments": thread})
    scores = {"toxic": result["toxic"], "off_topic": result["off_topic"]}
    by_moderator = _moderator_decision(current)
    model = _model_decision(site, scorer, scores, article.premoderated, f"{incoming.id}#{number}", sample=by_moderator is None)
    standing = _standing(current, by_moderator, model, site)
    values = _current_values(incoming, number, scores, model, standing, priority(scores, now, article.premoderated), now)
    return _NewRevision(incoming, article, current, number, scores, result["explanation"], model, standing, values, comment_id)


def _moderator_decision(current: Row | None) -> str | None:
    """The moderator's decision on the comment so far (publish or reject), if a moderator has decided it."""
    if current is None or current.decided_by != BY_MODERATOR:
        return None
    return REJECT if current.status == REJECTED else PUBLISH


def _standing(current: Row | None, by_moderator: str | None, model: _ModelDecision, site: settings.SiteSettings) -> _Standing:
    """The model decides new comments and its own; a moderator's decision stands, or the edit goes back to a moderator."""
    if by_moderator is None:
        decided = model.decision != REVIEW
        return _Standing(STATUS_OF[model.decision], BY_MODEL if decided else None, model.review_reason, model.reason, True)
    if moderator_decision_stands(by_moderator, model.decision, site.review_rejected_edits):
        return _Standing(current.status, BY_MODERATOR, current.review_reason, None, False)
    return _Standing(PENDING, None, EDITED, EDITED, True)


def _update_edited(connection: Connection, revision: _NewRevision) -> None:
    """Put an edit's text, scores and standing on the comment, if it is still as it was read.

    A moderator who decided the comment since then wins: the batch is tried again and reads their decision.
    """
    was = revision.current
    kept = {field: value for field in ("author_id", "author_name", "language") if (value := getattr(revision.incoming, field))}
    changed = connection.execute(
        update(COMMENTS).where(COMMENTS.c.id == was.id, COMMENTS.c.revision == was.revision, COMMENTS.c.status == was.status,
                               COMMENTS.c.decided_by.is_not_distinct_from(was.decided_by))
        .values(**revision.values, **kept)).rowcount
    if changed != 1:
        raise _ChangedMeanwhile(revision.incoming.id)


def event_data(comment_id: str, article_id: str, status: str, decided_by: str, reason: str | None, scores: dict) -> dict:
    """What a webhook event says about a decision."""
    return {"comment_id": comment_id, "article_id": article_id, "status": status, "decided_by": decided_by,
            "reason": reason, "scores": {"toxic": scores["toxic"], "off_topic": scores["off_topic"]}}


def _model_decision(site: settings.SiteSettings, scorer: Scorer, scores: dict, premoderated: bool, sample_key: str,
                    sample: bool) -> _ModelDecision:
    """Labels and decision under the site's thresholds, with pre-moderation and (when `sample`) the QA sample."""
    policy = site.policy(scorer.policy)
    labels = policy.labels(scores)
    decision = policy.decide(scores, premoderated)
    if sample and decision == PUBLISH and in_sample(sample_key, site.qa_share):
        return _ModelDecision(labels, REVIEW, "sample")
    return _ModelDecision(labels, decision, ("flagged" if labels else "premoderated") if decision == REVIEW else None)


def _current_values(incoming: IncomingComment, number: int, scores: dict, model: _ModelDecision, standing: _Standing,
                    queue_priority: float, now: datetime) -> dict:
    """The comment row's columns for its new revision: text and scores, and its status when that is decided now."""
    values = {
        "text": incoming.text, "revision": number, "received_at": now,
        "toxic": scores["toxic"], "off_topic": scores["off_topic"], "top_score": max(scores.values()),
        "toxic_flag": "toxic" in model.labels, "off_topic_flag": "off_topic" in model.labels,
        "suggestion": REJECT if model.labels else PUBLISH, "priority": queue_priority,
    }
    if standing.placed_by_model:
        decided = standing.status != PENDING
        values.update(status=standing.status, review_reason=standing.review_reason, decided_by=standing.decided_by,
                      decided_at=now if decided else None, claimed_by_id=None, claimed_until=None)
    return values


def _articles(connection: Connection, batch: list[IncomingComment], recent: RecentArticles) -> dict[str, _ArticleContext]:
    """The batch's articles by external id, created or updated from what the site sent (the latest comment's say wins).

    An article read a moment ago, as the site sends it again, is not read anew. An unknown
    article sent with no title (nor a fallback title) is left out: its comments are refused.
    """
    sent: dict[str, dict] = {}
    fallback: dict[str, str] = {}
    for incoming in batch:
        sent.setdefault(incoming.article_id, {}).update(
            {field: value for field in ("title", "body", "url") if (value := getattr(incoming, f"article_{field}")) is not None})
        if incoming.article_fallback_title is not None:
            fallback.setdefault(incoming.article_id, incoming.article_fallback_title)
    found = {}
    for external_id, fields in sent.items():
        known = recent.get(external_id)
        if known is not None and all(getattr(known, field) == value for field, value in fields.items()):
            found[external_id] = known
    unread = [external_id for external_id in sent if external_id not in found]
    rows = {row.external_id: row for row in connection.execute(_FIND_ARTICLES, {"ids": unread})} if unread else {}
    for external_id in unread:
        fields, row = sent[external_id], rows.get(external_id)
        if row is None and "title" not in fields and external_id not in fallback:
            continue
        if row is None:
            values = {"title": fallback.get(external_id, ""), "body": "", "url": None, **fields}
            article_id = connection.execute(_INSERT_ARTICLE, {"external_id": external_id, **values}).scalar_one()
            found[external_id] = _ArticleContext(article_id, external_id, values["title"], values["body"], values["url"], False)
            continue
        read = _ArticleContext(row.id, external_id, row.title, row.body, row.url, row.premoderated)
        changed = {field: value for field, value in fields.items() if getattr(row, field) != value}
        if changed:
            connection.execute(update(ARTICLES).where(ARTICLES.c.id == row.id).values(**changed))
        else:
            recent.keep(read)
        found[external_id] = replace(read, **changed)
    return found


def _stored(connection: Connection, external_ids: list[str]) -> dict[str, StoredComment]:
    """Comments as stored now, with their current revision's latest score, by external id."""
    if not external_ids:
        return {}
    return {row.external_id: StoredComment(**row._mapping) for row in connection.execute(_STORED, {"ids": external_ids})}


def stored_comment(session: Session, external_id: str) -> StoredComment | None:
    """A comment as stored now, with its current revision's latest score; None if there is no such comment."""
    return _stored(session.connection(), [external_id]).get(external_id)


def _note_model_version(connection: Connection, scorer: Scorer, now: datetime) -> None:
    """Record the first use of a model version, with its held-out metrics (in the comment's transaction).

    Once a connection has seen the version stored, it stops asking.
    """
    seen = connection.info.setdefault("palabre.model_versions", set())
    if scorer.version in seen:
        return
    if connection.execute(_FIND_MODEL_VERSION, {"version": scorer.version}).first() is None:
        connection.execute(insert(MODEL_VERSIONS), {"version": scorer.version, "first_used_at": now,
                                                    "metrics": scorer.metadata.get("metrics", {}).get("holdout", {})})
    else:
        seen.add(scorer.version)
