"""One login attempt: counted first, then exactly one password check whatever the account's state.

Every attempt costs one password hash (a dummy one for an unknown, deactivated or held-back
account), so neither the answer nor its time tells which usernames exist. A browser an account
has logged in from before carries a signed device cookie; its attempts on that account are
counted on the browser alone, so a stranger who keeps the account's name or the office address
held back cannot keep its moderator out.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from . import throttle
from .models import User, canonical_username

DEVICE_COOKIE = "palabre_device"
DEVICE_LIFETIME = timedelta(days=365)
_DUMMY_HASH = generate_password_hash("a password no account has")


@dataclass(frozen=True)
class Device:
    """A browser that has logged in to an account: the account and a random name for the browser."""

    user_id: int
    id: str


@dataclass(frozen=True)
class Attempt:
    """What became of a login attempt: the user when it succeeded, the end of the wait when it was held back."""

    user: User | None = None
    retry_after: datetime | None = None


def authenticate(session: Session, username: str, password: str, address: str | None, device: Device | None,
                 now: datetime) -> Attempt:
    """Count the attempt, then check the password if the account may be tried; forgive its failures when right."""
    user = session.scalar(select(User).where(User.username == canonical_username(username)))
    keys = _keys(username, user, address, device)
    retry_after = throttle.reserve(session, keys, now)
    if user is None or not user.active or retry_after is not None:
        check_password_hash(_DUMMY_HASH, password)  # as long as a real check
        return Attempt(retry_after=retry_after)
    if not user.check_password(password):
        return Attempt()
    throttle.forgive(session, keys)
    session.commit()
    return Attempt(user=user)


def _keys(username: str, user: User | None, address: str | None, device: Device | None) -> list[str]:
    """The browser alone when it has logged in to this account before; else the account name and the address."""
    if user is not None and device is not None and device.user_id == user.id:
        return [throttle.device_key(device.id)]
    return [throttle.account_key(username), throttle.address_key(address)]


def read_device(cookie: str | None, secret: str | bytes) -> Device | None:
    """The browser named by a device cookie this app signed in the last year, else None."""
    try:
        user_id, device_id = _serializer(secret).loads(cookie or "", max_age=DEVICE_LIFETIME.total_seconds())
    except (BadSignature, TypeError, ValueError):
        return None
    return Device(user_id, device_id) if isinstance(user_id, int) and isinstance(device_id, str) else None


def device_for(user: User, device: Device | None) -> Device:
    """The browser's device for this account: kept if it is already the account's, else a new one."""
    return device if device is not None and device.user_id == user.id else Device(user.id, secrets.token_hex(16))


def device_cookie(device: Device, secret: str | bytes) -> str:
    """The signed value of a device cookie (its date is signed too, so it expires)."""
    return _serializer(secret).dumps([device.user_id, device.id])


def _serializer(secret: str | bytes) -> URLSafeTimedSerializer:
    """Signs device cookies with the app's key, apart from everything else it signs."""
    return URLSafeTimedSerializer(secret, salt="palabre-device")
