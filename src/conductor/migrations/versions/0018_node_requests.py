"""sbatch --nodelist and --exclude: the node a job must run on, and those it must not

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("req_nodes", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("exc_nodes", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("exc_nodes")
        batch_op.drop_column("req_nodes")
