"""An index for the thread of an article's latest published comments, read for every comment received.

Without it the query sorts every published comment of the article, and a plan chosen while the
table was small (a sequential scan) can stay in use as it grows.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.create_index('ix_comments_thread', ['article_id', 'status', 'received_at'], unique=False)


def downgrade():
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_index('ix_comments_thread')
