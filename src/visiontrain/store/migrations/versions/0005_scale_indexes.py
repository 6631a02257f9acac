"""Indexes for projects of 100,000 images and more: images and counts per concept, whether a view has
fixed validation images, and deleting an image without scanning every version's snapshot (see ``store/models.SCALE_INDEXES``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 18:45:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# (index, table, columns): created in this order, dropped in the reverse one.
INDEXES = (
    ('ix_images_blob_key', 'images', ['blob_key']),
    ('ix_annotations_view_concept_image', 'annotations', ['view_id', 'concept_id', 'image_id']),
    ('ix_view_images_view_split', 'view_images', ['view_id', 'split']),
    ('ix_version_samples_blob_key', 'version_samples', ['blob_key']),
    ('ix_version_samples_image_id', 'version_samples', ['image_id']),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
