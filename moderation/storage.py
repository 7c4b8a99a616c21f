"""The statements receiving runs for every batch: the comments as stored, their threads, and the rows the batch adds.

On PostgreSQL they are SQL written once and run straight on psycopg's cursor (SQLAlchemy's
execute costs about three times a round trip to the server here): one statement reads the
comments and their articles' threads, and one writes all a batch adds (new comments,
revisions, scores, the model's decisions, webhook events), its WITH clauses chained by
RETURNING. Elsewhere (SQLite, in the same process) the same reads and one INSERT per table
go through SQLAlchemy Core. Errors reach the caller as SQLAlchemy's, so retries and a dropped
connection are handled the same on both.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from psycopg.rows import namedtuple_row
from sqlalchemy import bindparam, insert, select, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from . import webhooks
from .comments.models import PUBLISHED, Comment, Decision, Revision, Score
from .timings import STAGE_OPTION, timed

COMMENTS, REVISIONS, SCORES, DECISIONS = (model.__table__ for model in (Comment, Revision, Score, Decision))
THREAD_COMMENTS = 20
CURRENT_COLUMNS = ("id", "external_id", "text", "revision", "status", "decided_by", "review_reason")
_CURRENT = select(*(COMMENTS.c[name] for name in CURRENT_COLUMNS)) \
    .where(COMMENTS.c.external_id.in_(bindparam("ids", expanding=True))) \
    .execution_options(**{STAGE_OPTION: "sql select comments by id"})
_THREAD_SQL = f"""SELECT article_id, id, text, received_at FROM comments WHERE article_id = a.id AND status = '{PUBLISHED}'
    ORDER BY received_at DESC LIMIT {THREAD_COMMENTS + 1}"""
_READ_SQL = f"""SELECT false AS thread, {', '.join(CURRENT_COLUMNS)}, NULL::integer AS article_id, NULL::timestamptz AS received_at
FROM comments WHERE external_id = ANY(%(ids)s)
UNION ALL
SELECT true, t.id, NULL, t.text, NULL, NULL, NULL, NULL, t.article_id, t.received_at
FROM unnest(%(articles)s::integer[]) AS a(id) CROSS JOIN LATERAL ({_THREAD_SQL}) AS t
ORDER BY thread, article_id, received_at DESC, id DESC"""
_INSERTS = {table.name: insert(table).returning(table.c.id, sort_by_parameter_order=True)
            for table in (COMMENTS, REVISIONS, SCORES, DECISIONS)}
# The columns each part of a new revision fills; the ids that tie the parts together are found while writing.
COLUMNS = {
    "c": ("external_id", "article_id", "created_at", "author_id", "author_name", "language", "text", "revision", "received_at",
          "toxic", "off_topic", "top_score", "toxic_flag", "off_topic_flag", "suggestion", "priority", "status",
          "review_reason", "decided_by", "decided_at", "claimed_by_id", "claimed_until"),
    "r": ("number", "text", "received_at"),
    "s": ("model_version", "toxic", "off_topic", "labels", "explanation", "decision", "created_at"),
    "d": ("revision", "status", "decided_by", "reason", "created_at"),
}
TABLES = {"c": COMMENTS, "r": REVISIONS, "s": SCORES, "d": DECISIONS}


@dataclass(frozen=True)
class NewRows:
    """What one new comment or edit adds: its comment row (None for an edit), revision, score, decision and event.

    Each row holds the COLUMNS of its part. `decision` is None when a moderator's decision
    stands; `event` is the webhook data of a decision that changed the comment's status.
    """

    comment_id: int | None
    comment: dict | None
    revision: dict
    score: dict
    decision: dict | None
    event: dict | None


def read(connection: Connection, external_ids: list[str], article_ids: set[int]) -> tuple[dict, dict[int, list[tuple[int, str]]]]:
    """The comments with these ids as they stand (CURRENT_COLUMNS, by external id), and these articles' threads.

    A thread is the article's latest published comments, newest first, as (id, text): the
    off_topic score's context; one more than a thread holds, so that an edited comment can
    leave itself out. On PostgreSQL both come in one round trip.
    """
    current: dict = {}
    threads: dict[int, list[tuple[int, str]]] = {}
    if _on_postgresql(connection):
        for row in _run(connection, _READ_SQL, {"ids": external_ids, "articles": sorted(article_ids)}, "sql select comments and threads"):
            if row.thread:
                threads.setdefault(row.article_id, []).append((row.id, row.text))
            else:
                current[row.external_id] = row
        return current, threads
    if external_ids:
        current = {row.external_id: row for row in connection.execute(_CURRENT, {"ids": external_ids})}
    if article_ids:
        wanted = {f"article_{index}": article_id for index, article_id in enumerate(sorted(article_ids))}
        newest_first = sorted(connection.execute(_threads_statement(len(wanted)), wanted), key=lambda row: (row.received_at, row.id),
                              reverse=True)
        for row in newest_first:
            threads.setdefault(row.article_id, []).append((row.id, row.text))
    return current, threads


@lru_cache(maxsize=None)
def _threads_statement(articles: int):
    """The threads of `articles` articles (bound as article_0, article_1, ...), built once per number of articles."""
    latest = [select(COMMENTS.c.article_id, COMMENTS.c.id, COMMENTS.c.text, COMMENTS.c.received_at)
              .where(COMMENTS.c.article_id == bindparam(f"article_{index}"), COMMENTS.c.status == PUBLISHED)
              .order_by(COMMENTS.c.received_at.desc()).limit(THREAD_COMMENTS + 1).subquery()
              for index in range(articles)]
    return union_all(*(select(part) for part in latest)).execution_options(**{STAGE_OPTION: "sql select threads"})


def write(connection: Connection, batch: list[NewRows], now: datetime) -> list[tuple[int, int]]:
    """Write the batch's rows in the connection's transaction; (comment id, score id) of each, in order."""
    if not batch:
        return []
    if _on_postgresql(connection):
        return _write_in_one_statement(connection, batch, now)
    return _write_table_by_table(connection, batch, now)


def _write_table_by_table(connection: Connection, batch: list[NewRows], now: datetime) -> list[tuple[int, int]]:
    """One INSERT per table, each for the whole batch, then the webhook events."""
    new = [rows for rows in batch if rows.comment_id is None]
    inserted = iter(_insert_many(connection, COMMENTS, [rows.comment for rows in new]))
    comment_ids = [rows.comment_id if rows.comment_id is not None else next(inserted) for rows in batch]
    revision_ids = _insert_many(connection, REVISIONS, [{**rows.revision, "comment_id": comment_id}
                                                        for rows, comment_id in zip(batch, comment_ids)])
    score_ids = _insert_many(connection, SCORES, [{**rows.score, "revision_id": revision_id}
                                                  for rows, revision_id in zip(batch, revision_ids)])
    decided = [(rows, comment_id) for rows, comment_id in zip(batch, comment_ids) if rows.decision is not None]
    decision_ids = _insert_many(connection, DECISIONS, [{**rows.decision, "comment_id": comment_id} for rows, comment_id in decided])
    webhooks.enqueue(connection, [(comment_id, decision_id, rows.event)
                                  for (rows, comment_id), decision_id in zip(decided, decision_ids) if rows.event is not None], now)
    return list(zip(comment_ids, score_ids))


def _insert_many(connection: Connection, table, rows: list[dict]) -> list[int]:
    """Insert rows in one statement (or few); their new ids, in the rows' order."""
    if not rows:
        return []
    return list(connection.scalars(_INSERTS[table.name], rows))


def _write_in_one_statement(connection: Connection, batch: list[NewRows], now: datetime) -> list[tuple[int, int]]:
    """Every row of the batch in one statement, from the batch sent as one JSON array of flat records."""
    records = [{"k": index, "comment_id": rows.comment_id, "decided": rows.decision is not None,
                "event": webhooks.event_body(rows.event, now) if rows.event else None,
                **_prefixed("c", rows.comment), **_prefixed("r", rows.revision), **_prefixed("s", rows.score),
                **_prefixed("d", rows.decision)} for index, rows in enumerate(batch)]
    found = _run(connection, _one_statement(), {"rows": json.dumps(records, default=_moment, ensure_ascii=False), "now": now},
                 "sql insert batch")
    ids = {row.k: (row.comment_id, row.score_id) for row in found}
    return [ids[index] for index in range(len(batch))]


def _prefixed(part: str, row: dict | None) -> dict:
    """A part's columns as fields of the flat record."""
    return {f"{part}_{name}": row[name] for name in COLUMNS[part]} if row else {}


def _moment(value):
    """Timestamps travel in the JSON as ISO 8601 with their offset (all are aware UTC)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()
    raise TypeError(f"cannot send {value!r} in a batch")


@lru_cache(maxsize=1)
def _one_statement() -> str:
    """The statement writing a batch, from its JSON records (bound as %(rows)s) and the time (bound as %(now)s)."""
    fields = ", ".join(["k integer", "comment_id integer", "decided boolean", "event text"] + [
        f"{part}_{name} {TABLES[part].c[name].type.compile(postgresql.dialect())}"
        for part, names in COLUMNS.items() for name in names])

    def names(part: str) -> str:
        return ", ".join(COLUMNS[part])

    def values(part: str) -> str:
        return ", ".join(f"b.{part}_{name}" for name in COLUMNS[part])

    return f"""
WITH b AS (SELECT * FROM json_to_recordset(%(rows)s::json) AS b({fields})),
new_comments AS (
    INSERT INTO comments ({names("c")}) SELECT {values("c")} FROM b WHERE b.comment_id IS NULL ORDER BY b.k
    RETURNING id, external_id),
ids AS (
    SELECT b.k, coalesce(b.comment_id, n.id) AS comment_id FROM b LEFT JOIN new_comments n ON n.external_id = b.c_external_id),
new_revisions AS (
    INSERT INTO revisions (comment_id, {names("r")}) SELECT ids.comment_id, {values("r")} FROM b JOIN ids USING (k)
    ORDER BY b.k RETURNING id, comment_id),
new_scores AS (
    INSERT INTO scores (revision_id, {names("s")})
    SELECT v.id, {values("s")} FROM b JOIN ids USING (k) JOIN new_revisions v ON v.comment_id = ids.comment_id
    ORDER BY b.k RETURNING id, revision_id),
new_decisions AS (
    INSERT INTO decisions (comment_id, {names("d")}) SELECT ids.comment_id, {values("d")} FROM b JOIN ids USING (k)
    WHERE b.decided ORDER BY b.k RETURNING id, comment_id),
new_events AS (
    INSERT INTO deliveries (event_id, client_id, comment_id, body, created_at, next_attempt_at, attempts)
    SELECT 'evt_' || d.id || '_' || c.id, c.id, d.comment_id, b.event, %(now)s, %(now)s, 0
    FROM new_decisions d JOIN ids ON ids.comment_id = d.comment_id JOIN b USING (k)
    JOIN api_clients c ON c.webhook_url IS NOT NULL AND c.revoked_at IS NULL
    WHERE b.event IS NOT NULL ORDER BY d.id, c.id)
SELECT ids.k, ids.comment_id, s.id AS score_id
FROM ids JOIN new_revisions v ON v.comment_id = ids.comment_id JOIN new_scores s ON s.revision_id = v.id"""


def _on_postgresql(connection: Connection) -> bool:
    """Whether the connection's driver is psycopg on PostgreSQL, which the SQL written here is for."""
    return connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg"


def _run(connection: Connection, sql: str, parameters: dict, stage: str) -> list:
    """Run SQL on psycopg's cursor, in the connection's transaction; its rows, or SQLAlchemy's error for psycopg's."""
    if not connection.in_transaction():
        connection.begin()  # so that the caller's commit() commits what is written here
    fairy = connection.connection
    dbapi = connection.dialect.loaded_dbapi
    with timed(stage), fairy.driver_connection.cursor(row_factory=namedtuple_row) as cursor:
        try:
            cursor.execute(sql, parameters)
            return cursor.fetchall() if cursor.description else []
        except dbapi.Error as error:
            dropped = connection.dialect.is_disconnect(error, fairy.dbapi_connection, cursor)
            if dropped:
                connection.invalidate(error)
            raise DBAPIError.instance(sql, parameters, error, dbapi.Error, connection_invalidated=dropped,
                                      dialect=connection.dialect) from error
