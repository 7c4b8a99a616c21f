"""Coral Talk's external moderation phase: every new or edited Coral comment is moderated by Palabre.

Coral POSTs, for each comment its own phases let through, a JSON body with `action` ("NEW" or
"EDIT"), `comment.body` and `comment.parentID`, `author.id` and `author.role`, `story.id` and
`story.url`, `site.id`, `tenantID` and `tenantDomain`, signed in `X-Coral-Signature` as
`sha256=<hex HMAC-SHA256 of the raw body>`; while a rotated secret is still active the header
holds one signature per secret, comma-separated. Coral waits for the timeout set on the phase
(our spec plans for 200 ms), then carries on without the answer, as it does for any answer that
is not a 2xx or that it cannot validate.

Answers, in Coral's own words: 204 when Palabre publishes the comment (Coral then publishes
as usual); otherwise 200 with `status` PREMOD (held for a moderator) or REJECTED, one
`{"actionType": "FLAG", "reason": ...}` per flagged label, and for a rejection a
`moderationAction` with Coral's rejection reason code. Decisions made here:

- The flag reason for `off_topic` is COMMENT_DETECTED_SPAM: Coral accepts only
  COMMENT_DETECTED_TOXIC and COMMENT_DETECTED_SPAM from an external phase and throws the whole
  answer away for any other reason, and off-topic is where Palabre puts spam and promotion.
  No `tags` are sent: Coral only accepts FEATURED and STAFF, which are editors' calls.
- A comment drawn for the QA sample waits in Palabre's queue, but Coral gets 204: the sample is
  there to teach the model, not to hold back a comment the policy would publish.
- Coral's editor sends HTML. The body is stored exactly as sent, so nothing is lost and a
  moderator sees what the reader wrote; the model scores what a reader sees (tags removed,
  entities decoded, with html.parser) and the explanation's spans are moved back onto the
  characters of the stored HTML, so the queue highlights the right words. A phase set to send
  plain text gets the same treatment, which then changes nothing.
- Coral does not send the comment's id. When `comment.id` is present it is used; otherwise the
  id is a digest of tenant, story, author, parent and body, so a retried request is not stored
  twice. Without an id an edit cannot be tied to the comment it changes, and is stored as a new
  comment; with one it becomes a new revision, rescored.
- An unknown story becomes an article titled with its title if Coral sent one, else its URL,
  else its id; a title the site set through the API is never overwritten by a URL.
- Without a model Palabre answers 503: for the comment it is the same as 204 (Coral carries on
  without us), but Coral logs the failed phase, so the missing model gets noticed.
- The signing secrets are `app.config["CORAL_SECRET"]` when set, else the environment variable
  MODERATION_CORAL_SECRET (several, comma-separated, for the days of a rotation), plus those
  admins add in the admin pages' Coral Talk section; all are accepted, so a site moves from one
  place to the other without downtime. The configured ones are read on every request, the
  admin pages' at most every 2 s in a process. Without any the endpoint answers 503.
"""

import hashlib
import hmac
import json
import os
import time
from functools import lru_cache
from html import unescape
from html.parser import HTMLParser

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from .. import settings, web
from ..api.errors import error_response
from ..comments.models import PENDING, REJECTED
from ..receiving import MAX_ID_CHARS, IncomingComment, StoredComment
from ..registry import NoModelError
from ..scorer import Scorer
from ..validation import InputError, check_text
from ..web import csrf, intake

blueprint = Blueprint("coral", __name__)
csrf.exempt(blueprint)

SECRET_VARIABLE = "MODERATION_CORAL_SECRET"
ADMIN_SECRETS_SECONDS = 2.0
_admin_secrets: dict[str, tuple[float, list[str]]] = {}  # database URL -> (read again after, secrets)
SIGNATURE_HEADER = "X-Coral-Signature"
THREAD_CACHE_SIZE = 4096  # thread comments read as text: 20 per article in play
FLAG_REASONS = {"toxic": "COMMENT_DETECTED_TOXIC", "off_topic": "COMMENT_DETECTED_SPAM"}
REJECTION_CODES = {"toxic": "ABUSIVE", "off_topic": "SPAM"}
CORAL_FIELDS = {"text": "comment.body", "id": "comment.id", "article_id": "story.id", "article_title": "story.title",
                "article_url": "story.url", "author_id": "author.id", "author_name": "author.username"}
LINE_BREAKING_TAGS = frozenset({"br", "p", "div", "blockquote", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
                                "pre", "hr", "table", "tr"})


class UnreadableBody(InputError):
    """A body that is not a JSON document at all."""


@blueprint.route("/integrations/coral", methods=["POST"])
def moderate():
    """Verify Coral's signature, score and store the comment, and tell Coral what to do with it."""
    secrets = signing_secrets()
    if not secrets:
        return error_response(503, "not_configured", f"no signing secret is configured: set {SECRET_VARIABLE} to the "
                                                     "signing secret of Palabre's external moderation phase in Coral, "
                                                     "or add it in the admin pages at "
                                                     f"{url_for('admin.clients', _anchor='coral')}")
    raw = request.get_data(cache=True)
    problem = signature_problem(request.headers.get(SIGNATURE_HEADER), raw, secrets)
    if problem:
        return error_response(401, *problem)
    try:
        received = intake().receive(incoming(read_payload(raw)), reading=PlainTextScorer)
    except InputError as error:
        return _refusal(error)
    except NoModelError as error:
        return error_response(503, "no_model", f"{error}; Coral publishes the comment without Palabre's advice")
    answer = coral_answer(received.comment)
    return Response(status=204) if answer is None else jsonify(answer)


def signing_secrets() -> list[bytes]:
    """The secrets Coral may sign with, read while serving so that a rotation needs no restart."""
    return [secret.encode("utf-8", "surrogateescape") for secret in environment_secrets() + admin_secrets()]


def environment_secrets() -> list[str]:
    """The secrets the server is started with: the app's configuration, else MODERATION_CORAL_SECRET."""
    configured = current_app.config.get("CORAL_SECRET") or os.environ.get(SECRET_VARIABLE, "")
    values = configured if isinstance(configured, list | tuple) else str(configured).split(",")
    return [value.strip() for value in values if value.strip()]


def admin_secrets() -> list[str]:
    """The secrets added in the admin pages, read at most every ADMIN_SECRETS_SECONDS in a process.

    Coral's requests then cost no database round trip before the comment is handed over; a
    change in the admin pages holds at once in the process that made it, within seconds elsewhere.
    """
    database = web.database()
    found = _admin_secrets.get(database.url)
    if found is None or found[0] <= time.monotonic():
        with database.session() as session:
            found = (time.monotonic() + ADMIN_SECRETS_SECONDS, settings.coral_secrets(session))
        _admin_secrets[database.url] = found
    return found[1]


def forget_admin_secrets() -> None:
    """Read the admin pages' secrets again on the next request (after an admin changed them)."""
    _admin_secrets.clear()


def signature_problem(header: str | None, raw: bytes, secrets: list[bytes]) -> tuple[str, str] | None:
    """Why the request is not proven to come from Coral (code, message), or None when one signature matches."""
    if not header or not header.strip():
        return "missing_signature", f"the {SIGNATURE_HEADER} header is missing: Coral signs every request it sends"
    pairs = [part.strip().partition("=") for part in header.split(",")]
    offered = [value.strip().lower().encode("utf-8", "replace") for prefix, _, value in pairs if prefix.strip() == "sha256"]
    if not offered:
        found = ", ".join(sorted({prefix.strip()[:20] for prefix, _, _ in pairs})) or "nothing"
        return "invalid_signature", f"{SIGNATURE_HEADER} holds no sha256=<hex> signature (found: {found})"
    expected = [hmac.new(secret, raw, hashlib.sha256).hexdigest().encode() for secret in secrets]
    if not any(hmac.compare_digest(want, got) for want in expected for got in offered):
        return "invalid_signature", (f"no signature in {SIGNATURE_HEADER} matches this body: check that "
                                     f"{SECRET_VARIABLE} or the admin pages hold the phase's signing secret from Coral")
    return None


def read_payload(raw: bytes) -> dict:
    """The request's JSON object, or an UnreadableBody / InputError saying what is wrong with it."""
    try:
        payload = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as error:
        raise UnreadableBody(f"the body is not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise UnreadableBody(f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except (ValueError, RecursionError) as error:
        raise UnreadableBody(f"the body cannot be read as JSON: {str(error)[:200] or type(error).__name__}") from None
    if not isinstance(payload, dict):
        raise InputError(f"the body must be a JSON object, not {type(payload).__name__}")
    return payload


def _no_constant(name: str):
    """NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a JSON value")


def incoming(payload: dict) -> IncomingComment:
    """The comment as the service takes it, from Coral's request."""
    comment, story = _object(payload, "comment", required=True), _object(payload, "story", required=True)
    author = _object(payload, "author") or {}
    body = check_text(comment.get("body"), "comment.body")
    article_id = _identifier(story, "id", "story.id") or _text(story, "url", "story.url")
    check_text(article_id, "story.id", MAX_ID_CHARS)
    url, title = _text(story, "url", "story.url"), _story_title(story)
    author_id = _identifier(author, "id", "author.id")
    return IncomingComment(
        id=_identifier(comment, "id", "comment.id") or _derived_id(payload, article_id, author_id, body),
        text=body, article_id=article_id, article_title=title, article_url=url, article_fallback_title=url or article_id,
        author_id=author_id, author_name=_text(author, "username", "author.username"),
    )


def _story_title(story: dict) -> str | None:
    """The story's title, when Coral (or a proxy in front of it) sends one."""
    return _text(story, "title", "story.title") or _text(_object(story, "metadata", prefix="story.") or {}, "title",
                                                         "story.metadata.title")


def _derived_id(payload: dict, article_id: str, author_id: str | None, body: str) -> str:
    """An id for a comment Coral sent without one: the same comment sent again gets the same id."""
    parts = [payload.get("tenantID"), article_id, author_id, payload["comment"].get("parentID"), body]
    return "coral-" + hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()[:40]


def _object(parent: dict, key: str, required: bool = False, prefix: str = "") -> dict | None:
    """A nested object of the request, None when absent."""
    value = parent.get(key)
    if value is None and required:
        raise InputError(f"'{prefix}{key}' is required", f"{prefix}{key}")
    if value is not None and not isinstance(value, dict):
        raise InputError(f"'{prefix}{key}' must be an object, not {type(value).__name__}", f"{prefix}{key}")
    return value


def _identifier(parent: dict, key: str, path: str) -> str | None:
    """An id: a string, or a whole number kept as its decimal text; None when absent."""
    value = parent.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18:
        return str(value)
    return _text(parent, key, path)


def _text(parent: dict, key: str, path: str) -> str | None:
    """A text field; None when absent or empty, refused when it is not a string."""
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise InputError(f"'{path}' must be a string, not {type(value).__name__}", path)
    return value if value and value.strip() else None


def _refusal(error: InputError):
    """400 naming the field by its place in Coral's request."""
    if isinstance(error, UnreadableBody):
        return error_response(400, "invalid_json", str(error))
    field = CORAL_FIELDS.get(error.field, error.field)
    return error_response(400, "invalid_field", str(error).replace(f"'{error.field}'", f"'{field}'"), field)


def coral_answer(comment: StoredComment) -> dict | None:
    """What Coral should do with the comment: nothing (None) when Palabre publishes it, else hold or reject it, saying why."""
    held = comment.status == PENDING and comment.review_reason != "sample"
    if not held and comment.status != REJECTED:
        return None
    answer = {"status": "PREMOD" if held else "REJECTED",
              "actions": [{"actionType": "FLAG", "reason": FLAG_REASONS[label]} for label in comment.labels]}
    if not held:
        code = REJECTION_CODES[comment.labels[0]] if comment.labels else "OTHER"
        answer["moderationAction"] = {"status": "REJECTED", "rejectionReason": {"code": code}}
    return answer


class PlainTextScorer:
    """The serving scorer, reading what a reader sees of an HTML comment; its spans point into the HTML as sent."""

    def __init__(self, serving: Scorer):
        self._serving = serving

    def __getattr__(self, name):
        """The version, policy and metadata are the serving scorer's."""
        return getattr(self._serving, name)

    def score(self, text: str, article: dict | None = None) -> dict:
        """Score the visible text, then move every highlighted span back onto the characters it came from."""
        visible = VisibleText(text)
        if article and article.get("comments"):
            article = {**article, "comments": [visible_text(other) for other in article["comments"]]}
        result = self._serving.score(visible.text, article)
        result["explanation"] = {
            label: [{**term, "spans": [visible.source_span(start, end) for start, end in term["spans"]]} for term in terms]
            for label, terms in result["explanation"].items()
        }
        return result


@lru_cache(maxsize=THREAD_CACHE_SIZE)
def visible_text(html: str) -> str:
    """What a reader sees of a comment of the thread; cached, as each stays in its thread for the next twenty comments."""
    return VisibleText(html).text


class VisibleText(HTMLParser):
    """The text a reader sees of an HTML comment, and where each of its characters comes from in the HTML."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=False)
        self._html, self._chars, self._starts, self._ends = html, [], [], []
        self._plain = "<" not in html and "&" not in html
        if not self._plain:
            self._line_starts = [0] + [index + 1 for index, char in enumerate(html) if char == "\n"]
            self._parse()
        self.text = html if self._plain else "".join(self._chars)

    def _parse(self) -> None:
        """Read the HTML; markup that html.parser gives up on ("<![x") is scored as it was sent."""
        try:
            self.feed(self._html)
            self.close()
        except AssertionError:
            self._plain = True

    def source_span(self, start: int, end: int) -> list[int]:
        """The HTML characters that the visible characters start..end were read from."""
        if self._plain or end <= start:
            return [start, end]
        return [self._starts[start], self._ends[end - 1]]

    def handle_data(self, data: str) -> None:
        """Text shows as it is, character for character."""
        here = self._here()
        for offset, char in enumerate(data):
            self._add(char, here + offset, here + offset + 1)

    def handle_entityref(self, name: str) -> None:
        """&eacute; shows as é; the whole reference is where it came from."""
        self._add_reference(1 + len(name))

    def handle_charref(self, name: str) -> None:
        """&#233; shows as é; the whole reference is where it came from."""
        self._add_reference(2 + len(name))

    def handle_starttag(self, tag: str, attrs) -> None:
        """Paragraphs and line breaks keep the words on either side apart."""
        if tag in LINE_BREAKING_TAGS:
            self._add("\n", self._here(), self._here())

    def handle_endtag(self, tag: str) -> None:
        """The end of a paragraph also separates words."""
        self.handle_starttag(tag, [])

    def _add_reference(self, length: int) -> None:
        """A character reference of `length` characters before its optional ';'."""
        start = self._here()
        end = start + length + (self._html[start + length:start + length + 1] == ";")
        self._add(unescape(self._html[start:end]), start, end)

    def _add(self, text: str, start: int, end: int) -> None:
        """Visible characters and the stretch of HTML they came from."""
        for char in text:
            self._chars.append(char)
            self._starts.append(start)
            self._ends.append(end)

    def _here(self) -> int:
        """Where in the HTML the parser stands."""
        line, column = self.getpos()
        return self._line_starts[line - 1] + column
