"""Worker capabilities: what each worker can run (accelerator, devices, an optional name) and what each
version needs (accelerator any/cpu/gpu, devices), so that a worker claims only versions that fit it.

Versions still queued or running get their needs from their stored settings (the rule of
``visiontrain.jobs.queue.requirements``, repeated here so that this migration never changes).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 18:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _needs(settings: dict) -> tuple[str, int]:
    accelerator, devices = settings.get('accelerator', 'auto'), settings.get('devices', 'auto')
    count = devices if isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1 else 1
    return {'cpu': 'cpu', 'gpu': 'gpu'}.get(accelerator, 'any'), count


def upgrade() -> None:
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('accelerator', sa.String(length=8), server_default='cpu', nullable=False))
        batch_op.add_column(sa.Column('devices', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('model_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('needs_accelerator', sa.String(length=8), server_default='any', nullable=False))
        batch_op.add_column(sa.Column('needs_devices', sa.Integer(), server_default='1', nullable=False))
        batch_op.create_index(batch_op.f('ix_model_versions_needs_accelerator'), ['needs_accelerator'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_versions_needs_devices'), ['needs_devices'], unique=False)

    versions = sa.table('model_versions', sa.column('id', sa.Integer()), sa.column('status', sa.String()),
                        sa.column('settings', sa.JSON()), sa.column('needs_accelerator', sa.String()),
                        sa.column('needs_devices', sa.Integer()))
    bind = op.get_bind()
    waiting = bind.execute(sa.select(versions.c.id, versions.c.settings).where(versions.c.status.in_(('queued', 'running'))))
    for version_id, settings in waiting.all():
        accelerator, devices = _needs(settings or {})
        if (accelerator, devices) != ('any', 1):
            bind.execute(versions.update().where(versions.c.id == version_id)
                         .values(needs_accelerator=accelerator, needs_devices=devices))


def downgrade() -> None:
    # recreate="never": SQLite's own DROP COLUMN (3.35+). Alembic's default rebuilds the table (copy, DROP,
    # rename), and with foreign keys on, dropping model_versions cascades to every snapshot, artifact and metric.
    with op.batch_alter_table('model_versions', schema=None, recreate='never') as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_versions_needs_devices'))
        batch_op.drop_index(batch_op.f('ix_model_versions_needs_accelerator'))
        batch_op.drop_column('needs_devices')
        batch_op.drop_column('needs_accelerator')
    with op.batch_alter_table('workers', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('devices')
        batch_op.drop_column('accelerator')
        batch_op.drop_column('name')
