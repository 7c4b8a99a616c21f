"""The OpenAPI 3 document of /api/v1, written next to the code it describes and checked against it by the tests."""

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
        "created_at": {**OPTIONAL, "format": "date-time"}, "language": {**OPTIONAL, "maxLength": 16}}},
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


def _json(schema_name: str, description: str) -> dict:
    """A JSON response with a named schema."""
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}}


def _errors(*codes: int) -> dict:
    """The JSON error responses an operation can give, plus those every operation can."""
    meaning = {400: "unreadable body", 401: "missing or unknown key", 403: "revoked key", 404: "not found",
               413: "body over 2 MiB", 415: "not JSON", 422: "a field cannot be accepted (the error names it)",
               429: "too many requests for this key", 503: "no model is active"}
    return {str(code): _json("Error", meaning[code]) for code in sorted({401, 403, 429, *codes})}


def _body(schema_name: str) -> dict:
    """A required JSON request body."""
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}}


PATH_ID = {"in": "path", "required": True, "schema": {**STRING, "minLength": 1, "maxLength": 255}}


def document() -> dict:
    """The whole document."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "Palabre API", "version": "1",
                 "description": "Send comments, get decisions; moderators' decisions arrive later by signed webhook."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": SCHEMAS},
        "paths": {
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
                    "properties": {"results": {"type": "array", "items": {"$ref": "#/components/schemas/BatchResult"}}}}}}},
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
        },
    }
