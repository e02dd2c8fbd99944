"""a submission's Idempotency-Key and the digest of its request, unique per user

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("submit_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("submit_digest", sa.String(length=64), nullable=True))
    # Partial: most jobs come without a key, and they cost the index nothing.
    op.create_index(
        "ix_jobs_submit_key",
        "jobs",
        ["user_name", "submit_key"],
        unique=True,
        sqlite_where=sa.text("submit_key IS NOT NULL"),
        postgresql_where=sa.text("submit_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_submit_key", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("submit_digest")
        batch_op.drop_column("submit_key")
