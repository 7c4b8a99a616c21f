"""Receiving comments from the site: score, decide and store a batch in one transaction, and enqueue its webhooks.

`receive_comments` takes comments from the site (the API, Coral, the demo, an import), scores
each with the active model against its article and thread, applies the site's policy and
records the revision, score, status and the model's decision together; the same id and text
again returns what is stored, new text is an edit. The API, Coral and the intake call it and
do not repeat it.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import bindparam, insert, select, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import settings, webhooks
from .admin.models import ModelVersion
from .comments.models import (
    BY_MODEL,
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
from .policy import PUBLISH, REJECT, REVIEW, in_sample, priority
from .scorer import Scorer
from .validation import MAX_ARTICLE_CHARS, InputError, check_optional_text, check_text

OPTIONAL_FIELDS = {"author_id": 255, "author_name": 255, "language": 16,
                   "article_title": 2_000, "article_body": MAX_ARTICLE_CHARS, "article_url": 2_000}
THREAD_COMMENTS = 20
MAX_ID_CHARS = 255
STATUS_OF = {PUBLISH: PUBLISHED, REVIEW: PENDING, REJECT: REJECTED}
ARTICLES, COMMENTS, REVISIONS, SCORES, DECISIONS = (model.__table__ for model in (Article, Comment, Revision, Score, Decision))
MODEL_VERSIONS = ModelVersion.__table__
# Built once: receiving runs for every comment a site sends, and building a statement costs as much as running it.
_FIND_ARTICLES = select(ARTICLES.c.id, ARTICLES.c.external_id, ARTICLES.c.title, ARTICLES.c.body, ARTICLES.c.url,
                        ARTICLES.c.premoderated).where(ARTICLES.c.external_id.in_(bindparam("ids", expanding=True)))
_FIND_COMMENTS = select(COMMENTS.c.id, COMMENTS.c.external_id, COMMENTS.c.text, COMMENTS.c.revision) \
    .where(COMMENTS.c.external_id.in_(bindparam("ids", expanding=True)))
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
_INSERTS = {table.name: insert(table).returning(table.c.id, sort_by_parameter_order=True) for table in (COMMENTS, REVISIONS, SCORES,
                                                                                                      DECISIONS)}


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
    """What scoring and the policy need of the comment's article."""

    id: int
    external_id: str
    title: str
    body: str
    premoderated: bool


def receive_comment(session: Session | Connection, scorer: Scorer, incoming: IncomingComment,
                    now: datetime | None = None) -> Received:
    """Score, decide and store one comment; the same id and text again returns what is stored."""
    result = receive_comments(session, scorer, [incoming], now)[0]
    if isinstance(result, InputError):
        raise result
    return result


def receive_comments(session: Session | Connection, scorer: Scorer, incomings: list[IncomingComment], now: datetime | None = None,
                     site: settings.SiteSettings | None = None) -> list[Received | InputError]:
    """Receive many comments in one transaction; each gets what became of it, or the error refusing it, in order.

    One transaction and about ten statements for the lot, whatever their number: this is how a
    busy site's comments (and the batch endpoint's) are stored at the rate they come. `site` is
    the settings in force when the caller has them at hand; they are read otherwise.
    """
    now = now or utcnow()
    results: list[Received | InputError | None] = [None] * len(incomings)
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
        try:
            received = _receive_and_commit(session, scorer, [incomings[i] for i in indexes], now, site)
        except IntegrityError:  # some arrived twice at once, through another process: this time they are found
            received = _receive_and_commit(session, scorer, [incomings[i] for i in indexes], now, site)
        for index, one in zip(indexes, received):
            results[index] = one
    return results


def _receive_and_commit(session: Session | Connection, scorer: Scorer, batch: list[IncomingComment], now: datetime,
                        site: settings.SiteSettings | None) -> list[Received | InputError]:
    """One attempt at receiving comments with distinct ids, committed, or rolled back entirely."""
    try:
        received = _receive(session, scorer, batch, now, site)
        session.commit()
        return received
    except BaseException:
        session.rollback()
        raise


def _check_incoming(incoming: IncomingComment) -> None:
    """Refuse what cannot be stored exactly, naming the field."""
    check_text(incoming.text)
    for field in ("id", "article_id"):
        value = getattr(incoming, field)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"'{field}' must be a non-empty string", field)
        check_text(value, field, MAX_ID_CHARS)
    for field, limit in OPTIONAL_FIELDS.items():
        check_optional_text(getattr(incoming, field), field, limit)
    if incoming.created_at is not None and (not isinstance(incoming.created_at, datetime) or incoming.created_at.tzinfo is None):
        raise InputError("'created_at' must be a date and time with its time zone", "created_at")


def _receive(session: Session | Connection, scorer: Scorer, everything: list[IncomingComment], now: datetime,
             site: settings.SiteSettings | None) -> list[Received | InputError]:
    """The body of receive_comments for comments with distinct ids, inside its transaction.

    Core statements, each for the whole batch, on the session's connection (or the connection
    given) rather than through the ORM: this runs for every comment a site sends, and the ORM's
    bookkeeping cost more than scoring the comment.
    """
    connection = session.connection() if isinstance(session, Session) else session
    articles = _articles(connection, everything)
    refused = {one.id: UnknownArticle(one.article_id) for one in everything if one.article_id not in articles}
    batch = [one for one in everything if one.id not in refused]
    current = {row.external_id: row for row in connection.execute(_FIND_COMMENTS, {"ids": [one.id for one in batch]})}
    unchanged = _stored(connection, [one.id for one in batch if one.id in current and current[one.id].text == one.text])
    fresh = [one for one in batch if one.id not in unchanged]
    threads = _threads(connection, {articles[one.article_id].id for one in fresh})
    site = site or settings.current(connection)
    made = [_made(scorer, site, one, current.get(one.id), articles[one.article_id], threads, now) for one in fresh]
    _insert_comments(connection, made, now)
    revision_ids = _insert_many(connection, REVISIONS, [
        {"comment_id": m.comment_id, "number": m.number, "text": m.incoming.text, "received_at": now} for m in made])
    score_ids = _insert_many(connection, SCORES, [
        {"revision_id": revision_id, "model_version": scorer.version, "toxic": m.scores["toxic"], "off_topic": m.scores["off_topic"],
         "labels": m.verdict.labels, "explanation": m.explanation, "decision": m.verdict.decision, "created_at": now}
        for m, revision_id in zip(made, revision_ids)])
    decision_ids = _insert_many(connection, DECISIONS, [
        {"comment_id": m.comment_id, "revision": m.number, "status": m.values["status"], "decided_by": BY_MODEL,
         "reason": m.verdict.reason, "created_at": now} for m in made])
    webhooks.enqueue(connection, [
        (m.comment_id, decision_id, event_data(m.incoming.id, m.article.external_id, m.values["status"], BY_MODEL,
                                               m.verdict.reason, m.scores))
        for m, decision_id in zip(made, decision_ids) if m.verdict.decision != REVIEW], now)
    if made:
        _note_model_version(connection, scorer, now)
    stored = {m.incoming.id: m.stored(score_id, scorer.version) for m, score_id in zip(made, score_ids)}
    return [refused[one.id] if one.id in refused else Received(unchanged[one.id], "unchanged") if one.id in unchanged else
            Received(stored[one.id], "created" if one.id not in current else "edited") for one in everything]


@dataclass
class _Made:
    """A new revision of a comment, scored and decided, on its way into the tables."""

    incoming: IncomingComment
    article: _ArticleContext
    comment_id: int | None
    number: int
    scores: dict
    explanation: dict
    verdict: "_Verdict"
    values: dict

    def stored(self, score_id: int, model_version: str) -> StoredComment:
        """The comment as it now stands."""
        return StoredComment(
            id=self.comment_id, external_id=self.incoming.id, article_id=self.article.id,
            article_external_id=self.article.external_id, text=self.incoming.text, revision=self.number,
            status=self.values["status"], suggestion=self.values["suggestion"], review_reason=self.verdict.review_reason,
            decided_by=self.values["decided_by"], toxic=self.scores["toxic"], off_topic=self.scores["off_topic"],
            labels=self.verdict.labels, score_id=score_id, decision=self.verdict.decision, explanation=self.explanation,
            model_version=model_version,
        )


def _made(scorer: Scorer, site: settings.SiteSettings, incoming: IncomingComment, current, article: _ArticleContext,
          threads: dict[int, list[tuple[int, str]]], now: datetime) -> _Made:
    """Score one new comment or edit against its article and thread, and apply the site's policy."""
    comment_id = current.id if current is not None else None
    number = 1 if current is None else current.revision + 1
    thread = [text for other_id, text in threads.get(article.id, []) if other_id != comment_id][:THREAD_COMMENTS]
    result = scorer.score(incoming.text, {"title": article.title, "body": article.body, "comments": thread})
    scores = {"toxic": result["toxic"], "off_topic": result["off_topic"]}
    verdict = _policy_verdict(site, scorer, scores, article.premoderated, f"{incoming.id}#{number}")
    values = _current_values(incoming, number, scores, verdict, priority(scores, now, article.premoderated), now)
    return _Made(incoming, article, comment_id, number, scores, result["explanation"], verdict, values)


def _insert_comments(connection: Connection, made: list[_Made], now: datetime) -> None:
    """Insert the new comments (noting their ids) and update the edited ones."""
    edited = [m for m in made if m.comment_id is not None]
    new = [m for m in made if m.comment_id is None]
    ids = _insert_many(connection, COMMENTS, [
        {"external_id": m.incoming.id, "article_id": m.article.id, "created_at": m.incoming.created_at or now, **m.values,
         "author_id": m.incoming.author_id, "author_name": m.incoming.author_name, "language": m.incoming.language or None}
        for m in new])
    for m, comment_id in zip(new, ids):
        m.comment_id = comment_id
    for m in edited:  # an edit that leaves out the author or language keeps them
        kept = {field: value for field in ("author_id", "author_name", "language") if (value := getattr(m.incoming, field))}
        connection.execute(update(COMMENTS).where(COMMENTS.c.id == m.comment_id).values(**m.values, **kept))


def _insert_many(connection: Connection, table, rows: list[dict]) -> list[int]:
    """Insert rows in one statement (or few); their new ids, in the rows' order."""
    if not rows:
        return []
    return list(connection.scalars(_INSERTS[table.name], rows))


def event_data(comment_id: str, article_id: str, status: str, decided_by: str, reason: str | None, scores: dict) -> dict:
    """What a webhook event says about a decision."""
    return {"comment_id": comment_id, "article_id": article_id, "status": status, "decided_by": decided_by,
            "reason": reason, "scores": {"toxic": scores["toxic"], "off_topic": scores["off_topic"]}}


@dataclass(frozen=True)
class _Verdict:
    """What the policy made of a comment's scores."""

    labels: list[str]
    decision: str
    review_reason: str | None

    @property
    def reason(self) -> str | None:
        """The reason the model's decision record gives: why it waits, or the label it was flagged for."""
        if self.review_reason in ("premoderated", "sample"):
            return self.review_reason
        return self.labels[0] if self.labels else None


def _policy_verdict(site: settings.SiteSettings, scorer: Scorer, scores: dict, premoderated: bool, sample_key: str) -> _Verdict:
    """Labels and decision under the site's thresholds, with pre-moderation and the QA sample."""
    policy = site.policy(scorer.policy)
    labels = policy.labels(scores)
    decision = policy.decide(scores, premoderated)
    if decision == PUBLISH and in_sample(sample_key, site.qa_share):
        return _Verdict(labels, REVIEW, "sample")
    return _Verdict(labels, decision, ("flagged" if labels else "premoderated") if decision == REVIEW else None)


def _current_values(incoming: IncomingComment, number: int, scores: dict, verdict: _Verdict, queue_priority: float,
                    now: datetime) -> dict:
    """The comment row's columns for its new revision: text, scores and status (what the queue reads)."""
    decided = verdict.decision != REVIEW
    return {
        "text": incoming.text, "revision": number, "received_at": now,
        "toxic": scores["toxic"], "off_topic": scores["off_topic"], "top_score": max(scores.values()),
        "toxic_flag": "toxic" in verdict.labels, "off_topic_flag": "off_topic" in verdict.labels,
        "suggestion": REJECT if verdict.labels else PUBLISH, "review_reason": verdict.review_reason,
        "priority": queue_priority, "status": STATUS_OF[verdict.decision],
        "decided_by": BY_MODEL if decided else None, "decided_at": now if decided else None,
        "claimed_by_id": None, "claimed_until": None,
    }


def _articles(connection: Connection, batch: list[IncomingComment]) -> dict[str, _ArticleContext]:
    """The batch's articles by external id, created or updated from what the site sent (the latest comment's say wins).

    An unknown article sent with no title (nor a fallback title) is left out: its comments are refused.
    """
    sent: dict[str, dict] = {}
    fallback: dict[str, str] = {}
    for incoming in batch:
        sent.setdefault(incoming.article_id, {}).update(
            {field: value for field in ("title", "body", "url") if (value := getattr(incoming, f"article_{field}")) is not None})
        if incoming.article_fallback_title is not None:
            fallback.setdefault(incoming.article_id, incoming.article_fallback_title)
    rows = {row.external_id: row for row in connection.execute(_FIND_ARTICLES, {"ids": list(sent)})}
    found = {}
    for external_id, fields in sent.items():
        row = rows.get(external_id)
        if row is None and "title" not in fields and external_id not in fallback:
            continue
        if row is None:
            values = {"title": fallback.get(external_id, ""), "body": "", "url": None, **fields}
            article_id = connection.execute(_INSERT_ARTICLE, {"external_id": external_id, **values}).scalar_one()
            found[external_id] = _ArticleContext(article_id, external_id, values["title"], values["body"], False)
            continue
        changed = {field: value for field, value in fields.items() if getattr(row, field) != value}
        if changed:
            connection.execute(update(ARTICLES).where(ARTICLES.c.id == row.id).values(**changed))
        found[external_id] = _ArticleContext(row.id, external_id, changed.get("title", row.title),
                                             changed.get("body", row.body), row.premoderated)
    return found


def _threads(connection: Connection, article_ids: set[int]) -> dict[int, list[tuple[int, str]]]:
    """Each article's latest published comments, newest first, as (id, text): on-topic context for the off_topic score.

    One more than a thread holds, so that an edited comment can leave itself out; one indexed,
    limited read per article, sent as one statement.
    """
    if not article_ids:
        return {}
    threads: dict[int, list[tuple[int, str]]] = {}
    wanted = {f"article_{index}": article_id for index, article_id in enumerate(sorted(article_ids))}
    for row in connection.execute(_threads_statement(len(wanted)), wanted):
        threads.setdefault(row.article_id, []).append((row.received_at, row.id, row.text))
    return {article_id: [(comment_id, text) for _, comment_id, text in sorted(rows, reverse=True)]
            for article_id, rows in threads.items()}


@lru_cache(maxsize=None)
def _threads_statement(articles: int):
    """The threads of `articles` articles (bound as article_0, article_1, ...), built once per number of articles."""
    latest = [select(COMMENTS.c.article_id, COMMENTS.c.id, COMMENTS.c.text, COMMENTS.c.received_at)
              .where(COMMENTS.c.article_id == bindparam(f"article_{index}"), COMMENTS.c.status == PUBLISHED)
              .order_by(COMMENTS.c.received_at.desc()).limit(THREAD_COMMENTS + 1).subquery()
              for index in range(articles)]
    return union_all(*(select(part) for part in latest))


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
