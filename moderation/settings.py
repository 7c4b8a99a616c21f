"""Site settings admins change at run time: thresholds per label, the QA sample share, whether edits of rejected
comments come back to the queue, Coral's signing secrets.

Thresholds left unset follow the active model's own (chosen on validation data when it was
trained), so a new model brings its thresholds unless an admin has pinned them.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, String, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column

from .database import Base, UTCDateTime, utcnow
from .policy import LabelThresholds, Policy

DEFAULT_QA_SHARE = 0.02
THRESHOLDS = "thresholds"
QA_SHARE = "qa_share"
REVIEW_REJECTED_EDITS = "review_rejected_edits"
CORAL_SECRETS = "coral_secrets"
MAX_CORAL_SECRET_CHARS = 200


class Setting(Base):
    """One named setting, stored as JSON."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict | list | float | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


@dataclass(frozen=True)
class SiteSettings:
    """The settings in force: pinned thresholds (label -> LabelThresholds), the QA share, and the edits rule."""

    thresholds: dict[str, LabelThresholds]
    qa_share: float
    review_rejected_edits: bool = False

    def policy(self, model_policy: Policy) -> Policy:
        """The model's policy with the admin's pinned thresholds laid over it."""
        return Policy({label: self.thresholds.get(label, t) for label, t in model_policy.thresholds.items()})


_ALL = select(Setting.__table__.c.key, Setting.__table__.c.value)
_CORAL_SECRETS = select(Setting.__table__.c.value).where(Setting.__table__.c.key == CORAL_SECRETS)


def current(session: Session | Connection) -> SiteSettings:
    """Read the settings in force."""
    stored = dict(session.execute(_ALL).all())
    pinned = stored.get(THRESHOLDS) or {}
    qa_share = stored.get(QA_SHARE)
    return SiteSettings(
        thresholds=Policy.from_dict(pinned).thresholds,
        qa_share=DEFAULT_QA_SHARE if qa_share is None else float(qa_share),
        review_rejected_edits=bool(stored.get(REVIEW_REJECTED_EDITS)),
    )


def pin_thresholds(session: Session, thresholds: dict[str, LabelThresholds]) -> None:
    """Pin thresholds for some labels (the others follow the model); validated by LabelThresholds."""
    _put(session, THRESHOLDS, Policy(thresholds).to_dict())


def set_qa_share(session: Session, share: float) -> None:
    """Set the share of would-be-published comments sent to review as a sample."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the QA sample share must be between 0 and 1, not {share}")
    _put(session, QA_SHARE, share)


def set_review_rejected_edits(session: Session, on: bool) -> None:
    """Whether an edit of a comment a moderator rejected goes back to the queue (off: the rejection stands)."""
    _put(session, REVIEW_REJECTED_EDITS, bool(on))


def coral_secrets(session: Session) -> list[str]:
    """The signing secrets admins added for Coral, oldest first; one prebuilt select, as every Coral request reads them."""
    return session.execute(_CORAL_SECRETS).scalar() or []


def add_coral_secret(session: Session, secret: str) -> None:
    """Accept one more signing secret: the first, or the new one of a rotation while Coral still signs with the old."""
    if not 0 < len(secret) <= MAX_CORAL_SECRET_CHARS or not all(ch.isprintable() and not ch.isspace() for ch in secret):
        raise ValueError(f"a Coral signing secret is 1 to {MAX_CORAL_SECRET_CHARS} visible characters")
    stored = coral_secrets(session)
    if secret not in stored:
        _put(session, CORAL_SECRETS, [*stored, secret])


def remove_coral_secret(session: Session, secret: str) -> None:
    """Stop accepting a signing secret, once Coral no longer signs with it."""
    _put(session, CORAL_SECRETS, [kept for kept in coral_secrets(session) if kept != secret])


def _put(session: Session, key: str, value) -> None:
    """Insert or replace one setting in the caller's transaction."""
    setting = session.get(Setting, key)
    if setting is None:
        session.add(Setting(key=key, value=value))
    else:
        setting.value = value
