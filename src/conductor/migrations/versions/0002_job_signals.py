"""signals waiting for delivery by a job's worker (scancel --signal)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 08:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Comma-separated "[b:]NUMBER" entries; the API appends, the owning worker takes and clears.
    # It crosses hosts through the database because the API and the job's worker may not share one.
    op.add_column("jobs", sa.Column("pending_signal", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("pending_signal")
