"""the cluster configuration's generation, partition states set by scontrol, fair-share usage

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 08:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # API servers and the scheduler may be separate processes: `scontrol reconfigure` bumps the
    # generation and each process reloads the file when it sees a new one.
    op.create_table(
        "cluster_config",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("usage_as_of", sa.DateTime(timezone=True), nullable=True),
    )
    # Decayed CPU-seconds per user, for the fair-share factor of the multifactor priority.
    op.create_table(
        "fairshare_usage",
        sa.Column("user_name", sa.String(64), primary_key=True),
        sa.Column("usage", sa.Float, nullable=False),
    )
    op.create_table(
        "partition_states",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("partition_states")
    op.drop_table("fairshare_usage")
    op.drop_table("cluster_config")
