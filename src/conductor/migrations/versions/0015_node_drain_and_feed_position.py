"""nodes an administrator drained (why, who, when); where the transition feed has read to

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("drain_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("drain_user", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("drain_time", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("cluster_config", schema=None) as batch_op:
        batch_op.add_column(sa.Column("feed_event_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cluster_config", schema=None) as batch_op:
        batch_op.drop_column("feed_event_id")
    with op.batch_alter_table("nodes", schema=None) as batch_op:
        batch_op.drop_column("drain_time")
        batch_op.drop_column("drain_user")
        batch_op.drop_column("drain_reason")
