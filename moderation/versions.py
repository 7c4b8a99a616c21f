"""The model versions this site has scored with, beside the registry that holds their files: when each was first used."""

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from .database import Base, UTCDateTime, utcnow


class ModelVersion(Base):
    """A model version this site has scored with, when it was first used, and its held-out metrics."""

    __tablename__ = "model_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
