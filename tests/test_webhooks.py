"""Webhooks on SQLite and PostgreSQL: written with the decision, signed, retried, in order, delivered once the receiver is back."""

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from moderation import settings, webhooks
from moderation.admin.models import ApiClient, Delivery, DeliveryAttempt
from moderation.api.clients import create_client
from moderation.database import utcnow
from moderation.destinations import ALLOW_PRIVATE
from moderation.receiving import receive_comment
from moderation.service import decide
from moderation.validation import InputError
from moderation.webhooks import Connections, deliver_due, payload, run

from .conftest import add_user, incoming

INSULT = "Espèce de crétin, ferme ta sale gueule"
OPINION = "Le calendrier du référendum est trop court pour que l'opposition fasse campagne sur la Constitution."


class Receiver:
    """A real HTTP/1.1 server that keeps connections alive, records what it is sent and on which connection, and
    answers with a chosen status after a chosen delay."""

    def __init__(self, port: int = 0, status: int = 200, delay: float = 0.0):
        self.received, self.status, self.delay = [], status, delay
        self.connections, self.sockets = set(), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                receiver.sockets.append(self.connection)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                receiver.received.append((dict(self.headers), body))
                receiver.connections.add(self.client_address)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def drop_connections(self):
        """Close every open connection, as a receiver does with idle ones or when it restarts."""
        for connection in self.sockets:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its client

    def close(self):
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.drop_connections()


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
    data = json.loads(payload(delivery))
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


def test_a_receiver_error_status_is_retried_with_the_same_body_and_signature(database, session, scorer, no_sample):
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
    [(first_headers, first), (second_headers, second)] = failing.received
    assert second == first and second_headers["X-Palabre-Signature"] == first_headers["X-Palabre-Signature"]
    assert deliveries(session)[0].last_error is None


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


def test_events_stored_with_or_without_their_id_are_sent_as_the_same_bytes():
    event = {"type": "comment.decided", "created_at": "2025-01-01T00:00:00+00:00", "data": {"comment_id": "c1", "reason": "élu"}}
    compact = {"ensure_ascii": False, "separators": (",", ":")}
    before = Delivery(event_id="evt_7_1", body=json.dumps({"id": "evt_7_1", **event}, **compact))
    now = Delivery(event_id="evt_7_1", body=json.dumps(event, **compact))
    assert payload(now) == payload(before) == before.body.encode("utf-8")


def test_a_backlog_is_sent_once_and_in_order_over_one_connection_per_round(database, session, scorer, no_sample, receiver,
                                                                          password_hash):
    create_client(session, "site", receiver.url)
    mona = add_user(session, "mona", "moderator", password_hash)
    for number in range(150):
        comment = receive_comment(session, scorer, incoming(f"c{number}", f"{OPINION} Avis {number}.")).comment
        if number % 5 == 0:
            decide(session, comment.id, mona, "rejected", "other")
    rounds = 0
    while deliver_due(database):
        rounds += 1
    events = [json.loads(body) for _, body in receiver.received]
    assert len(events) == len({event["id"] for event in events}) == 180 and rounds > 1
    statuses = {}
    for event in events:
        statuses.setdefault(event["data"]["comment_id"], []).append(event["data"]["status"])
    assert statuses == {f"c{n}": ["published", "rejected"] if n % 5 == 0 else ["published"] for n in range(150)}
    assert len(receiver.connections) <= rounds
    assert all(delivery.delivered_at and delivery.attempts == 1 for delivery in deliveries(session))


def test_the_worker_goes_through_a_backlog_at_once_on_one_kept_alive_connection(database, session, scorer, no_sample, receiver):
    create_client(session, "site", receiver.url)
    for number in range(150):
        receive_comment(session, scorer, incoming(f"c{number}", f"{OPINION} Avis {number}."))
    stop = threading.Event()
    worker = threading.Thread(target=run, args=(database, stop), kwargs={"interval": 60}, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while len(receiver.received) < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive(), "the worker stops when told, even while it waits"
    assert len(receiver.received) == 150, "a full batch is followed at once by the next, not after the interval"
    assert len(receiver.connections) == 1


def test_a_slow_receiver_gets_the_rest_of_a_batch_next_round_and_nothing_twice(database, session, scorer, no_sample, monkeypatch):
    monkeypatch.setattr(webhooks, "SEND_FOR", 0.15)  # how long a batch may send, so that no lease runs out while it does
    slow = Receiver(delay=0.1)
    try:
        create_client(session, "site", slow.url)
        for number in range(5):
            receive_comment(session, scorer, incoming(f"c{number}", f"{OPINION} Avis {number}."))
        assert 0 < deliver_due(database) < 5
        assert all(delivery.lease_until is None for delivery in deliveries(session)), "the rest is left for the next round"
        while deliver_due(database):
            pass
    finally:
        slow.close()
    ids = [json.loads(body)["id"] for _, body in slow.received]
    assert len(ids) == len(set(ids)) == 5
    assert all(delivery.delivered_at and delivery.attempts == 1 for delivery in deliveries(session))


def test_a_kept_alive_connection_the_receiver_has_closed_is_replaced_without_a_failed_attempt(receiver):
    with Connections() as connections:
        assert connections.post(receiver.url, b"{}", {}) == (200, None)
        receiver.drop_connections()
        assert connections.post(receiver.url, b"{}", {}) == (200, None)
    assert len(receiver.received) == 2 and len(receiver.connections) == 2


def test_a_client_whose_webhook_url_was_removed_gets_failed_attempts_and_others_are_still_served(database, session, scorer,
                                                                                                 no_sample, receiver):
    gone, _ = create_client(session, "gone", receiver.url)
    create_client(session, "site", receiver.url)
    receive_comment(session, scorer, incoming("c1", OPINION))
    session.get(ApiClient, gone.id).webhook_url = None
    session.commit()
    assert deliver_due(database) == 1 and len(receiver.received) == 1
    failed = [delivery for delivery in deliveries(session) if delivery.client_id == gone.id]
    assert [(delivery.attempts, delivery.delivered_at) for delivery in failed] == [(1, None)]
    assert "not an http(s) URL" in failed[0].last_error


@pytest.mark.parametrize("url, kind", [
    ("http://127.0.0.1:8080/hooks", "loopback"), ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.7/hooks", "private"), ("http://192.168.1.20/hooks", "private"), ("http://[::1]/hooks", "loopback"),
    ("http://[::ffff:127.0.0.1]/hooks", "loopback"), ("http://localhost:9/hooks", "loopback"),
])
def test_a_webhook_url_reaching_into_the_servers_network_is_refused_when_saved(session, monkeypatch, url, kind):
    monkeypatch.delenv(ALLOW_PRIVATE)
    with pytest.raises(InputError, match=f"is a {kind} address; webhooks go to public addresses only"):
        create_client(session, "site", url)
    assert session.scalar(select(func.count()).select_from(ApiClient)) == 0
    monkeypatch.setenv(ALLOW_PRIVATE, "1")
    assert create_client(session, "site", url)[0].webhook_url == url, f"{ALLOW_PRIVATE}=1 allows it"


def test_a_public_address_and_a_name_that_does_not_resolve_yet_are_accepted(session, monkeypatch):
    monkeypatch.delenv(ALLOW_PRIVATE)
    assert create_client(session, "public", "https://93.184.215.14/hooks")[0].webhook_url == "https://93.184.215.14/hooks"
    assert create_client(session, "later", "https://hooks.site.invalid/h")[0].webhook_url == "https://hooks.site.invalid/h"


def test_each_send_checks_the_address_again_and_a_private_one_is_a_failed_attempt(database, session, scorer, no_sample, receiver,
                                                                                 monkeypatch):
    create_client(session, "site", receiver.url)  # saved while private addresses were allowed
    receive_comment(session, scorer, incoming("c1", OPINION))
    monkeypatch.delenv(ALLOW_PRIVATE)
    assert deliver_due(database) == 0 and receiver.received == []
    [delivery] = deliveries(session)
    assert delivery.attempts == 1 and delivery.delivered_at is None
    assert "127.0.0.1 is a loopback address" in delivery.last_error
    monkeypatch.setenv(ALLOW_PRIVATE, "1")
    session.get(Delivery, delivery.id).next_attempt_at = utcnow()
    session.commit()
    assert deliver_due(database) == 1 and len(receiver.received) == 1, "the event waits and goes once allowed"
