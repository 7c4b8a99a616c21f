"""The database: one SQLAlchemy engine per app, a session per request, schema by Alembic migrations.

SQLite in instance/ is the zero-setup default; PostgreSQL (postgresql+psycopg://...) is the
production choice. The service layer takes a Session and does not care which.
"""

import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import DateTime, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from .registry import PROJECT_ROOT
from .timings import time_statements

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL; a larger one can name no row


def default_url() -> str:
    """MODERATION_DATABASE_URL, else a SQLite file in instance/."""
    url = os.environ.get("MODERATION_DATABASE_URL")
    if url:
        return url
    instance = PROJECT_ROOT / "instance"
    instance.mkdir(exist_ok=True)
    return f"sqlite:///{instance / 'palabre.sqlite3'}"


def utcnow() -> datetime:
    """Now, timezone-aware: every timestamp Palabre stores is UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A UTC timestamp that comes back timezone-aware from SQLite as from PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; Palabre stores aware UTC timestamps")
        if value is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Every table of Palabre."""


def make_engine(url: str) -> Engine:
    """An engine tuned for its backend (SQLite waits for locks and keeps readers off writers' backs), its statements timed."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                               connect_args={"options": "-c timezone=UTC"} if url.startswith("postgresql") else {})
    time_statements(engine)
    return engine


def _sqlite_pragmas(connection, record):
    """WAL lets the queue be read while a decision is written; foreign keys are off by default."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def load_tables() -> None:
    """Import every module that declares tables, so Base.metadata is complete."""
    from . import history, settings, versions  # noqa: F401
    from .admin import models as admin_models  # noqa: F401
    from .auth import models as auth_models  # noqa: F401
    from .auth import throttle  # noqa: F401
    from .comments import models as comment_models  # noqa: F401


def alembic_config(url: str):
    """Alembic's configuration for this package's migrations and a database URL."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring a database's schema to the newest migration (creating it if empty)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        """A new session; the caller closes it."""
        return self.sessions()

    def upgrade(self) -> None:
        """Migrate this database to the newest schema and refresh SQLite's planner statistics.

        Without statistics SQLite reads a claim (25 ids) through the status index instead of
        the primary key; PostgreSQL keeps its own statistics (autovacuum).
        """
        upgrade(self.url)
        if self.engine.dialect.name == "sqlite":
            with self.engine.begin() as connection:
                connection.exec_driver_sql("PRAGMA analysis_limit=1000")
                connection.exec_driver_sql("ANALYZE")
