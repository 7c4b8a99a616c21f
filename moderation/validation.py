"""What a comment must look like before it is scored or stored, with refusals that name the problem."""

import unicodedata
from datetime import UTC, datetime

MAX_TEXT_CHARS = 20_000
MAX_ARTICLE_CHARS = 200_000
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class InputError(ValueError):
    """A refused input: the message says what is wrong, field says where."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_text(text, field: str = "text", max_chars: int = MAX_TEXT_CHARS) -> str:
    """Refuse text that is missing, empty, too long, or that could not be stored exactly."""
    if text is None:
        raise InputError(f"'{field}' is required", field)
    if not isinstance(text, str):
        raise InputError(f"'{field}' must be a string, not {type(text).__name__}", field)
    if not text.strip():
        raise InputError(f"'{field}' is empty", field)
    if not any(_visible(ch) for ch in text):
        raise InputError(f"'{field}' has no visible characters", field)
    if len(text) > max_chars:
        raise InputError(f"'{field}' is {len(text):,} characters long; the limit is {max_chars:,}", field)
    position = text.find("\x00")
    if position >= 0:
        raise InputError(f"'{field}' contains a NUL character at position {position}", field)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        raise InputError(f"'{field}' contains a lone surrogate (U+{code:04X}) at position {error.start}", field) from None
    return text


def _visible(ch: str) -> bool:
    """A character a reader can see: not a space, a control or an invisible format character."""
    return not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf")


def same_visible_text(stored: str, sent: str) -> bool:
    """Whether two texts read the same: an edit that only changes spacing, invisible characters or Unicode forms is none."""
    return stored == sent or _as_read(stored) == _as_read(sent)


def _as_read(text: str) -> str:
    """The text in Unicode's compatibility form, without invisible characters, words separated by single spaces."""
    folded = unicodedata.normalize("NFKC", text)
    return " ".join("".join(ch for ch in folded if ch.isspace() or _visible(ch)).split())


def check_moment(moment, field: str) -> datetime:
    """A date and time with its time zone, between 1970 and 2100 once in UTC: anything else is refused, naming the field."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"'{field}' must be a date and time with its time zone", field)
    try:
        in_utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        in_utc = None
    if in_utc is None or not EARLIEST <= in_utc < LATEST:
        raise InputError(f"'{field}' must fall between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC), not {moment.isoformat()}",
                         field)
    return in_utc


def check_optional_text(value, field: str, max_chars: int) -> str | None:
    """An optional text field: absent is fine; otherwise a string that can be stored exactly, within its limit."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"'{field}' must be a string, not {type(value).__name__}", field)
    if len(value) > max_chars:
        raise InputError(f"'{field}' is {len(value):,} characters long; the limit is {max_chars:,}", field)
    return check_text(value, field, max_chars) if value.strip() else value


def check_article(article) -> tuple[str, str]:
    """The article's text (title and body) and its thread of accepted comments, checked."""
    if article is None:
        return "", ""
    if not isinstance(article, dict):
        raise InputError(f"'article' must be an object, not {type(article).__name__}", "article")
    parts = []
    for key in ("title", "body"):
        value = article.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InputError(f"'article.{key}' must be a string, not {type(value).__name__}", f"article.{key}")
        parts.append(value)
    comments = article.get("comments") or []
    if not isinstance(comments, list) or not all(isinstance(c, str) for c in comments):
        raise InputError("'article.comments' must be a list of strings", "article.comments")
    article_text = "\n".join(parts).strip()
    thread_text = "\n".join(comments).strip()
    if len(article_text) + len(thread_text) > MAX_ARTICLE_CHARS:
        raise InputError(f"the article and its comments exceed {MAX_ARTICLE_CHARS:,} characters", "article")
    return _clean(article_text), _clean(thread_text)


def _clean(text: str) -> str:
    """Context is only read, never stored: drop what cannot be encoded rather than refuse it."""
    return text.encode("utf-8", "ignore").decode("utf-8").replace("\x00", "")
