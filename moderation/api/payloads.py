"""Reading API request bodies: JSON objects with typed fields, every refusal naming the field."""

import json
from datetime import UTC, datetime

from flask import request

from ..validation import InputError, check_moment
from .errors import ApiError


def json_body() -> dict:
    """The request's JSON object, or an ApiError saying what is wrong with the body."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"send JSON with Content-Type: application/json (got {request.mimetype or 'no content type'!r})")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except (ValueError, RecursionError) as error:
        raise ApiError(400, "invalid_json", f"the body cannot be read as JSON: {str(error)[:200] or type(error).__name__}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_field", f"the body must be a JSON object, not {_kind(body)}")
    return body


def _no_constant(name: str):
    """NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a JSON value")


def _kind(value) -> str:
    """A JSON type name for messages."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def field(body: dict, name: str, kind: type | tuple, required: bool = False, prefix: str = ""):
    """One field of an object, of the given JSON type; None when absent and not required."""
    value = body.get(name)
    path = f"{prefix}{name}"
    if value is None:
        if required:
            raise InputError(f"'{path}' is required", path)
        return None
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        expected = {str: "a string", dict: "an object", bool: "a boolean", list: "an array"}.get(kind, "a number")
        raise InputError(f"'{path}' must be {expected}, not {_kind(value)}", path)
    return value


def identifier(body: dict, name: str, prefix: str = "") -> str:
    """An id field: a string, or a whole number sent as JSON (kept as its decimal text)."""
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**18:
        return str(value)
    return field(body, name, str, required=True, prefix=prefix)


def timestamp(body: dict, name: str) -> datetime | None:
    """An optional ISO 8601 date and time between 1970 and 2100; without a time zone it is taken as UTC."""
    value = field(body, name, str)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"'{name}' is not an ISO 8601 date and time (e.g. 2026-11-29T10:15:00Z)", name) from None
    return check_moment(moment if moment.tzinfo else moment.replace(tzinfo=UTC), name)
