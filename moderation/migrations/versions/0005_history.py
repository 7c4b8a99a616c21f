"""A site's past moderation, imported for the weekly refresh: the files imported and their comments.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import moderation.database

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('history_imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=1000), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=32), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('imported_at', moderation.database.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    op.create_table('history_comments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=True),
    sa.Column('external_id', sa.String(length=255), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('toxic', sa.Float(), nullable=True),
    sa.Column('off_topic', sa.Float(), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.String(length=16), nullable=True),
    sa.Column('article_id', sa.String(length=255), nullable=True),
    sa.Column('article_title', sa.Text(), nullable=True),
    sa.Column('article_body', sa.Text(), nullable=True),
    sa.Column('author_id', sa.String(length=255), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('created_at', moderation.database.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['import_id'], ['history_imports.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('history_comments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_history_comments_import_id'), ['import_id'], unique=False)


def downgrade():
    with op.batch_alter_table('history_comments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_history_comments_import_id'))
    op.drop_table('history_comments')
    op.drop_table('history_imports')
