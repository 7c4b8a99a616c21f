"""The OpenAPI 3 document of every address a comment system calls: /api/v1 and the drop-in Perspective and Coral
endpoints, written next to the code it describes (its limits and names are the code's own) and checked against it by
the tests."""

from ..integrations.coral import FLAG_REASONS, REJECTION_CODES, SIGNATURE_HEADER
from ..integrations.perspective import ATTRIBUTES, LANGUAGES, PROBABILITY, STATUSES, TEXT_TYPES, VERSION
from ..receiving import MAX_ID_CHARS, OPTIONAL_FIELDS
from ..validation import MAX_TEXT_CHARS

NO_NUL = "^[^\\u0000]*$"  # text is stored exactly, and a NUL character cannot be
STRING = {"type": "string", "pattern": NO_NUL}
STRING_OR_INTEGER = {"oneOf": [{**STRING, "minLength": 1, "maxLength": 255}, {"type": "integer", "minimum": -10**17, "maximum": 10**17}]}
NULLABLE_STRING = {"type": "string", "nullable": True}
OPTIONAL = {**STRING, "nullable": True}  # an optional field may also be sent as null, which means absent
LABELS = {"type": "array", "items": {"type": "string", "enum": ["toxic", "off_topic"]}}
SCORES = {"type": "object", "required": ["toxic", "off_topic"],
          "properties": {"toxic": {"type": "number", "minimum": 0, "maximum": 1}, "off_topic": {"type": "number", "minimum": 0, "maximum": 1}}}
TERM = {"type": "object", "required": ["term", "weight", "spans"], "properties": {
    "term": {"type": "string"}, "weight": {"type": "number"},
    "spans": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}}}}
EXPLANATION = {"type": "object", "additionalProperties": {"type": "array", "items": {"$ref": "#/components/schemas/Term"}}}

SCHEMAS = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message", "field"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "field": NULLABLE_STRING}}}},
    "Term": TERM,
    "ArticleRef": {"type": "object", "required": ["id"], "properties": {
        "id": STRING_OR_INTEGER, "title": OPTIONAL, "body": OPTIONAL, "url": OPTIONAL}},
    "NewComment": {"type": "object", "required": ["id", "text", "article"], "properties": {
        "id": STRING_OR_INTEGER, "text": {**STRING, "minLength": 1, "maxLength": 20000},
        "article": {"$ref": "#/components/schemas/ArticleRef"},
        "author": {"type": "object", "nullable": True,
                   "properties": {"id": {**STRING_OR_INTEGER, "nullable": True}, "name": OPTIONAL}},
        "created_at": {**OPTIONAL, "format": "date-time",
                       "description": "ISO 8601, taken as UTC without a zone; from 1970-01-01 to 2100-01-01 once in UTC"},
        "language": {**OPTIONAL, "maxLength": 16}}},
    "Comment": {"type": "object", "required": ["id", "status", "decision", "scores", "labels", "explanation", "model_version",
                                               "revision", "text", "article_id"], "properties": {
        "id": {"type": "string"}, "status": {"type": "string", "enum": ["published", "pending", "rejected"]},
        "decision": {"type": "string", "enum": ["publish", "review", "reject"]}, "scores": SCORES, "labels": LABELS,
        "explanation": EXPLANATION, "model_version": {"type": "string"}, "revision": {"type": "integer", "minimum": 1},
        "text": {"type": "string"}, "article_id": {"type": "string"}}},
    "BatchResult": {"type": "object", "properties": {
        "id": {"nullable": True}, "outcome": {"type": "string", "enum": ["created", "unchanged", "edited"]},
        "status": {"type": "string"}, "error": {"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "field": NULLABLE_STRING}}}},
    "Article": {"type": "object", "required": ["id", "title", "body", "url", "premoderate"], "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "body": {"type": "string"}, "url": NULLABLE_STRING,
        "premoderate": {"type": "boolean"}}},
    "ArticleUpdate": {"type": "object", "properties": {
        "title": OPTIONAL, "body": OPTIONAL, "url": OPTIONAL, "premoderate": {"type": "boolean", "nullable": True}}},
    "ScoreRequest": {"type": "object", "required": ["text"], "properties": {
        "text": {**STRING, "minLength": 1, "maxLength": 20000},
        "article": {"type": "object", "nullable": True, "properties": {"title": OPTIONAL, "body": OPTIONAL}}}},
    "ScoreResult": {"type": "object", "required": ["scores", "labels", "decision", "explanation", "model_version"], "properties": {
        "scores": SCORES, "labels": LABELS, "decision": {"type": "string", "enum": ["publish", "review", "reject"]},
        "explanation": EXPLANATION, "model_version": {"type": "string"}}},
    "QueuePage": {"type": "object", "required": ["items", "page", "per_page", "total", "total_is_lower_bound", "next_page"],
                  "properties": {
        "items": {"type": "array", "items": {"type": "object", "required": ["id", "article_id", "text", "scores", "labels"],
                                              "properties": {"id": {"type": "string"}, "article_id": {"type": "string"},
                                                             "text": {"type": "string"}, "scores": SCORES, "labels": LABELS,
                                                             "review_reason": NULLABLE_STRING,
                                                             "received_at": {"type": "string", "format": "date-time"},
                                                             "explanation": EXPLANATION}}},
        "page": {"type": "integer"}, "per_page": {"type": "integer"}, "total": {"type": "integer"},
        "total_is_lower_bound": {"type": "boolean"}, "next_page": {"type": "integer", "nullable": True}}},
}


def _perspective_field(schema: dict) -> dict:
    """A field of a Perspective request: proto3 JSON reads null as absent, so null is always accepted."""
    enum = {"enum": [*schema["enum"], None]} if "enum" in schema else {}
    return {**schema, "nullable": True, **enum}


def _ref(schema_name: str) -> dict:
    """A reference to a named schema."""
    return {"$ref": f"#/components/schemas/{schema_name}"}


TEXT_TYPE = _perspective_field({"type": "string", "enum": [kind for kind in TEXT_TYPES if kind != "HTML"],
                                "description": "HTML is refused: send the text a reader sees"})
PERSPECTIVE_SCORE = {"type": "object", "required": ["value", "type"], "properties": {
    "value": {"type": "number", "minimum": 0, "maximum": 1}, "type": {"type": "string", "enum": [PROBABILITY]}}}

PERSPECTIVE_SCHEMAS = {
    "PerspectiveError": {"type": "object", "required": ["error"], "description": "Google's error shape", "properties": {"error": {
        "type": "object", "required": ["code", "message", "status"], "properties": {
            "code": {"type": "integer", "description": "the HTTP status again"}, "message": {"type": "string"},
            "status": {"type": "string", "enum": sorted({*STATUSES.values(), "UNKNOWN"})},
            "details": {"type": "array", "items": {"type": "object", "required": ["@type", "errorType"], "properties": {
                "@type": {"type": "string"}, "errorType": {"type": "string", "description": "Perspective's error type, "
                                                                                         "e.g. COMMENT_EMPTY"}}}}}}}},
    "TextEntry": {"type": "object", "nullable": True, "properties": {"text": _perspective_field({"type": "string"}),
                                                                    "type": TEXT_TYPE}},
    "AttributeParameters": {"type": "object", "nullable": True, "properties": {
        "scoreType": _perspective_field({"type": "string", "enum": ["SCORE_TYPE_UNSPECIFIED", PROBABILITY],
                                         "description": "Palabre gives probabilities only"}),
        "scoreThreshold": _perspective_field({"type": "number", "minimum": 0, "maximum": 1,
                                              "description": "leave out the attribute, and its spans, scoring below this"})}},
    "AnalyzeCommentRequest": {
        "type": "object", "required": ["comment", "requestedAttributes"],
        "description": "Perspective's AnalyzeCommentRequest. Fields are also read by their proto names (requested_attributes, "
                       "span_annotations, ...); fields Palabre does not know are ignored. Nothing is stored.",
        "properties": {
            "comment": {"type": "object", "required": ["text"], "properties": {
                "text": {**STRING, "minLength": 1, "maxLength": MAX_TEXT_CHARS,
                         "description": "plain text with at least one visible character"},
                "type": TEXT_TYPE}},
            "requestedAttributes": {"type": "object", "minProperties": 1, "additionalProperties": False,
                                    "description": "TOXICITY and SEVERE_TOXICITY are Palabre's toxic score, OFF_TOPIC its "
                                                   "off-topic score; any other attribute is refused",
                                    "properties": {name: _ref("AttributeParameters") for name in ATTRIBUTES}},
            "languages": _perspective_field({"type": "array", "items": {"type": "string"},
                                             "description": f"{' or '.join(LANGUAGES)}, in any regional form (fr-FR, "
                                                            "en_US); any other is refused unless dropUnsupportedAttributes"}),
            "context": _perspective_field({
                "type": "object", "description": "read for the off-topic score: entries (the first is the article's title, the "
                                                 "others its body) or articleAndParentComment, not both",
                "properties": {"entries": _perspective_field({"type": "array", "items": _ref("TextEntry")}),
                               "articleAndParentComment": _perspective_field({"type": "object", "properties": {
                                   "article": _ref("TextEntry"), "parentComment": _ref("TextEntry")}})}}),
            "spanAnnotations": _perspective_field({"type": "boolean", "description": "also score each sentence"}),
            "dropUnsupportedAttributes": _perspective_field({"type": "boolean", "description": "answer a comment in another "
                                                                                             "language without scores"}),
            "doNotStore": _perspective_field({"type": "boolean", "description": "accepted; nothing is ever stored"}),
            "clientToken": _perspective_field({"type": "string", "description": "given back in the answer"}),
            "sessionId": _perspective_field({"type": "string", "description": "accepted and ignored"}),
            "communityId": _perspective_field({"type": "string", "description": "accepted and ignored"})}},
    "AttributeScores": {"type": "object", "required": ["summaryScore"], "properties": {
        "summaryScore": PERSPECTIVE_SCORE,
        "spanScores": {"type": "array", "minItems": 1, "description": "one per sentence, offsets in UTF-16 code units",
                       "items": {"type": "object", "required": ["begin", "end", "score"], "properties": {
                           "begin": {"type": "integer", "minimum": 0}, "end": {"type": "integer", "minimum": 1},
                           "score": PERSPECTIVE_SCORE}}}}},
    "AnalyzeCommentResponse": {"type": "object", "required": ["languages", "detectedLanguages"], "properties": {
        "attributeScores": {"type": "object", "additionalProperties": False, "description": "left out when no attribute is "
                                                                                            "kept", "properties": {
            name: _ref("AttributeScores") for name in ATTRIBUTES}},
        "languages": {"type": "array", "minItems": 1, "items": {"type": "string"},
                      "description": "as sent, else the detected language"},
        "detectedLanguages": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "string", "enum": list(LANGUAGES)}},
        "clientToken": {"type": "string", "minLength": 1, "description": "the request's, when it sent one"}}},
    "DiscoveryDocument": {"type": "object", "description": "Google's discovery format, for clients that build themselves from it",
                          "required": ["kind", "discoveryVersion", "name", "version", "rootUrl", "servicePath", "resources",
                                       "schemas"], "properties": {
        "kind": {"type": "string", "enum": ["discovery#restDescription"]}, "discoveryVersion": {"type": "string"},
        "name": {"type": "string", "enum": ["commentanalyzer"]}, "version": {"type": "string", "enum": [VERSION]},
        "rootUrl": {"type": "string", "description": "the address the request came to"}, "servicePath": {"type": "string"},
        "resources": {"type": "object"}, "schemas": {"type": "object"}}},
}


def _coral_text(limit: int) -> dict:
    """A text field of Coral's request: absent, null or blank means not sent."""
    return {**STRING, "nullable": True, "maxLength": limit}


CORAL_ID = {"nullable": True, "description": "a string (blank means not sent) or a whole number", "oneOf": [
    {**STRING, "maxLength": MAX_ID_CHARS}, {"type": "integer", "minimum": 1 - 10**18, "maximum": 10**18 - 1}]}
NOT_READ = {"description": "sent by Coral; not read"}

CORAL_SCHEMAS = {
    "CoralRequest": {
        "type": "object", "required": ["comment", "story"],
        "description": "what Coral's external moderation phase posts; unknown fields are ignored", "properties": {
        "action": {"description": "NEW or EDIT; an edit is told apart by comment.id, when sent"},
        "comment": {"type": "object", "required": ["body"], "properties": {
            "body": {**STRING, "minLength": 1, "maxLength": MAX_TEXT_CHARS,
                     "description": "HTML or plain text, stored as sent, scored as a reader sees it"},
            "id": {**CORAL_ID, "description": "Coral sends none; without one the id is derived from tenant, story, author, "
                                              "parent and body, so a retry is not stored twice"},
            "parentID": {"description": "read only to derive the comment's id"}}},
        "story": {"type": "object", "description": "the article, named by its id, or by its url when the id is absent, "
                                                  "null or blank; neither is refused as a missing story.id", "properties": {
            "id": CORAL_ID, "url": _coral_text(OPTIONAL_FIELDS["article_url"]),
            "title": _coral_text(OPTIONAL_FIELDS["article_title"]),
            "metadata": {"description": "read only when title is not sent: then an object whose title, a string, is the "
                                        "article's title"}}},
        "author": {"type": "object", "nullable": True, "properties": {
            "id": CORAL_ID, "username": _coral_text(OPTIONAL_FIELDS["author_name"]), "role": NOT_READ}},
        "site": NOT_READ, "tenantID": {"description": "read only to derive the comment's id"}, "tenantDomain": NOT_READ}},
    "CoralAnswer": {"type": "object", "required": ["status", "actions"], "properties": {
        "status": {"type": "string", "enum": ["PREMOD", "REJECTED"], "description": "held for a moderator, or rejected"},
        "actions": {"type": "array", "description": "one flag per label", "items": {
            "type": "object", "required": ["actionType", "reason"], "properties": {
                "actionType": {"type": "string", "enum": ["FLAG"]},
                "reason": {"type": "string", "enum": sorted(set(FLAG_REASONS.values()))}}}},
        "moderationAction": {"type": "object", "required": ["status", "rejectionReason"], "description": "only for a rejection",
                             "properties": {"status": {"type": "string", "enum": ["REJECTED"]}, "rejectionReason": {
                                 "type": "object", "required": ["code"],
                                 "properties": {"code": {"type": "string", "enum": [*sorted(set(REJECTION_CODES.values())), "OTHER"]}}}}}}},
}

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API key made in the admin pages"},
    "perspectiveKey": {"type": "apiKey", "in": "query", "name": "key",
                       "description": "a Palabre API key, where Perspective clients put Google's"},
    "googApiKey": {"type": "apiKey", "in": "header", "name": "X-Goog-Api-Key", "description": "a Palabre API key"},
    "coralSignature": {"type": "apiKey", "in": "header", "name": SIGNATURE_HEADER,
                       "description": "sha256=<hex HMAC-SHA256 of the raw request body, keyed with the signing secret of "
                                      "Palabre's external moderation phase in Coral>; during a rotation Coral sends one "
                                      "signature per secret, comma-separated, and one must match a secret Palabre is "
                                      "configured with (MODERATION_CORAL_SECRET)"},
}
PERSPECTIVE_SECURITY = [{"perspectiveKey": []}, {"googApiKey": []}, {"bearer": []}]


def _json(schema_name: str, description: str) -> dict:
    """A JSON response with a named schema."""
    return {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _errors(*codes: int) -> dict:
    """The JSON error responses an operation can give, plus those every operation can."""
    meaning = {400: "unreadable body, or a NUL character in the query string", 401: "missing or unknown key",
               403: "revoked key", 404: "not found", 413: "body over 2 MiB", 415: "not JSON",
               422: "a field cannot be accepted (the error names it)", 429: "too many requests for this key",
               503: "no model is active"}
    return {str(code): _json("Error", meaning[code]) for code in sorted({400, 401, 403, 429, *codes})}


def _perspective_errors(*codes: int) -> dict:
    """Perspective's refusals in Google's shape, after the key checks every Perspective operation makes."""
    meaning = {401: "UNAUTHENTICATED: missing or unknown key", 403: "PERMISSION_DENIED: revoked key",
               413: "INVALID_ARGUMENT: body over 2 MiB", 429: "RESOURCE_EXHAUSTED: too many requests for this key",
               501: "UNIMPLEMENTED: Palabre does not take score suggestions; it learns from the decisions made in its "
                    "review queue", 503: "UNAVAILABLE: no model is active"}
    return {str(code): _json("PerspectiveError", meaning[code]) for code in sorted({401, 403, 429, *codes})}


NUL_IN_QUERY = "a NUL character in the query string, refused before Perspective's handling, in Palabre's error shape"


def _body(schema_name: str) -> dict:
    """A required JSON request body."""
    return {"required": True, "content": {"application/json": {"schema": _ref(schema_name)}}}


PATH_ID = {"in": "path", "required": True, "schema": {**STRING, "minLength": 1, "maxLength": 255}}


def document() -> dict:
    """The whole document."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Palabre API", "version": "1",
                 "description": "Send comments, get decisions; moderators' decisions arrive later by signed webhook. Sites "
                                "that used Perspective or Coral Talk's external moderation can point them here instead."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": "api", "description": "Palabre's own API"},
                 {"name": "perspective", "description": "Google's Perspective API, answered by Palabre"},
                 {"name": "coral", "description": "Coral Talk's external moderation phase"}],
        "components": {"securitySchemes": SECURITY_SCHEMES, "schemas": {**SCHEMAS, **PERSPECTIVE_SCHEMAS, **CORAL_SCHEMAS}},
        "paths": {**_api_paths(), **_perspective_paths(), **_coral_paths()},
    }


def _api_paths() -> dict:
    """/api/v1, with a Bearer key."""
    paths = {
        "/api/v1/comments": {"post": {
            "summary": "Receive a comment: score, decide, store", "requestBody": _body("NewComment"),
            "responses": {"201": _json("Comment", "stored (new, or an edit)"), "200": _json("Comment", "the same id and text again"),
                          **_errors(400, 413, 415, 422, 503)}}},
        "/api/v1/comments/batch": {"post": {
            "summary": "Receive up to 500 comments",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["comments"],
                "properties": {"comments": {"type": "array", "maxItems": 500, "items": {
                    "description": "a comment as for POST /api/v1/comments; an item that is not one gets its own error"}}}}}}},
            "responses": {"200": {"description": "one result per comment, in order", "content": {"application/json": {"schema": {
                "type": "object", "required": ["results"],
                "properties": {"results": {"type": "array", "items": _ref("BatchResult")}}}}}},
                **_errors(400, 413, 415, 422, 503)}}},
        "/api/v1/comments/{comment_id}": {"get": {
            "summary": "A stored comment, exactly as received, with its current status",
            "parameters": [{"name": "comment_id", **PATH_ID}],
            "responses": {"200": _json("Comment", "the comment"), **_errors(404)}}},
        "/api/v1/articles/{article_id}": {"put": {
            "summary": "Create or update an article", "parameters": [{"name": "article_id", **PATH_ID}],
            "requestBody": _body("ArticleUpdate"),
            "responses": {"201": _json("Article", "created"), "200": _json("Article", "updated"), **_errors(400, 413, 415, 422)}}},
        "/api/v1/score": {"post": {
            "summary": "Score a text without storing it", "requestBody": _body("ScoreRequest"),
            "responses": {"200": _json("ScoreResult", "scores, labels, decision, explanation"), **_errors(400, 413, 415, 422, 503)}}},
        "/api/v1/queue": {"get": {
            "summary": "What waits for review, highest priority first",
            "parameters": [{"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}},
                           {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}],
            "responses": {"200": _json("QueuePage", "a page of waiting comments"), **_errors(422)}}},
    }
    return {path: {method: {"tags": ["api"], **operation} for method, operation in item.items()} for path, item in paths.items()}


def _perspective_paths() -> dict:
    """Perspective's comment analyzer, keyed as Perspective clients key their requests; errors in Google's shape."""
    refused = {"description": "INVALID_ARGUMENT: the message says what to fix; or " + NUL_IN_QUERY,
               "content": {"application/json": {"schema": {"oneOf": [_ref("PerspectiveError"), _ref("Error")]}}}}
    return {
        f"/{VERSION}/comments:analyze": {"post": {
            "tags": ["perspective"], "security": PERSPECTIVE_SECURITY, "requestBody": _body("AnalyzeCommentRequest"),
            "summary": "Score a comment for the requested attributes, as Perspective's AnalyzeComment; nothing is stored",
            "responses": {"200": _json("AnalyzeCommentResponse", "the requested scores"), "400": refused,
                          **_perspective_errors(413, 503)}}},
        f"/{VERSION}/comments:suggestscore": {"post": {
            "tags": ["perspective"], "security": PERSPECTIVE_SECURITY,
            "summary": "Refused: Palabre does not take score suggestions and learns from the decisions made in its review queue",
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "description": "Perspective's SuggestCommentScoreRequest; not read"}}}},
            "responses": {"400": _json("Error", NUL_IN_QUERY), **_perspective_errors(501)}}},
        "/$discovery/rest": {"get": {
            "tags": ["perspective"], "security": [],
            "summary": "The discovery document Google's client libraries build a Perspective client from",
            "parameters": [{"name": "version", "in": "query", "schema": {"type": "string", "enum": [VERSION], "default": VERSION}}],
            "responses": {"200": _json("DiscoveryDocument", "the analyze method, at this server's address"),
                          "400": _json("Error", NUL_IN_QUERY),
                          "404": _json("PerspectiveError", f"NOT_FOUND: Palabre serves version {VERSION} only")}}},
    }


def _coral_paths() -> dict:
    """Coral Talk's external moderation phase, signed by Coral; errors in Palabre's shape."""
    return {"/integrations/coral": {"post": {
        "tags": ["coral"], "security": [{"coralSignature": []}], "requestBody": _body("CoralRequest"),
        "summary": "Moderate a new or edited Coral comment: score, decide, store, and tell Coral what to do with it",
        "responses": {
            "200": _json("CoralAnswer", "hold it for a moderator (PREMOD) or reject it, with Coral's flag reasons"),
            "204": {"description": "Palabre publishes it: Coral carries on as usual (also for a comment drawn for the QA "
                                   "sample, which waits in Palabre's queue)"},
            "400": _json("Error", "invalid_json, or invalid_field naming the field by its place in Coral's request (or "
                                  "invalid_query for a NUL character in the query string)"),
            "401": _json("Error", f"missing_signature or invalid_signature: no signature in {SIGNATURE_HEADER} matches"),
            "413": _json("Error", "body over 2 MiB"),
            "503": _json("Error", "not_configured (no signing secret), or no_model: Coral publishes without Palabre's advice")}}}}
