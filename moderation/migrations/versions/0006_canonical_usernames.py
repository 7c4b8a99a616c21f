"""Usernames stored in one form (NFKC, case-folded), so that no two accounts differ only by case and any capitalisation logs in.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from moderation.auth.models import canonical_username

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    connection = op.get_bind()
    users = connection.execute(sa.text("SELECT id, username FROM users")).all()
    by_form = {}
    for _, name in users:
        by_form.setdefault(canonical_username(name), []).append(name)
    clashes = [names for names in by_form.values() if len(names) > 1]
    if clashes:
        raise RuntimeError("these accounts differ only by case; rename all but one of each (Admin > Users) before upgrading: "
                           + "; ".join(", ".join(names) for names in clashes))
    for ident, name in users:
        if canonical_username(name) != name:
            connection.execute(sa.text("UPDATE users SET username = :name WHERE id = :id"), {"name": canonical_username(name), "id": ident})


def downgrade():
    """Nothing to undo in the schema; the capitals the names had are not kept."""
