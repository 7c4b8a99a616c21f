"""Webhooks: tell each client's comment system when a comment is decided, at least once and in order.

Each event is written to an outbox (the deliveries table) in the same transaction as the
decision it reports, so an event is never lost and never sent for a decision that rolled back.
A worker (`python -m moderation deliver`, or a thread inside `python app.py`) POSTs due events,
signed `X-Palabre-Signature: sha256=<HMAC-SHA256 of the raw body with the client's secret>`,
and retries failures with growing delays for 24 hours. A later event for the same comment waits
until the earlier one is delivered or given up, so receivers see a comment's decisions in order.
"""

import hashlib
import hmac
import http.client
import json
import logging
import time
from datetime import datetime, timedelta
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit

from sqlalchemy import Integer, String, Text, bindparam, cast, func, insert, literal, or_, select, true, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from . import destinations
from .admin.models import ApiClient, Delivery, DeliveryAttempt
from .database import Database, UTCDateTime, utcnow

EVENT_TYPE = "comment.decided"
RETRY_FOR = timedelta(hours=24)
DELAYS = [timedelta(seconds=s) for s in (10, 30, 60, 120, 300, 600, 1800, 3600)]
LEASE = timedelta(seconds=60)
TIMEOUT_SECONDS = 10
BATCH = 100
SEND_FOR = (LEASE - 2 * timedelta(seconds=TIMEOUT_SECONDS)).total_seconds()  # then stop, so no lease runs out mid-batch
EVENTS_PER_STATEMENT = 100  # SQLite allows 500 parts to a UNION ALL
MAX_ANSWER = 64 * 1024  # a receiver's answer read before its connection is reused; a longer one closes it
CONNECTIONS = {"http": http.client.HTTPConnection, "https": http.client.HTTPSConnection}
log = logging.getLogger(__name__)
CLIENTS, DELIVERIES = ApiClient.__table__, Delivery.__table__


def sign(secret: str, body: bytes) -> str:
    """The X-Palabre-Signature value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def enqueue(session: Session | Connection, events: list[tuple[int, int, dict]], now: datetime) -> None:
    """Write (comment id, decision id, data) events for every client with a webhook URL, in the caller's transaction.

    One statement pairs the events with the clients in the database. The stored body leaves out
    the event id, which differs per client; it is added when sending.
    """
    for start in range(0, len(events), EVENTS_PER_STATEMENT):
        chunk = events[start:start + EVENTS_PER_STATEMENT]
        parameters = {"now": now}
        for index, (comment_id, decision_id, data) in enumerate(chunk):
            parameters |= {f"comment_{index}": comment_id, f"decision_{index}": decision_id, f"body_{index}": event_body(data, now)}
        session.execute(_enqueue_statement(len(chunk)), parameters)


def event_body(data: dict, now: datetime) -> str:
    """The stored body of an event: everything but its id, which differs per client."""
    return json.dumps({"type": EVENT_TYPE, "created_at": now.isoformat(), "data": data}, ensure_ascii=False, separators=(",", ":"))


@lru_cache(maxsize=EVENTS_PER_STATEMENT)
def _enqueue_statement(count: int):
    """INSERT ... SELECT of `count` events (bound as comment_0, decision_0, body_0, ...) for each client with a webhook."""
    events = union_all(*(select(bindparam(f"comment_{index}", type_=Integer).label("comment_id"),
                                bindparam(f"decision_{index}", type_=Integer).label("decision_id"),
                                bindparam(f"body_{index}", type_=Text).label("body")) for index in range(count))).cte("events")
    now = bindparam("now", type_=UTCDateTime)
    pairs = select(literal("evt_") + cast(events.c.decision_id, String) + "_" + cast(CLIENTS.c.id, String), CLIENTS.c.id,
                   events.c.comment_id, events.c.body, now, now, literal(0)) \
        .select_from(events.join(CLIENTS, true())) \
        .where(CLIENTS.c.webhook_url.is_not(None), CLIENTS.c.revoked_at.is_(None))
    return insert(DELIVERIES).from_select(
        ["event_id", "client_id", "comment_id", "body", "created_at", "next_attempt_at", "attempts"], pairs)


def due(session: Session, now: datetime, limit: int) -> list[int]:
    """Deliveries to try now: the oldest pending event of each client and comment, if due and not leased.

    Taking only the first pending event per comment keeps each comment's events in order, in
    one grouped pass rather than a lookup of earlier events for every pending one.
    """
    first = (select(func.min(Delivery.id).label("id"))
             .where(Delivery.delivered_at.is_(None), Delivery.given_up_at.is_(None))
             .group_by(Delivery.client_id, Delivery.comment_id).subquery())
    return list(session.scalars(
        select(Delivery.id).join(first, first.c.id == Delivery.id)
        .where(*_free(now)).order_by(Delivery.id).limit(limit)
    ))


def _free(now: datetime) -> tuple:
    """Conditions for a pending delivery to be tried now: its retry time has come and no worker holds its lease."""
    return Delivery.next_attempt_at <= now, or_(Delivery.lease_until.is_(None), Delivery.lease_until < now)


def payload(delivery: Delivery) -> bytes:
    """The bytes POSTed for an event: its id, then the stored body; the same on every retry, so the signature is too."""
    event = {"id": delivery.event_id, **json.loads(delivery.body)}
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def deliver_due(database: Database, now: datetime | None = None, limit: int = BATCH) -> int:
    """Try up to `limit` due deliveries once; return how many were delivered. Safe to run in several processes at once."""
    with Connections() as connections:
        return _deliver_batch(database, now or utcnow(), limit, connections)[1]


def _deliver_batch(database: Database, now: datetime, limit: int, connections: "Connections") -> tuple[int, int]:
    """Lease a batch, POST each event and record every outcome in one commit; (due deliveries found, delivered)."""
    with database.session() as session:
        found = due(session, now, limit)
        started, delivered = time.monotonic(), 0
        for delivery in _lease(session, found, now):
            if time.monotonic() - started < SEND_FOR:
                delivered += _attempt(session, delivery, now, connections)
            else:
                delivery.lease_until = None  # left to the next round before its lease runs out and another worker sends it
        session.commit()
    return len(found), delivered


def _lease(session: Session, ids: list[int], now: datetime) -> list[Delivery]:
    """Take the still-due deliveries among `ids` for a minute in one UPDATE, then load them with their clients.

    A delivery that another worker leased or sent since `due` read it is left out, so each event is sent by one worker.
    """
    if not ids:
        return []
    taken = session.scalars(
        update(Delivery).where(Delivery.id.in_(ids), Delivery.delivered_at.is_(None), Delivery.given_up_at.is_(None), *_free(now))
        .values(lease_until=now + LEASE).returning(Delivery.id).execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return list(session.scalars(select(Delivery).where(Delivery.id.in_(taken)).order_by(Delivery.id))) if taken else []


def _attempt(session: Session, delivery: Delivery, now: datetime, connections: "Connections") -> int:
    """POST one event and note the attempt for the batch's commit; schedule a retry or give up after 24 hours."""
    body = payload(delivery)
    headers = {"Content-Type": "application/json", "User-Agent": "Palabre-Webhooks/1",
               "X-Palabre-Event": EVENT_TYPE, "X-Palabre-Delivery": delivery.event_id,
               "X-Palabre-Signature": sign(delivery.client.webhook_secret or "", body)}
    started = time.monotonic()
    status, error = connections.post(delivery.client.webhook_url, body, headers)
    elapsed = int((time.monotonic() - started) * 1000)
    session.add(DeliveryAttempt(delivery_id=delivery.id, at=now, status_code=status, error=error, milliseconds=elapsed))
    delivery.attempts += 1
    delivery.lease_until = None
    ok = status is not None and 200 <= status < 300
    if ok:
        delivery.delivered_at, delivery.last_error = now, None
    else:
        delivery.last_error = error or f"HTTP {status}"
        delay = DELAYS[min(delivery.attempts - 1, len(DELAYS) - 1)]
        if now + delay - delivery.created_at > RETRY_FOR:
            delivery.given_up_at = now
        else:
            delivery.next_attempt_at = now + delay
    return int(ok)


class Connections:
    """HTTP(S) connections kept open per receiver (scheme, host, port), so an event costs no TCP or TLS handshake."""

    def __init__(self):
        self.open: dict[tuple, http.client.HTTPConnection] = {}

    def __enter__(self) -> "Connections":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection, when the worker stops."""
        for connection in self.open.values():
            connection.close()
        self.open.clear()

    def post(self, url: str | None, body: bytes, headers: dict) -> tuple[int | None, str | None]:
        """POST over HTTP(S); the receiver's status, or None and what went wrong (the connection is then closed).

        A client whose webhook URL was removed or is unusable gets a failed attempt, like a receiver that is down.
        """
        try:
            parts = urlsplit(url or "")
            connection = self._connection(parts)
        except (ValueError, http.client.InvalidURL) as error:
            return None, f"webhook URL {url!r}: {error}"[:500]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            return _send(connection, path, body, headers), None
        except (OSError, http.client.HTTPException, ValueError) as error:
            connection.close()
            return None, str(error)[:500] or type(error).__name__

    def _connection(self, parts: SplitResult) -> http.client.HTTPConnection:
        """The connection to a URL's receiver, made on first use; a closed one reopens by itself on the next request."""
        key = (parts.scheme, parts.hostname, parts.port)
        if key not in self.open:
            if parts.scheme not in CONNECTIONS or not parts.hostname:
                raise ValueError("not an http(s) URL")
            connection = CONNECTIONS[parts.scheme](parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
            connection._create_connection = destinations.connect  # every (re)connection checks the address it reaches
            self.open[key] = connection
        return self.open[key]


def _send(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> int:
    """The status of one POST; a kept-alive connection that the receiver has closed while idle is replaced once."""
    reused = connection.sock is not None
    try:
        return _exchange(connection, path, body, headers)
    except ConnectionError:
        if not reused:
            raise
        connection.close()
        return _exchange(connection, path, body, headers)


def _exchange(connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> int:
    """POST and read the answer, leaving the connection ready for the next event (or closed if the answer is too long)."""
    connection.request("POST", path, body=body, headers=headers)
    with connection.getresponse() as response:
        response.read(MAX_ANSWER)
        if not response.isclosed():
            connection.close()
    return response.status


def run(database: Database, stop, interval: float = 0.2, limit: int = BATCH) -> None:
    """Deliver until `stop` (a threading.Event) is set: again at once while there is a backlog, else every `interval` seconds."""
    with Connections() as connections:
        while not stop.is_set():
            try:
                found, _ = _deliver_batch(database, utcnow(), limit, connections)
            except Exception:  # a broken database connection must not end the worker; it retries next round
                log.exception("webhook delivery round failed")
                found = 0
            if found < limit:
                stop.wait(interval)
