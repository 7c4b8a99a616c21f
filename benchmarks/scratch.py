"""Throwaway databases for the benchmarks: a temporary SQLite file or a new PostgreSQL database, gone afterwards."""

import secrets
import tempfile
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def scratch_database(server_url: str | None, prefix: str):
    """(URL, name) of an empty database: on the PostgreSQL server of `server_url`, or a SQLite file (name None) without one."""
    if server_url is None:
        with tempfile.TemporaryDirectory(prefix=f"{prefix}-") as folder:
            yield f"sqlite:///{Path(folder) / 'palabre.sqlite3'}", None
        return
    name = f"{prefix.replace('-', '_')}_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False), name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
