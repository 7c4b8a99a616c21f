"""API errors: always JSON `{"error": {"code", "message", "field"}}`, never an HTML page."""

from flask import jsonify


class ApiError(Exception):
    """A refused API request: HTTP status, a stable code, a message saying what to fix, and the field if any."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.headers = status, code, message, field, headers or {}


def error_response(status: int, code: str, message: str, field: str | None = None, headers: dict | None = None):
    """The JSON answer for a refusal."""
    response = jsonify(error={"code": code, "message": message, "field": field})
    response.status_code = status
    response.headers.update(headers or {})
    return response


HTTP_CODES = {
    400: ("bad_request", "the request could not be read"),
    401: ("unauthenticated", "send your API key as: Authorization: Bearer <key>"),
    403: ("forbidden", "this key may not do that"),
    404: ("not_found", "there is nothing at this address"),
    405: ("method_not_allowed", "this address does not accept that method"),
    413: ("too_large", "the request body is over the size limit"),
    415: ("unsupported_media_type", "send JSON with Content-Type: application/json"),
    429: ("rate_limited", "too many requests for this key; wait and retry"),
    500: ("internal_error", "something went wrong on our side; nothing you sent was stored twice, retry"),
    503: ("unavailable", "the service cannot answer right now; retry"),
}


def http_error_response(error):
    """A werkzeug HTTP error (404, 405, 413, ...) as an API error."""
    status = getattr(error, "code", None) or 500
    code, message = HTTP_CODES.get(status, HTTP_CODES[500])
    return error_response(status, code, message)
