"""One split per view: the view's split fraction, seed and generation, each image's assigned side,
and which split (and validation images) each version was judged on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('views', schema=None) as batch_op:
        batch_op.add_column(sa.Column('split_fraction', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('split_seed', sa.BigInteger(), nullable=True))  # seeds go to 2**32 - 1
        batch_op.add_column(sa.Column('split_generation', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('view_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('assigned_split', sa.String(length=13), nullable=True))
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_split', sa.JSON(), nullable=True))


def downgrade() -> None:
    # recreate="never": SQLite's own DROP COLUMN; rebuilding a table with foreign keys on would cascade its rows' deletion.
    with op.batch_alter_table('model_versions', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('data_split')
    with op.batch_alter_table('view_images', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('assigned_split')
    with op.batch_alter_table('views', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('split_generation')
        batch_op.drop_column('split_seed')
        batch_op.drop_column('split_fraction')
