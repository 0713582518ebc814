"""notifications: when each comment reached us, and when each account last looked

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:40:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notifications_seen_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('received_at', sa.DateTime(timezone=True), nullable=True))
    # Comments stored before this knew only their published time.
    op.execute('UPDATE comments SET received_at = published_at')
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.alter_column('received_at', existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('comments', schema=None) as batch_op:
        batch_op.drop_column('received_at')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('notifications_seen_at')
