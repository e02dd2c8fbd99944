"""a pending job's expected start and node, from the scheduler's plan

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Written by the scheduler's pass (backfill plan) for the pending jobs it tested, read by
    # `squeue --start`, `scontrol show job` and the API; the API and the scheduler may be
    # different processes, so the plan crosses through the database. Cleared when the job starts.
    op.add_column("jobs", sa.Column("expected_start_time", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("sched_nodes", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("sched_nodes")
        batch_op.drop_column("expected_start_time")
