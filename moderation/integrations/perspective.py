"""Google's Perspective API, answered by Palabre: a site points its Perspective client here and keeps working.

`POST /v1alpha1/comments:analyze?key=<Palabre API key>` takes Perspective's AnalyzeComment request
and answers in its shape: `{"attributeScores": {NAME: {"summaryScore": {"value", "type":
"PROBABILITY"}, "spanScores": [...]}}, "languages", "detectedLanguages", "clientToken"}`, fields
left out when empty as Google's JSON did. The key may also come as `X-Goog-Api-Key` or
`Authorization: Bearer`, and shares the key's rate limit with the /api endpoints. Field names are
read in camelCase and, as Google's parser also took them, in snake_case; fields Palabre does not
know are ignored rather than refused, so a client sending one Perspective added late keeps
working. Nothing is stored: analyze only scores (so `doNotStore` is always honoured);
`sessionId` and `communityId` are accepted and ignored. Google's Python client builds itself
from a discovery document, which
Perspective served at `/$discovery/rest?version=v1alpha1`; Palabre serves its own there, so
`discoveryServiceUrl` pointed at Palabre is the only change such a site makes. Its `rootUrl` is
the address the request came to; behind a proxy that hides it (without ProxyFix), the client
passes `client_options={"api_endpoint": "https://palabre.example/"}` as well.

Decisions made here:

- Attributes: TOXICITY is Palabre's `toxic` and OFF_TOPIC its `off_topic`. SEVERE_TOXICITY is
  answered with the `toxic` score too: it is the same dimension with a stricter bar, Coral lets an
  admin choose it as its model, and the `toxic` probability is never below a severe-toxicity one,
  so a client's threshold errs towards sending more comments to a human, never fewer. INSULT,
  PROFANITY, THREAT and IDENTITY_ATTACK are refused like any unknown attribute: they name
  categories the model does not tell apart, and answering them with the `toxic` score would put a
  confident THREAT score on every plain insult.
- Span scores (with `spanAnnotations`): like Perspective, one span per sentence. The comment is
  cut after a run of `.`, `!`, `?` or `…` followed by a space, and at line breaks; each sentence
  is scored on its own by the same model with the same context, so a span score is a probability
  of the same kind as the summary. A sentence with nothing visible (only zero-width characters)
  gets no span; past MAX_SPANS sentences, neighbouring ones are scored together. `begin` and `end`
  are offsets in the original text counted as Perspective counts them, in UTF-16 code units
  (JavaScript string indices): the same as Python's character offsets unless the text holds
  characters beyond U+FFFF such as emoji, which count two.
- Languages: fr and en, with any regional form (fr-FR, en_US, ...); any other gets Perspective's
  "Attribute X does not support request languages" error, or no scores at all when
  `dropUnsupportedAttributes` is set. Without `languages`, the answer's `languages` and
  `detectedLanguages` hold a guess between French and English from common words (French when in
  doubt): Palabre does not detect other languages, and scores whatever it is sent.
- Context: `context.entries` become the article (the first entry its title, the others its
  body); `context.articleAndParentComment` gives the article's text and, as the thread, the parent
  comment. Both are only read for the `off_topic` score.
- `scoreThreshold` leaves out an attribute whose summary score is below it, and its spans below it.
- Errors are Google's: `{"error": {"code": 400, "message", "status": "INVALID_ARGUMENT",
  "details"?}}`, with Perspective's messages where it had one. Missing and unknown keys get 401
  UNAUTHENTICATED, revoked ones 403 PERMISSION_DENIED (Google answered a bad key with 400; a
  client treats all three alike), a body over the size limit 413, too many requests 429
  RESOURCE_EXHAUSTED, no active model 503 UNAVAILABLE. A comment over 20,000 characters gets
  Perspective's "Comment text too long." (its own limit was 20 KB).
- `POST /v1alpha1/comments:suggestscore`, which Coral sends only when its "send feedback" option is
  on, is refused with 501 UNIMPLEMENTED after the same key checks as analyze: Palabre learns from
  the decisions made in its own review queue, not from a client's suggested scores, and a clear
  refusal tells the site to turn the option off where a 404 would look like a wrong address.
"""

import json
import math
import re

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, default_exceptions

from ..api.clients import KeyRefused, authenticate
from ..registry import NoModelError
from ..scorer import Scorer
from ..validation import MAX_TEXT_CHARS, InputError, check_text
from ..web import csrf, database, scorer

blueprint = Blueprint("perspective", __name__)
csrf.exempt(blueprint)

ATTRIBUTES = {"TOXICITY": "toxic", "SEVERE_TOXICITY": "toxic", "OFF_TOPIC": "off_topic"}
LANGUAGES = ("fr", "en")
VERSION = "v1alpha1"
PROBABILITY = "PROBABILITY"
SCORE_TYPES = ("SCORE_TYPE_UNSPECIFIED", PROBABILITY, "STD_DEV_SCORE", "PERCENTILE", "RAW")
TEXT_TYPES = ("TEXT_TYPE_UNSPECIFIED", "PLAIN_TEXT", "HTML")
MAX_SPANS = 200
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
SHOWN_CHARS = 80
SUGGESTIONS_REFUSED = ("Palabre does not take score suggestions: it learns from the decisions its moderators make in its "
                       "review queue. Turn off sending feedback in the client's settings.")
# A 401's challenge. With a parameter: httplib2, under Google's Python client, cannot parse a bare "Bearer" and
# would raise its own MalformedHeader instead of handing the client the error.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="palabre"'}
ERROR_DETAIL_TYPE = "type.googleapis.com/google.commentanalyzer.v1alpha1.Error"
STATUSES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    405: "UNIMPLEMENTED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
}
# Proto type names, as Google's own "Invalid value at ..." messages give them.
STRING, BOOL, NUMBER, MESSAGE, LIST = "TYPE_STRING", "TYPE_BOOL", "TYPE_FLOAT", "TYPE_MESSAGE", "repeated"
_KINDS = {STRING: (str,), BOOL: (bool,), NUMBER: (int, float), MESSAGE: (dict,), LIST: (list,)}
# Accepted and type-checked as Perspective did; nothing is stored, so they change nothing here.
IGNORED_FIELDS = (("doNotStore", BOOL), ("sessionId", STRING), ("communityId", STRING))
# Where a sentence ends: a run of final punctuation (with closing quotes) before a space, or a line break.
# The look-behind and possessive runs keep this linear on a comment of 20,000 "!".
_SENTENCE_END = re.compile(r"(?<![.!?…])[.!?…]++[\"'»”’)\]]*+(?=\s|\Z)|\n")
_WORD = re.compile(r"\w+")
FRENCH_WORDS = frozenset(
    "le la les un une des du de et est sont je tu il elle nous vous ils elles ce cette ces que qui "
    "pas ne pour dans sur avec mais ou au aux c j l d qu n s y mon ton son leur".split()
)
ENGLISH_WORDS = frozenset(
    "the an and is are was were i you he she we they it this that these not for with but of to in "
    "be have has what my your his their".split()
)


class PerspectiveError(Exception):
    """A refused request: HTTP status, a message saying what to fix, and Perspective's error type when it had one."""

    def __init__(self, code: int, message: str, error_type: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.error_type, self.headers = code, message, error_type, headers or {}


def error_answer(code: int, message: str, error_type: str | None = None, headers: dict | None = None):
    """A refusal in Google's JSON error shape, which Perspective clients parse."""
    error = {"code": code, "message": message, "status": STATUSES.get(code, "UNKNOWN")}
    if error_type:
        error["details"] = [{"@type": ERROR_DETAIL_TYPE, "errorType": error_type}]
    response = jsonify(error=error)
    response.status_code = code
    response.headers.update(headers or {})
    return response


@blueprint.errorhandler(PerspectiveError)
def _refused(error: PerspectiveError):
    """Refusals in Perspective's shape."""
    return error_answer(error.code, error.message, error.error_type, error.headers)


@blueprint.errorhandler(InputError)
def _input_error(error: InputError):
    """Text the model cannot take (a NUL, a lone surrogate, an oversized context): 400 saying why."""
    return error_answer(400, str(error))


@blueprint.errorhandler(NoModelError)
def _no_model(error: NoModelError):
    """Without an active model nothing can be scored: 503, so the client retries later."""
    return error_answer(503, f"No model is active on this Palabre server: {error}")


def _http_error(error: HTTPException):
    """Werkzeug's errors (an oversized body, a crash) in Perspective's shape rather than the /api one."""
    code = error.code or 500
    if code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return error_answer(413, f"Request payload size exceeds the limit: {limit} bytes.")
    if code >= 500:
        return error_answer(code, "Palabre could not answer this request; nothing was stored. Retry.")
    return error_answer(code, error.description or "The request was refused.")


# By code, not by class: Flask prefers the app's handlers for a code (413, 500, ...) to a blueprint's for a class.
for _code in default_exceptions:
    blueprint.register_error_handler(_code, _http_error)


@blueprint.route(f"/{VERSION}/comments:analyze", methods=["POST"])
def analyze():
    """Score one comment for the requested attributes, as Perspective's AnalyzeComment did; nothing is stored."""
    _authenticate()
    body = _request_body()
    text, attributes, languages, article = _comment_text(body), _requested_attributes(body), _languages(body), _context(body)
    spans_wanted = bool(_value(body, "spanAnnotations", BOOL))
    for name, kind in IGNORED_FIELDS:
        _value(body, name, kind)
    detected = guess_language(text)
    answer = {"languages": languages or [detected], "detectedLanguages": [detected],
              "clientToken": _value(body, "clientToken", STRING)}
    if _languages_supported(body, languages, attributes):
        answer["attributeScores"] = attribute_scores(scorer(), text, article, attributes, spans_wanted)
    # Google's JSON leaves out empty fields: no clientToken when none was sent, no attributeScores when none is kept.
    return jsonify({name: value for name, value in answer.items() if value})


def _languages_supported(body: dict, languages: list[str], attributes: dict) -> bool:
    """Whether the comment's stated languages are all French or English; if not, Perspective's error, or no scores
    when the client asked for unsupported attributes to be dropped."""
    unsupported = [code for code in languages if primary_language(code) not in LANGUAGES]
    if unsupported and not _value(body, "dropUnsupportedAttributes", BOOL):
        raise PerspectiveError(400, f"Attribute {next(iter(attributes))} does not support request languages: "
                                    f"{', '.join(_shown(code) for code in unsupported)}. Palabre scores French (fr) "
                                    "and English (en).", "LANGUAGE_NOT_SUPPORTED_BY_ATTRIBUTE")
    return not unsupported


@blueprint.route(f"/{VERSION}/comments:suggestscore", methods=["POST"])
def suggest_score():
    """Coral's "send feedback" option posts here; Palabre learns from its own moderators, so it says so plainly (501)."""
    _authenticate()
    raise PerspectiveError(501, SUGGESTIONS_REFUSED)


@blueprint.route("/$discovery/rest", methods=["GET"])
def discovery_document():
    """The discovery document Google's client libraries build a Perspective client from, pointing at this server."""
    if request.args.get("version", VERSION) != VERSION:
        raise PerspectiveError(404, f"Palabre serves the Perspective API version {VERSION} only.")
    return jsonify(_discovery(request.url_root))


def _authenticate() -> None:
    """The `key` query parameter (or X-Goog-Api-Key, or a Bearer token) must be a live Palabre API key within its rate."""
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    key = (request.args.get("key") or request.headers.get("X-Goog-Api-Key")
           or (bearer if scheme.lower() == "bearer" else "")).strip()
    if not key:
        raise PerspectiveError(401, "The request is missing a valid API key: add ?key=<your Palabre API key> to the URL.",
                               headers=CHALLENGE)
    try:
        client = authenticate(database(), key)
    except KeyRefused as refusal:
        if refusal.revoked:
            raise PerspectiveError(403, f"Permission denied: {refusal}.") from None
        raise PerspectiveError(401, "API key not valid. Please pass a valid API key.",
                               headers=CHALLENGE) from None
    allowed, wait = current_app.extensions["palabre.rate_limiter"].allow(client.id)
    if not allowed:
        raise PerspectiveError(429, f"Quota exceeded for this API key: retry in {wait} s.", headers={"Retry-After": str(wait)})


def _request_body() -> dict:
    """The request's JSON object; any other body gets Google's "Invalid JSON payload received"."""
    if request.mimetype in FORM_TYPES:
        raise PerspectiveError(400, "Invalid JSON payload received. Send the request as JSON with Content-Type: "
                                    f"application/json, not {request.mimetype}.")
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise PerspectiveError(400, "Invalid JSON payload received. The body is empty: send the request as a JSON object.")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as error:
        raise PerspectiveError(400, f"Invalid JSON payload received. The body is not UTF-8 (byte {error.start}).") from None
    except json.JSONDecodeError as error:
        raise PerspectiveError(400, f"Invalid JSON payload received. {error.msg} at line {error.lineno} "
                                    f"column {error.colno}.") from None
    except (ValueError, RecursionError) as error:
        raise PerspectiveError(400, f"Invalid JSON payload received. {str(error)[:200] or type(error).__name__}.") from None
    if not isinstance(body, dict):
        raise PerspectiveError(400, "Invalid JSON payload received. The body must be a JSON object, "
                                    f"not {type(body).__name__}.")
    return body


def _no_constant(name: str):
    """NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a JSON value")


def _value(message: dict, name: str, kind: str, path: str | None = None):
    """A field by its JSON name or its proto (snake_case) name; None when absent or null, as proto3 JSON reads it."""
    value = message.get(name)
    if value is None:
        value = message.get(re.sub(r"[A-Z]", lambda match: "_" + match.group().lower(), name))
    if value is None:
        return None
    if isinstance(value, bool) and kind != BOOL or not isinstance(value, _KINDS[kind]):
        raise _invalid(path or name, kind, value)
    return value


def _invalid(path: str, kind: str, value) -> PerspectiveError:
    """Google's message for a field of the wrong type."""
    return PerspectiveError(400, f"Invalid value at '{path}' ({kind}), {_shown(json.dumps(value))}")


def _shown(value: str) -> str:
    """A piece of the request quoted in a message, cut short."""
    return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…"


def _comment_text(body: dict) -> str:
    """`comment.text`: plain text, not empty, within the limit, storable as sent."""
    comment = _value(body, "comment", MESSAGE) or {}
    _plain_text(comment, "comment")
    text = _value(comment, "text", STRING, "comment.text")
    if text is None or not text.strip():
        raise PerspectiveError(400, "Comment must be non-empty.", "COMMENT_EMPTY")
    if len(text) > MAX_TEXT_CHARS:
        raise PerspectiveError(400, f"Comment text too long. It has {len(text):,} characters; Palabre scores comments "
                                    f"of up to {MAX_TEXT_CHARS:,}.")
    return check_text(text, "comment.text")


def _plain_text(entry: dict, path: str) -> None:
    """Only plain text is scored, as on Perspective; HTML is refused, not guessed at."""
    kind = _value(entry, "type", STRING, f"{path}.type")
    if kind == "HTML":
        raise PerspectiveError(400, f"Currently, only 'PLAIN_TEXT' comments are supported ('{path}.type' is HTML): "
                                    "send the text a reader sees, without its markup.")
    if kind is not None and kind not in TEXT_TYPES:
        raise _invalid(f"{path}.type", "TextEntry.TextType", kind)


def _requested_attributes(body: dict) -> dict[str, tuple[str, float | None]]:
    """Each requested attribute's label and score threshold, in the order asked; unknown ones refused."""
    requested = _value(body, "requestedAttributes", MESSAGE)
    if not requested:
        raise PerspectiveError(400, f"Missing requested_attributes: ask for at least one of {', '.join(ATTRIBUTES)}, "
                                    'e.g. "requestedAttributes": {"TOXICITY": {}}.')
    attributes = {}
    for name, parameters in requested.items():
        if name not in ATTRIBUTES:
            raise PerspectiveError(400, f"Unknown requested attribute: {_shown(name)}. Palabre scores "
                                        f"{', '.join(ATTRIBUTES)}.")
        attributes[name] = (ATTRIBUTES[name], _threshold(name, parameters))
    return attributes


def _threshold(name: str, parameters) -> float | None:
    """An attribute's `scoreThreshold`, after checking it asks for probabilities, the only score type there is."""
    path = f"requestedAttributes.{name}"
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise _invalid(path, "AttributeParameters", parameters)
    score_type = _value(parameters, "scoreType", STRING, f"{path}.scoreType")
    if score_type is not None and score_type not in SCORE_TYPES:
        raise _invalid(f"{path}.scoreType", "ScoreType", score_type)
    if score_type not in (None, "SCORE_TYPE_UNSPECIFIED", PROBABILITY):
        raise PerspectiveError(400, f"Requested score type {score_type} is not supported by attribute {name}: "
                                    f"Palabre gives {PROBABILITY} scores only.")
    threshold = _value(parameters, "scoreThreshold", NUMBER, f"{path}.scoreThreshold")
    if threshold is not None and not 0 <= threshold <= 1:
        raise PerspectiveError(400, f"Invalid value at '{path}.scoreThreshold': {threshold} is not a probability "
                                    "between 0 and 1.")
    return threshold


def _languages(body: dict) -> list[str]:
    """The languages the client says the comment is in, as sent."""
    languages = _value(body, "languages", LIST) or []
    for index, code in enumerate(languages):
        if not isinstance(code, str):
            raise _invalid(f"languages[{index}]", STRING, code)
    return languages


def primary_language(code: str) -> str:
    """The language of an ISO or BCP-47 code: "fr-FR" and "fr_CA" are French."""
    return re.split(r"[-_]", code.strip().casefold(), maxsplit=1)[0]


def guess_language(text: str) -> str:
    """French or English, from the common words a comment uses; French, the site's first language, when in doubt."""
    words = _WORD.findall(text.casefold())
    english = sum(word in ENGLISH_WORDS for word in words)
    french = sum(word in FRENCH_WORDS for word in words)
    return "en" if english > french else "fr"


def _context(body: dict) -> dict | None:
    """The article context for the scorer, from `context.entries` or `context.articleAndParentComment`."""
    context = _value(body, "context", MESSAGE)
    if not context:
        return None
    entries = _value(context, "entries", LIST, "context.entries")
    pair = _value(context, "articleAndParentComment", MESSAGE, "context.articleAndParentComment")
    if entries and pair:
        raise PerspectiveError(400, "Context can have either entries or article_and_parent_comment, but not both.")
    if pair:
        path = "context.articleAndParentComment"
        parent = _entry_text(_value(pair, "parentComment", MESSAGE, f"{path}.parentComment"), f"{path}.parentComment")
        return {"body": _entry_text(_value(pair, "article", MESSAGE, f"{path}.article"), f"{path}.article"),
                "comments": [parent] if parent else []}
    texts = [_entry_text(entry, f"context.entries[{index}]") for index, entry in enumerate(entries or [])]
    if not any(texts):
        return None
    return {"title": texts[0], "body": "\n".join(text for text in texts[1:] if text)}


def _entry_text(entry, path: str) -> str:
    """The plain text of a context entry ("" when it has none)."""
    if entry is None:
        return ""
    if not isinstance(entry, dict):
        raise _invalid(path, "TextEntry", entry)
    _plain_text(entry, path)
    return _value(entry, "text", STRING, f"{path}.text") or ""


def attribute_scores(model: Scorer, text: str, article: dict | None, attributes: dict, spans_wanted: bool) -> dict:
    """Perspective's `attributeScores`: each attribute's summary score and, if asked, its per-sentence scores."""
    whole = model.score(text, article)
    spans = sentence_scores(model, text, article) if spans_wanted else []
    scores = {}
    for name, (label, threshold) in attributes.items():
        if threshold is not None and whole[label] < threshold:
            continue
        scores[name] = {"summaryScore": _score(whole[label])}
        kept = [{"begin": begin, "end": end, "score": _score(result[label])} for begin, end, result in spans
                if threshold is None or result[label] >= threshold]
        if kept:
            scores[name]["spanScores"] = kept
    return scores


def _score(value: float) -> dict:
    """A Perspective score object."""
    return {"value": value, "type": PROBABILITY}


def sentence_scores(model: Scorer, text: str, article: dict | None) -> list[tuple[int, int, dict]]:
    """Each sentence's UTF-16 begin and end and its own scores; one with nothing visible (a lone zero-width space) is left out."""
    found = []
    for start, end in _grouped(sentences(text)):
        try:
            result = model.score(text[start:end], article)
        except InputError:
            continue
        found.append((utf16_offset(text, start), utf16_offset(text, end), result))
    return found


def sentences(text: str) -> list[tuple[int, int]]:
    """Start and end (Python offsets) of each sentence-like segment, without the spaces around it."""
    pieces, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        pieces.append((start, match.end()))
        start = match.end()
    pieces.append((start, len(text)))
    return [trimmed for start, end in pieces if (trimmed := _trimmed(text, start, end))]


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """A segment without its surrounding spaces; None when it is only spaces."""
    piece = text[start:end]
    stripped = piece.strip()
    if not stripped:
        return None
    begin = start + len(piece) - len(piece.lstrip())
    return begin, begin + len(stripped)


def _grouped(segments: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """At most MAX_SPANS segments, neighbours merged evenly, so a 20,000-character comment stays fast to answer."""
    size = math.ceil(len(segments) / MAX_SPANS) if segments else 1
    return [(segments[index][0], segments[min(index + size, len(segments)) - 1][1])
            for index in range(0, len(segments), size)]


def utf16_offset(text: str, index: int) -> int:
    """A Python string offset as Perspective (and JavaScript) count it, in UTF-16 code units."""
    return len(text[:index].encode("utf-16-le", "surrogatepass")) // 2


def _discovery(root_url: str) -> dict:
    """Palabre's own discovery document for the analyze method, in the format Google's clients read."""
    def object_schema(name: str, **properties) -> dict:
        """A schema of the document."""
        return {"id": name, "type": "object", "properties": properties}

    text, flag, number = {"type": "string"}, {"type": "boolean"}, {"type": "number", "format": "float"}
    score = {"$ref": "Score"}
    return {
        "kind": "discovery#restDescription", "discoveryVersion": "v1", "id": f"commentanalyzer:{VERSION}",
        "name": "commentanalyzer", "version": VERSION, "title": "Palabre, answering as the Perspective Comment Analyzer API",
        "protocol": "rest", "rootUrl": root_url, "servicePath": "", "baseUrl": root_url, "batchPath": "batch",
        "parameters": {
            "key": {"type": "string", "location": "query", "description": "Your Palabre API key."},
            "alt": {"type": "string", "location": "query", "default": "json", "enum": ["json"]},
        },
        "resources": {"comments": {"methods": {"analyze": {
            "id": "commentanalyzer.comments.analyze", "path": f"{VERSION}/comments:analyze",
            "flatPath": f"{VERSION}/comments:analyze", "httpMethod": "POST", "parameters": {}, "parameterOrder": [],
            "request": {"$ref": "AnalyzeCommentRequest"}, "response": {"$ref": "AnalyzeCommentResponse"},
            "description": "Scores a comment for the requested attributes; nothing is stored.",
        }}}},
        "schemas": {
            "TextEntry": object_schema("TextEntry", text=text, type=text),
            "Context": object_schema("Context", entries={"type": "array", "items": {"$ref": "TextEntry"}},
                                     articleAndParentComment={"$ref": "ArticleAndParentComment"}),
            "ArticleAndParentComment": object_schema("ArticleAndParentComment", article={"$ref": "TextEntry"},
                                                     parentComment={"$ref": "TextEntry"}),
            "AttributeParameters": object_schema("AttributeParameters", scoreType=text, scoreThreshold=number),
            "AnalyzeCommentRequest": object_schema(
                "AnalyzeCommentRequest", comment={"$ref": "TextEntry"}, context={"$ref": "Context"},
                requestedAttributes={"type": "object", "additionalProperties": {"$ref": "AttributeParameters"}},
                languages={"type": "array", "items": text}, spanAnnotations=flag, doNotStore=flag,
                dropUnsupportedAttributes=flag, clientToken=text, sessionId=text, communityId=text),
            "Score": object_schema("Score", value=number, type=text),
            "SpanScore": object_schema("SpanScore", begin={"type": "integer", "format": "int32"},
                                       end={"type": "integer", "format": "int32"}, score=score),
            "AttributeScores": object_schema("AttributeScores", summaryScore=score,
                                             spanScores={"type": "array", "items": {"$ref": "SpanScore"}}),
            "AnalyzeCommentResponse": object_schema(
                "AnalyzeCommentResponse", attributeScores={"type": "object", "additionalProperties": {"$ref": "AttributeScores"}},
                languages={"type": "array", "items": text}, detectedLanguages={"type": "array", "items": text},
                clientToken=text),
        },
    }
