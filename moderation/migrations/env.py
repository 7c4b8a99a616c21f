"""Alembic's entry point: migrate the database named in the config (or MODERATION_DATABASE_URL)."""

from alembic import context

from moderation.database import Base, default_url, load_tables, make_engine

load_tables()
engine = make_engine(context.config.get_main_option("sqlalchemy.url") or default_url())
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
