"""Moderators and admins: who may log in, with which role and interface language."""

import secrets
import unicodedata
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, validates
from werkzeug.security import check_password_hash, generate_password_hash

from ..database import Base, UTCDateTime, utcnow

MODERATOR = "moderator"
ADMIN = "admin"
ROLES = (MODERATOR, ADMIN)
LANGUAGES = ("fr", "en")
MIN_PASSWORD = 10


def canonical_username(username: str) -> str:
    """One form for every way of typing a name (case, compatibility characters): "Mona", "MONA" and "mona" are one account."""
    return unicodedata.normalize("NFKC", username).casefold()


def username_problem(username: str) -> str | None:
    """Why a username cannot be used, or None: 1 to 80 visible characters, no spaces."""
    if not username or len(username) > 80 or any(not ch.isprintable() or ch.isspace() for ch in username):
        return "a username is 1 to 80 visible characters without spaces"
    return None


class User(UserMixin, Base):
    """A person who works the queue (moderator) or also runs the installation (admin)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=MODERATOR)
    language: Mapped[str | None] = mapped_column(String(8))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    session_token: Mapped[str] = mapped_column(String(32), default=lambda: secrets.token_hex(16))
    # Left from the lockout that login_throttle replaced; nothing reads them. Dropping them would mean rebuilding
    # this table on SQLite (before 3.35), with other tables' foreign keys pointing at it.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @validates("username")
    def _canonical(self, key: str, username: str) -> str:
        """Stored in its canonical form, so that no two accounts differ only by case."""
        return canonical_username(username)

    @property
    def is_active(self) -> bool:
        """Flask-Login refuses deactivated accounts."""
        return self.active

    @property
    def is_admin(self) -> bool:
        """Admins also manage users, thresholds and pre-moderation."""
        return self.role == ADMIN

    def get_id(self) -> str:
        """What the session cookie names: the account and its current session token."""
        return f"{self.id}:{self.session_token}"

    def rotate_session_token(self) -> None:
        """End every session opened so far (new password, deactivation, logging out)."""
        self.session_token = secrets.token_hex(16)

    def set_password(self, password: str) -> None:
        """Store a salted hash, never the password; sessions opened with the old one end."""
        self.password_hash = generate_password_hash(password)
        self.rotate_session_token()

    def check_password(self, password: str) -> bool:
        """Whether the password matches the stored hash."""
        return check_password_hash(self.password_hash, password)
