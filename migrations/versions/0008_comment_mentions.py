"""comment mentions: the actors a local comment names with @

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:00:00.000000
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'comment_mentions',
        sa.Column('comment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('actor_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.ForeignKeyConstraint(['actor_id'], ['actors.id'], name=op.f('fk_comment_mentions_actor_id_actors')),
        sa.ForeignKeyConstraint(['comment_id'], ['comments.id'], name=op.f('fk_comment_mentions_comment_id_comments')),
        sa.PrimaryKeyConstraint('comment_id', 'actor_id', name=op.f('pk_comment_mentions')),
    )
    with op.batch_alter_table('comment_mentions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_comment_mentions_actor_id'), ['actor_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('comment_mentions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_comment_mentions_actor_id'))
    op.drop_table('comment_mentions')
