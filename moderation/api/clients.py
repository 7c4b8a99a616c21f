"""API keys: made once, shown once, stored only as a hash, revocable.

Keys are 256 random bits, so a plain SHA-256 of the key is enough to store (no slow hash is
needed against guessing) and lets every request be checked with one indexed lookup.
"""

import hashlib
import secrets
import time

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from ..admin.models import ApiClient
from ..database import Database, utcnow
from ..destinations import check_url
from ..validation import InputError

KEY_PREFIX = "pal_"
VERIFIED_SECONDS = 2.0
_verified: dict[tuple[str, str], tuple[float, Row]] = {}  # (database, key hash) -> (trusted until, client)
_BY_HASH = select(ApiClient.__table__).where(ApiClient.__table__.c.key_hash == bindparam("key_hash"))  # every API request runs it


class KeyRefused(Exception):
    """A key that opens nothing: unknown, or revoked (then `revoked` is True)."""

    def __init__(self, message: str, revoked: bool = False):
        super().__init__(message)
        self.revoked = revoked


def key_hash(key: str) -> str:
    """What is stored and looked up for a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_client(session: Session, name: str, webhook_url: str | None = None) -> tuple[ApiClient, str]:
    """A new client and its key; the key exists only in the return value."""
    name = (name or "").strip()
    if not name or len(name) > 120 or not name.isprintable():
        raise InputError("a client name is 1 to 120 visible characters", "name")
    if webhook_url is not None:
        webhook_url = check_url(webhook_url)
    if session.scalar(select(ApiClient).where(ApiClient.name == name)) is not None:
        raise InputError(f"a client named {name!r} exists already", "name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(name=name, key_prefix=key[:12], key_hash=key_hash(key), webhook_url=webhook_url,
                       webhook_secret="whsec_" + secrets.token_urlsafe(24))
    session.add(client)
    session.commit()
    return client, key


def authenticate(database: Database, key: str) -> Row:
    """The client a key belongs to (its row: id, name, webhook_url, ...); KeyRefused if the key is unknown or revoked.

    A key found good is trusted for VERIFIED_SECONDS without asking the database again, so a
    request that needs nothing else from it costs no connection; revoking a key therefore takes
    up to that long in other processes (at once in the one that revoked it).
    """
    digest = key_hash(key)
    remembered = (database.url, digest)
    found = _verified.get(remembered)
    if found is not None and found[0] > time.monotonic():
        return found[1]
    with database.engine.connect() as connection:
        client = connection.execute(_BY_HASH, {"key_hash": digest}).first()
    if client is None:
        raise KeyRefused("this API key is not valid")
    if client.revoked_at is not None:
        raise KeyRefused(f"this API key was revoked on {client.revoked_at:%Y-%m-%d %H:%M} UTC", revoked=True)
    _verified[remembered] = (time.monotonic() + VERIFIED_SECONDS, client)
    return client


def revoke_client(session: Session, client: ApiClient) -> None:
    """Stop a client's key from opening anything: from the next request on in this process, within seconds in others."""
    client.revoked_at = client.revoked_at or utcnow()
    session.commit()
    _verified.clear()
