"""The JSON API under /api/v1 for the site's comment system (SPEC section 8)."""

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import func, select

from .. import settings
from ..comments.models import PENDING, Article, Comment
from ..queue.listing import explanations
from ..receiving import IncomingComment, Received, StoredComment, UnknownArticle, receive_comments, stored_comment
from ..registry import NoModelError
from ..service import save_article
from ..timings import timed
from ..validation import InputError
from ..web import csrf, database, db, intake, scorer
from .clients import KeyRefused, authenticate
from .errors import ApiError, error_response
from .openapi import document
from .payloads import field, identifier, json_body, timestamp

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(blueprint)
docs = Blueprint("api_docs", __name__)

MAX_BATCH = 500
MAX_PER_PAGE = 100
QUERY_PARAMETERS = {"api.queue": {"page", "per_page"}}
COUNT_CAP = 10_000


@blueprint.before_request
def _authenticate():
    """Every endpoint needs `Authorization: Bearer <key>` of a client that is not revoked."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "unauthenticated", "send your API key as: Authorization: Bearer <key>",
                       headers={"WWW-Authenticate": 'Bearer realm="palabre"'})
    try:
        g.client = authenticate(database(), key.strip())
    except KeyRefused as refusal:
        raise ApiError(403 if refusal.revoked else 401, "revoked_key" if refusal.revoked else "invalid_key", str(refusal),
                       headers={} if refusal.revoked else {"WWW-Authenticate": 'Bearer realm="palabre", error="invalid_token"'}) from None
    unknown = sorted(set(request.args) - QUERY_PARAMETERS.get(request.endpoint, set()))
    if unknown:
        raise InputError(f"unknown query parameter {unknown[0][:40]!r}; this address takes "
                         f"{', '.join(sorted(QUERY_PARAMETERS.get(request.endpoint, ()))) or 'none'}", unknown[0][:40])
    allowed, wait = current_app.extensions["palabre.rate_limiter"].allow(g.client.id)
    if not allowed:
        raise ApiError(429, "rate_limited", f"too many requests for this key; retry in {wait} s", headers={"Retry-After": str(wait)})


@blueprint.errorhandler(ApiError)
def _api_error(error: ApiError):
    """Refusals as JSON."""
    return error_response(error.status, error.code, error.message, error.field, error.headers)


@blueprint.errorhandler(InputError)
def _input_error(error: InputError):
    """A field that cannot be accepted: 422 naming it."""
    return error_response(422, "invalid_field", str(error), error.field)


@blueprint.errorhandler(UnknownArticle)
def _unknown_article(error: UnknownArticle):
    """A comment on an article never seen, without its title: 422 saying how to introduce the article."""
    return error_response(422, "unknown_article", str(error), error.field)


@blueprint.errorhandler(NoModelError)
def _no_model(error: NoModelError):
    """Without a model nothing can be scored: 503 saying so."""
    return error_response(503, "no_model", str(error))


@docs.route("/api/openapi.json")
def openapi():
    """The OpenAPI 3 document of this API (no key needed)."""
    return jsonify(document())


@blueprint.route("/comments", methods=["POST"])
def post_comment():
    """Receive a comment: 201 with its decision, 200 with the stored result when the same id and text come again."""
    with timed("parse"):
        incoming = _incoming(json_body())
    received = intake().receive(incoming)
    with timed("serialise"):
        answer = jsonify(comment_json(received.comment))
    return answer, 201 if received.outcome != "unchanged" else 200


@blueprint.route("/comments/batch", methods=["POST"])
def post_batch():
    """Receive up to 500 comments in one transaction; each gets its own result or its own error, in order."""
    comments = field(json_body(), "comments", list, required=True)
    if len(comments) > MAX_BATCH:
        raise InputError(f"'comments' holds {len(comments)} comments; the limit is {MAX_BATCH}", "comments")
    read: list[IncomingComment | InputError] = []
    for index, item in enumerate(comments):
        try:
            if not isinstance(item, dict):
                raise InputError(f"'comments[{index}]' must be an object", f"comments[{index}]")
            read.append(_incoming(item))
        except InputError as error:
            read.append(error)
    accepted = [item for item in read if isinstance(item, IncomingComment)]
    received = iter(receive_comments(db(), scorer(), accepted))
    results = [item if isinstance(item, InputError) else next(received) for item in read]
    return jsonify(results=[
        {**comment_json(result.comment), "outcome": result.outcome} if isinstance(result, Received) else
        {"id": item.get("id") if isinstance(item, dict) else None, "error": item_error(result)}
        for item, result in zip(comments, results)])


def item_error(error: Exception) -> dict:
    """One refused comment of a batch, as the batch answer lists it."""
    if isinstance(error, UnknownArticle):
        return {"code": "unknown_article", "message": str(error), "field": error.field}
    if isinstance(error, InputError):
        return {"code": "invalid_field", "message": str(error), "field": error.field}
    return {"code": "internal_error", "message": "this comment could not be stored because of a fault on our side; "
                                                "it was not stored, the others were: send it again", "field": None}


def _incoming(body: dict) -> IncomingComment:
    """One comment object read into what the service takes."""
    article = field(body, "article", dict, required=True)
    author = field(body, "author", dict) or {}
    return IncomingComment(
        id=identifier(body, "id"), text=field(body, "text", str, required=True),
        article_id=identifier(article, "id", prefix="article."),
        article_title=field(article, "title", str, prefix="article."), article_body=field(article, "body", str, prefix="article."),
        article_url=field(article, "url", str, prefix="article."),
        author_id=_author_id(author), author_name=field(author, "name", str, prefix="author."),
        created_at=timestamp(body, "created_at"), language=field(body, "language", str),
    )


def _author_id(author: dict) -> str | None:
    """The author's id on the site, as text."""
    return identifier(author, "id", prefix="author.") if author.get("id") is not None else None


def comment_json(comment: StoredComment) -> dict:
    """A stored comment as the API returns it."""
    return {
        "id": comment.external_id,
        "status": comment.status,
        "decision": comment.decision,
        "scores": {"toxic": comment.toxic, "off_topic": comment.off_topic},
        "labels": comment.labels,
        "explanation": comment.explanation,
        "model_version": comment.model_version,
        "revision": comment.revision,
        "text": comment.text,
        "article_id": comment.article_external_id,
    }


@blueprint.route("/comments/<path:comment_id>", methods=["GET"])
def get_comment(comment_id):
    """A stored comment exactly as it was received, with its current status and scores."""
    comment = None if "\x00" in comment_id or len(comment_id) > 255 else stored_comment(db(), comment_id)
    if comment is None:
        raise ApiError(404, "not_found", f"there is no comment {comment_id!r}")
    return jsonify(comment_json(comment))


@blueprint.route("/articles/<path:article_id>", methods=["PUT"])
def put_article(article_id):
    """Create or update an article: title, body, url, premoderate."""
    body = json_body()
    article, created = save_article(db(), article_id, field(body, "title", str), field(body, "body", str), field(body, "url", str),
                                    field(body, "premoderate", bool))
    intake().forget_articles()
    return jsonify(article_json(article)), 201 if created else 200


def article_json(article: Article) -> dict:
    """An article as the API returns it."""
    return {"id": article.external_id, "title": article.title, "body": article.body, "url": article.url,
            "premoderate": article.premoderated}


@blueprint.route("/score", methods=["POST"])
def score():
    """Score a text without storing anything, decided under the site's thresholds as a received comment would be (no QA sample)."""
    body = json_body()
    article = field(body, "article", dict)
    model = scorer()
    result = model.score(field(body, "text", str, required=True),
                         None if article is None else {"title": field(article, "title", str, prefix="article."),
                                                       "body": field(article, "body", str, prefix="article.")})
    scores = {"toxic": result["toxic"], "off_topic": result["off_topic"]}
    policy = settings.current(db()).policy(model.policy)
    return jsonify(scores=scores, labels=policy.labels(scores), decision=policy.decide(scores),
                   explanation=result["explanation"], model_version=result["model_version"])


@blueprint.route("/queue", methods=["GET"])
def queue():
    """What waits for review, highest priority first, a page at a time (?page=, ?per_page= up to 100)."""
    page = _positive_int("page", 1, 10_000)
    per_page = _positive_int("per_page", 50, MAX_PER_PAGE)
    waiting = select(Comment).where(Comment.status == PENDING)
    comments = list(db().scalars(waiting.order_by(Comment.priority.desc(), Comment.id.desc())
                                 .offset((page - 1) * per_page).limit(per_page + 1)))
    shown = comments[:per_page]
    found = explanations(db(), shown)
    total = db().scalar(select(func.count()).select_from(waiting.limit(COUNT_CAP + 1).subquery()))
    return jsonify(
        items=[{"id": c.external_id, "article_id": c.article.external_id, "text": c.text, "scores": c.scores, "labels": c.labels,
                "review_reason": c.review_reason, "received_at": c.received_at.isoformat(), "explanation": found.get(c.id, {})}
               for c in shown],
        page=page, per_page=per_page, total=min(total, COUNT_CAP), total_is_lower_bound=total > COUNT_CAP,
        next_page=page + 1 if len(comments) > per_page else None,
    )


def _positive_int(name: str, default: int, largest: int) -> int:
    """A query-string number between 1 and `largest`, or a 422 naming it."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= largest:
        raise InputError(f"'{name}' must be a whole number from 1 to {largest}", name)
    return int(raw)
