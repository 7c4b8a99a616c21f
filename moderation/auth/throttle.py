"""Login attempts counted per account name, client address and known browser, in the database every process shares.

An attempt is counted before its password is looked at, by one atomic statement per key and a
commit, so guesses sent at once each get their own number and only those within the limit have
a password checked at all. A window starts at the first attempt after the last one ended and
does not grow with further attempts, so a guesser gets LIMITS[kind] tries every WINDOW and
never holds an account back for longer than that. Keys are stored as an HMAC of their text:
what a visitor typed as a username is never kept in clear.
"""

import hashlib
import hmac
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Integer, String, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..database import Base, UTCDateTime

WINDOW = timedelta(minutes=15)
LIMITS = {"account": 5, "address": 20, "device": 5}


class LoginThrottle(Base):
    """Attempts on one key (an account name, an address or a known browser) in its current window."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    window_until: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def account_key(username: str) -> str:
    """The same for an existing account and an unknown name, and for every capitalisation of it."""
    return f"account:{username.casefold()}"


def address_key(address: str | None) -> str:
    """Every username tried from one client address."""
    return f"address:{address}"


def device_key(device_id: str) -> str:
    """A browser an account has logged in from before."""
    return f"device:{device_id}"


def reserve(session: Session, keys: list[str], now: datetime) -> datetime | None:
    """Count an attempt on every key and commit; when a key is over its limit, the end of its window (the latest).

    Committed before any password is checked, so that attempts sent together are all counted first.
    """
    _forget_ended(session, now)
    refused_until = None
    for key in sorted(keys, key=_hashed):  # one order for every request: no two wait on each other's rows
        attempts, window_until = session.execute(_count(session, key, now)).one()
        if attempts > LIMITS[key.partition(":")[0]]:
            refused_until = max(window_until, refused_until or window_until)
    session.commit()
    return refused_until


def forgive(session: Session, keys: list[str]) -> None:
    """A right password: the account's or browser's failures are forgotten and the address gets back this attempt.

    The address keeps its failures, so logging in to one's own account does not buy more guesses on others.
    """
    addresses = [_hashed(key) for key in keys if key.startswith("address:")]
    session.execute(update(LoginThrottle).where(LoginThrottle.key.in_(addresses), LoginThrottle.attempts > 0)
                    .values(attempts=LoginThrottle.attempts - 1))
    clear(session, [key for key in keys if not key.startswith("address:")])


def clear(session: Session, keys: list[str]) -> None:
    """Forget the attempts on these keys (an admin's Unlock, a new password)."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_([_hashed(key) for key in keys])))


def _count(session: Session, key: str, now: datetime):
    """One statement that counts an attempt and returns (attempts, window_until): a new window if the last one ended."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    row = LoginThrottle.__table__.c
    statement = insert(LoginThrottle).values(key=_hashed(key), attempts=1, window_until=now + WINDOW)
    ended = row.window_until <= now
    return statement.on_conflict_do_update(
        index_elements=[row.key],
        set_={"attempts": case((ended, 1), else_=row.attempts + 1),
              "window_until": case((ended, statement.excluded.window_until), else_=row.window_until)},
    ).returning(row.attempts, row.window_until)


def _forget_ended(session: Session, now: datetime) -> None:
    """Drop windows that have ended, so names typed by guessers do not pile up; committed on its own.

    Rows another request holds are skipped (PostgreSQL), so this never waits and never deadlocks with a count.
    """
    ended = select(LoginThrottle.key).where(LoginThrottle.window_until <= now).with_for_update(skip_locked=True)
    session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(ended)))
    session.commit()


def _hashed(key: str) -> str:
    """The stored form of a key: an HMAC with the app's secret key, so it can be neither read nor guessed from the table."""
    secret = current_app.secret_key
    return hmac.new(secret if isinstance(secret, bytes) else secret.encode(), key.encode(), hashlib.sha256).hexdigest()
