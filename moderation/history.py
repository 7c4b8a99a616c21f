"""A site's past moderation: imported once so that the weekly refresh learns from it, and exported in the same shape.

A file is read and checked whole before anything is stored: one bad line refuses the file,
naming the line and what is wrong with it, and nothing of it is imported. The same file
(by its sha256) is imported once. A file with a `text` column is read here, line by line;
one in a public corpus's format (MLMA, FTR, Davidson, ...) is read by `corpora`, as training reads it.
`exported` gives this site's moderator decisions as JSON-lines records that `read` takes back.
"""

import csv
import hashlib
import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Float, ForeignKey, Integer, String, Text, func, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import and_

from . import corpora
from .comments.models import BY_MODERATOR, PUBLISHED, REASONS, REJECTED, Article, Comment, Decision, Revision
from .corpora import LABELS, DataError
from .database import Base, UTCDateTime, utcnow
from .validation import InputError, check_moment, check_optional_text, check_text

DECISIONS = {
    **dict.fromkeys(("published", "publish", "approved", "approve", "accepted", "accept", "kept"), PUBLISHED),
    **dict.fromkeys(("rejected", "reject", "removed", "remove", "deleted", "delete"), REJECTED),
    **dict.fromkeys(("", "pending"), None),
}
REASON_ALIASES = {"off-topic": "off_topic", "hors-sujet": "off_topic", "hors_sujet": "off_topic", "": None}
BINARY = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "false": 0.0, "true": 1.0, "": None}
OPTIONAL = {"id": 255, "article_id": 255, "article_title": 2_000, "article_body": 200_000, "author_id": 255, "language": 16}
INSERT_ROWS = 5_000
HISTORY_FORMAT = "history"  # a site's own file, as opposed to a public corpus's


class HistoryImport(Base):
    """One imported file: which, when, and how many comments it brought."""

    __tablename__ = "history_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(32))
    rows: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HistoryComment(Base):
    """One comment of a site's past, with what its moderators made of it (labels, a decision, or both)."""

    __tablename__ = "history_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("history_imports.id"), index=True)
    line: Mapped[int | None] = mapped_column(Integer)
    external_id: Mapped[str | None] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    toxic: Mapped[float | None] = mapped_column(Float)
    off_topic: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(16))
    article_id: Mapped[str | None] = mapped_column(String(255))
    article_title: Mapped[str | None] = mapped_column(Text)
    article_body: Mapped[str | None] = mapped_column(Text)
    author_id: Mapped[str | None] = mapped_column(String(255))
    language: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass
class History:
    """A file's comments, read and checked, ready to store."""

    path: Path
    sha256: str
    format: str
    rows: list[dict]

    def summary(self) -> str:
        """What the file holds, in one line."""
        parts = []
        for label in LABELS:
            known = [row[label] for row in self.rows if row[label] is not None]
            parts.append(f"{label} known for {len(known)} ({int(sum(known))} positive)")
        decided = sum(row["decision"] is not None for row in self.rows)
        unlabelled = sum(all(row[label] is None for label in LABELS) for row in self.rows)
        return (f"{len(self.rows)} comments: {', '.join(parts)}; {decided} with a decision"
                + (f"; {unlabelled} with neither label (kept as history, not learnt from)" if unlabelled else ""))


@dataclass
class Imported:
    """What an import did: the rows it stored, or the earlier import of the same file."""

    history: History
    stored: int
    earlier: HistoryImport | None = None


def read(path: Path) -> History:
    """A history file read and checked whole, a line at a time; DataError names the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (import takes one CSV, TSV or JSON-lines file)")
    with path.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
        handle.seek(0)
        first = handle.readline()
    delimiter = None if path.suffix.lower() == ".jsonl" else "\t" if path.suffix.lower() == ".tsv" else ","
    kind = _header_format(first, delimiter)
    if kind == "checks":
        raise DataError(f"{path}: a check list (text, label, expect) is not a site's history; train and refresh read it from data/")
    if kind not in ("canonical", None):
        return _from_corpus(path, digest, kind)
    try:
        with path.open(encoding="utf-8-sig", newline="" if delimiter else None) as handle:
            records = _json_records(path, handle) if delimiter is None else _delimited_records(path, handle, delimiter)
            opening = next(records, None)
            if opening is None:
                raise DataError(f"{path}: the file holds no comments")
            if "text" not in opening[1]:
                raise DataError(f"{path}: columns not recognised; a site's history needs 'text' with 'toxic'/'off_topic' labels "
                                f"or a 'decision' (or 'status') column; also read: {corpora.FORMAT_HELP}")
            rows = [_row(path, line, record) for line, record in itertools.chain([opening], records)]
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path)) from None
    return History(path, digest, HISTORY_FORMAT, rows)


def _not_utf8(path: Path) -> str:
    """Which line of a file holds its first byte that is not UTF-8 (read whole: only when the file is refused)."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        return f"{path}: line {line} is not UTF-8 text (byte 0x{raw[error.start]:02x})"
    return f"{path}: is not UTF-8 text"


def _header_format(line: bytes, delimiter: str | None) -> str | None:
    """The corpora format the file's first record names (None when it names none, or is JSON with no 'text')."""
    first = line.decode("utf-8-sig", errors="replace").strip()
    if delimiter is None:
        try:
            columns = json.loads(first)
        except json.JSONDecodeError:
            return None
        return corpora.detect_format(columns) if isinstance(columns, dict) else None
    return corpora.detect_format(name.strip().lower() for name in next(csv.reader([first], delimiter=delimiter), []))


def store(session: Session, history: History) -> Imported:
    """Store a read file's comments in the session's transaction, unless the same file was imported before."""
    earlier = session.scalar(select(HistoryImport).where(HistoryImport.sha256 == history.sha256))
    if earlier is not None:
        return Imported(history, 0, earlier)
    record = HistoryImport(file_name=str(history.path)[-1000:], sha256=history.sha256, format=history.format,
                           rows=len(history.rows))
    session.add(record)
    session.flush()
    for start in range(0, len(history.rows), INSERT_ROWS):
        session.execute(insert(HistoryComment), [{**row, "import_id": record.id} for row in history.rows[start:start + INSERT_ROWS]])
    return Imported(history, len(history.rows))


def imported_count(session: Session) -> int:
    """How many imported comments the database holds."""
    return session.scalar(select(func.count()).select_from(HistoryComment))


def last_decisions():
    """The query of the last moderator decision on each comment, with the text it was taken on, the comment and its article."""
    last = (select(Decision.comment_id, func.max(Decision.id).label("id"))
            .where(Decision.decided_by == BY_MODERATOR).group_by(Decision.comment_id).subquery())
    return (select(Decision, Revision.text, Comment, Article)
            .join(last, last.c.id == Decision.id)
            .join(Comment, Comment.id == Decision.comment_id)
            .join(Revision, and_(Revision.comment_id == Decision.comment_id, Revision.number == Decision.revision))
            .join(Article, Article.id == Comment.article_id)
            .order_by(Decision.created_at, Decision.id))


def exported(session: Session, since: datetime | None = None):
    """Each comment a moderator decided (their last decision on it), oldest decision first, as `import` reads it back."""
    query = last_decisions() if since is None else last_decisions().where(Decision.created_at >= since)
    for decision, text, comment, article in session.execute(query):
        yield {"id": comment.external_id, "text": text, "status": decision.status, "reason": decision.reason,
               "verdict": decision.verdict, "decided_at": decision.created_at.isoformat(),
               "created_at": comment.created_at.isoformat() if comment.created_at else None, "language": comment.language,
               "article": {"id": article.external_id, "title": article.title, "body": article.body},
               "author": {"id": comment.author_id, "name": comment.author_name}}


def _delimited_records(path: Path, lines: Iterable[str], delimiter: str):
    """(first line, {column: value}) of each CSV/TSV record; a ragged or broken record is refused by its line."""
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    header, line = None, 1
    try:
        for row in reader:
            first, line = line, reader.line_num + 1
            if header is None:
                header = [name.strip().lower() for name in row]
                continue
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}: line {first} has {len(row)} fields, the header has {len(header)}")
            yield first, dict(zip(header, row))
    except csv.Error as error:
        raise DataError(f"{path}: line {line} is not valid {'TSV' if delimiter == chr(9) else 'CSV'} ({error})") from None


def _json_records(path: Path, lines: Iterable[str]):
    """(line, {field: value}) of each JSON line, field names compared without case or surrounding space."""
    for number, record in corpora.json_records(path, lines):
        yield number, {key.strip().lower(): value for key, value in record.items()}


def _row(path: Path, line: int, record: dict) -> dict:
    """One comment of the file, checked; DataError names the line and the field."""
    try:
        record = _spread(record)
        text = check_text(record.get("text"))
        decision = _choice(record.get("decision", record.get("status")), DECISIONS, "decision")
        reason = _choice(record.get("reason"), {**{name: name for name in REASONS}, **REASON_ALIASES}, "reason")
        labels = {label: _choice(record.get(label), BINARY, label) for label in LABELS}
        for label, value in labels_of(decision, reason).items():
            if labels[label] is None:
                labels[label] = value
        optional = {name: check_optional_text(_text_or_none(record.get(name)), name, limit) for name, limit in OPTIONAL.items()}
        return {"line": line, "external_id": optional.pop("id"), "text": text, **labels, "decision": decision, "reason": reason,
                **optional, "created_at": _moment(record.get("created_at"))}
    except InputError as error:
        raise DataError(f"{path}: line {line}: {error}") from None


def _spread(record: dict) -> dict:
    """Nested `article` and `author` objects (Palabre's API shape) as flat columns."""
    flat = {key: value for key, value in record.items() if not isinstance(value, dict)}
    article, author = record.get("article"), record.get("author")
    if isinstance(article, dict):
        for name in ("id", "title", "body"):
            flat.setdefault(f"article_{name}", article.get(name))
    if isinstance(author, dict):
        flat.setdefault("author_id", author.get("id"))
    elif "author" in record and "author_id" not in flat:
        flat["author_id"] = record["author"]
    return flat


def _text_or_none(value) -> str | None:
    """A field's value as text; blank is absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = str(value)
    return value if value.strip() else None


def _choice(value, allowed: dict, field: str):
    """A value through a fixed mapping, compared without case or surrounding space; anything else is refused."""
    key = "" if value is None else str(value).strip().lower()
    if key not in allowed:
        named = ", ".join(sorted(name for name in allowed if name))
        raise InputError(f"'{field}' must be one of {named} or blank, not {str(value)[:40]!r}", field)
    return allowed[key]


def labels_of(decision: str | None, reason: str | None) -> dict:
    """What a decision says of the labels when the file does not give them.

    Published: neither toxic nor off-topic. Rejected as off-topic or spam: off-topic, toxicity
    unknown. Rejected as toxic, or with no reason (most removals are for abuse): toxic. Rejected
    for another reason: nothing is known.
    """
    if decision == PUBLISHED:
        return {"toxic": 0.0, "off_topic": 0.0}
    if decision == REJECTED and reason in ("off_topic", "spam"):
        return {"off_topic": 1.0}
    if decision == REJECTED and reason in ("toxic", None):
        return {"toxic": 1.0}
    return {}


def _moment(value) -> datetime | None:
    """An ISO 8601 date or time; one without a time zone is taken as UTC."""
    text = _text_or_none(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"'created_at' must be an ISO 8601 date and time, not {text[:40]!r}", "created_at") from None
    return check_moment(moment if moment.tzinfo else moment.replace(tzinfo=UTC), "created_at")


def _from_corpus(path: Path, digest: str, kind: str) -> History:
    """A file in one of the public corpora's formats, read as training reads it (errors name its row)."""
    dataset = corpora.load([path])
    if not dataset.sources:
        raise DataError(f"{path}: a {kind} file holds no comments to import")
    rows = []
    for row in dataset.frame.itertuples():
        labels = {label: None if math.isnan(getattr(row, label)) else float(getattr(row, label)) for label in LABELS}
        rows.append({"line": None, "external_id": None, "text": row.text, **labels, "decision": None, "reason": None,
                     "article_id": _text_or_none(row.article_id), "article_title": _text_or_none(row.article_title),
                     "article_body": _text_or_none(row.article_body), "author_id": None,
                     "language": _text_or_none(row.language), "created_at": None})
    return History(path, digest, kind, rows)
