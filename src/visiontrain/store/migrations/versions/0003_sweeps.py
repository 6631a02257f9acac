"""Sweeps (many head configurations of a model, run by the workers together); on PostgreSQL the schema
``optuna`` for Optuna's own tables (its trials), apart from ours so that its version table is its own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 15:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sweeps',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('trials', sa.Integer(), nullable=False),
        sa.Column('trials_started', sa.Integer(), nullable=False),
        sa.Column('workers_joined', sa.Integer(), nullable=False),
        sa.Column('seed', sa.BigInteger(), nullable=False),
        sa.Column('settings', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=17), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('study_name', sa.String(length=100), nullable=False),
        sa.Column('snapshot', sa.JSON(), nullable=False),
        sa.Column('data_split', sa.JSON(), nullable=True),
        sa.Column('best_version_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['best_version_id'], ['model_versions.id'], name=op.f('fk_sweeps_best_version_id_model_versions'),
                                ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_sweeps_model_id_models'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps')),
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweeps_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sweeps_status'), ['status'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE SCHEMA IF NOT EXISTS optuna')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP SCHEMA IF EXISTS optuna CASCADE')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweeps_status'))
        batch_op.drop_index(batch_op.f('ix_sweeps_model_id'))
    op.drop_table('sweeps')
