"""Webhooks on SQLite and PostgreSQL: written with the decision, signed, retried, in order, delivered once the receiver is back."""

import hashlib
import hmac
import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from moderation import settings
from moderation.admin.models import ApiClient, Delivery, DeliveryAttempt
from moderation.api.clients import create_client
from moderation.database import utcnow
from moderation.service import decide, receive_comment
from moderation.webhooks import deliver_due

from .conftest import add_user, incoming

INSULT = "Espèce de crétin, ferme ta sale gueule"
OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."


class Receiver:
    """A real HTTP server that records what it is sent and answers with a chosen status."""

    def __init__(self, port: int = 0, status: int = 200):
        self.received, self.status = [], status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def receiver():
    """A receiver that is up."""
    up = Receiver()
    yield up
    up.close()


@pytest.fixture
def no_sample(session):
    """The QA sample off: clean comments are published by the policy."""
    settings.set_qa_share(session, 0.0)
    session.commit()


def deliveries(session) -> list[Delivery]:
    """Every delivery, oldest first, as stored now."""
    session.expire_all()
    return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_a_policy_decision_is_written_to_the_outbox_with_the_comment_and_a_held_one_is_not(session, scorer, no_sample, receiver):
    create_client(session, "site", receiver.url)
    create_client(session, "no-hook")
    receive_comment(session, scorer, incoming("clean", OPINION))
    receive_comment(session, scorer, incoming("held", INSULT))
    [delivery] = deliveries(session)
    data = json.loads(delivery.body)
    assert data["type"] == "comment.decided" and data["id"] == delivery.event_id
    assert data["data"] == {"comment_id": "clean", "article_id": "politique-test", "status": "published", "decided_by": "model",
                            "reason": None, "scores": data["data"]["scores"]}


def test_deliveries_are_signed_with_the_clients_secret(database, session, scorer, no_sample, receiver):
    client, _ = create_client(session, "site", receiver.url)
    receive_comment(session, scorer, incoming("clean", OPINION))
    assert deliver_due(database) == 1
    [(headers, body)] = receiver.received
    expected = "sha256=" + hmac.new(client.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Palabre-Signature"] == expected
    assert json.loads(body)["id"] == headers["X-Palabre-Delivery"]
    assert deliveries(session)[0].delivered_at is not None
    assert deliver_due(database) == 0, "a delivered event is not sent again"


def test_a_receiver_that_is_down_gets_every_event_in_order_once_it_is_back(database, session, scorer, no_sample, password_hash):
    port = free_port()
    create_client(session, "site", f"http://127.0.0.1:{port}/hooks")
    mona = add_user(session, "mona", "moderator", password_hash)
    now = utcnow()
    published = receive_comment(session, scorer, incoming("c1", OPINION), now=now).comment
    decide(session, published.id, mona, "rejected", "other", now=now)
    receive_comment(session, scorer, incoming("c2", OPINION + " Encore."), now=now)
    for minutes in (0, 1, 5, 20):
        assert deliver_due(database, now + timedelta(minutes=minutes)) == 0
    attempts = session.scalar(select(func.count()).select_from(DeliveryAttempt))
    assert attempts >= 3 and all(d.last_error for d in deliveries(session) if d.attempts)
    assert max(d.attempts for d in deliveries(session) if d.comment_id == published.id) >= 1
    back = Receiver(port)
    try:
        later = now + timedelta(hours=3)
        while deliver_due(database, later):
            pass
        statuses = [(json.loads(body)["data"]["comment_id"], json.loads(body)["data"]["status"]) for _, body in back.received]
    finally:
        back.close()
    assert sorted(statuses) == [("c1", "published"), ("c1", "rejected"), ("c2", "published")]
    assert [status for comment_id, status in statuses if comment_id == "c1"] == ["published", "rejected"]


def test_a_receiver_down_for_more_than_a_day_is_given_up_with_every_attempt_logged(database, session, scorer, no_sample):
    create_client(session, "site", f"http://127.0.0.1:{free_port()}/hooks")
    now = utcnow()
    receive_comment(session, scorer, incoming("c1", OPINION), now=now)
    moment = now
    while moment < now + timedelta(hours=26):
        deliver_due(database, moment)
        moment += timedelta(minutes=30)
    [delivery] = deliveries(session)
    assert delivery.given_up_at is not None and delivery.delivered_at is None and delivery.attempts >= 24


def test_a_receiver_error_status_is_retried(database, session, scorer, no_sample):
    failing = Receiver(status=503)
    try:
        create_client(session, "site", failing.url)
        now = utcnow()
        receive_comment(session, scorer, incoming("c1", OPINION), now=now)
        assert deliver_due(database, now) == 0
        failing.status = 204
        assert deliver_due(database, now + timedelta(seconds=5)) == 0, "not before its retry time"
        assert deliver_due(database, now + timedelta(seconds=15)) == 1
    finally:
        failing.close()
    assert len(failing.received) == 2 and deliveries(session)[0].last_error is None


def test_two_workers_at_once_send_each_event_once(database, session, scorer, no_sample, receiver):
    create_client(session, "site", receiver.url)
    for number in range(12):
        receive_comment(session, scorer, incoming(f"c{number}", f"{OPINION} Avis {number}."))
    barrier = threading.Barrier(3)

    def work():
        barrier.wait()
        deliver_due(database)

    workers = [threading.Thread(target=work) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ids = [json.loads(body)["id"] for _, body in receiver.received]
    assert len(ids) == len(set(ids)) == 12


def test_a_revoked_client_gets_no_new_events(session, scorer, no_sample, receiver):
    client, _ = create_client(session, "site", receiver.url)
    session.get(ApiClient, client.id).revoked_at = utcnow()
    session.commit()
    receive_comment(session, scorer, incoming("c1", OPINION))
    assert deliveries(session) == []
