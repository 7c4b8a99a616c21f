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
import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from .admin.models import ApiClient, Delivery, DeliveryAttempt
from .comments.models import Comment, Decision
from .database import Database, utcnow

EVENT_TYPE = "comment.decided"
RETRY_FOR = timedelta(hours=24)
DELAYS = [timedelta(seconds=s) for s in (10, 30, 60, 120, 300, 600, 1800, 3600)]
LEASE = timedelta(seconds=60)
TIMEOUT_SECONDS = 10
log = logging.getLogger(__name__)


def sign(secret: str, body: bytes) -> str:
    """The X-Palabre-Signature value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def enqueue(session: Session, comment: Comment, decision: Decision, now: datetime) -> None:
    """Write one event per client with a webhook URL, in the caller's transaction."""
    clients = session.scalars(select(ApiClient).where(ApiClient.webhook_url.is_not(None), ApiClient.revoked_at.is_(None)))
    for client in clients:
        event_id = str(uuid.uuid4())
        body = {
            "id": event_id, "type": EVENT_TYPE, "created_at": now.isoformat(),
            "data": {"comment_id": comment.external_id, "article_id": comment.article.external_id, "status": decision.status,
                     "decided_by": decision.decided_by, "reason": decision.reason,
                     "scores": {"toxic": comment.toxic, "off_topic": comment.off_topic}},
        }
        session.add(Delivery(event_id=event_id, client_id=client.id, comment_id=comment.id, created_at=now, next_attempt_at=now,
                             body=json.dumps(body, ensure_ascii=False, separators=(",", ":"))))


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
        .where(Delivery.next_attempt_at <= now, or_(Delivery.lease_until.is_(None), Delivery.lease_until < now))
        .order_by(Delivery.id).limit(limit)
    ))


def deliver_due(database: Database, now: datetime | None = None, limit: int = 100, post=None) -> int:
    """Try every due delivery once; return how many were delivered. Safe to run in several processes at once."""
    now = now or utcnow()
    post = post or _post
    delivered = 0
    with database.session() as session:
        for delivery_id in due(session, now, limit):
            if not _lease(session, delivery_id, now):
                continue  # another worker has it
            delivery = session.get(Delivery, delivery_id)
            delivered += _attempt(session, delivery, now, post)
    return delivered


def _lease(session: Session, delivery_id: int, now: datetime) -> bool:
    """Take a still-due delivery for this worker for a minute; False if another worker took or sent it first."""
    taken = session.execute(
        update(Delivery).where(Delivery.id == delivery_id, Delivery.delivered_at.is_(None), Delivery.given_up_at.is_(None),
                               Delivery.next_attempt_at <= now, or_(Delivery.lease_until.is_(None), Delivery.lease_until < now))
        .values(lease_until=now + LEASE).execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    return taken == 1


def _attempt(session: Session, delivery: Delivery, now: datetime, post) -> int:
    """POST one event and record the attempt; schedule a retry or give up after 24 hours."""
    body = delivery.body.encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": "Palabre-Webhooks/1",
               "X-Palabre-Event": EVENT_TYPE, "X-Palabre-Delivery": delivery.event_id,
               "X-Palabre-Signature": sign(delivery.client.webhook_secret or "", body)}
    started = time.monotonic()
    status, error = post(delivery.client.webhook_url, body, headers)
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
    session.commit()
    return int(ok)


def _post(url: str, body: bytes, headers: dict) -> tuple[int | None, str | None]:
    """POST over HTTP(S); the receiver's status, or None and what went wrong."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return None, str(getattr(error, "reason", error))[:500] or type(error).__name__


def run(database: Database, stop, interval: float = 1.0) -> None:
    """Deliver until `stop` (a threading.Event) is set, looking for due events every `interval` seconds."""
    while not stop.is_set():
        try:
            deliver_due(database)
        except Exception:  # a broken database connection must not end the worker; it retries next round
            log.exception("webhook delivery round failed")
        stop.wait(interval)

