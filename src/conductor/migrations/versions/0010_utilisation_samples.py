"""utilisation samples for the dashboard, and an index counting pending jobs by partition and reason

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The dashboard's chart of used CPUs and running/pending jobs over the last hours; bounded
    # by the sampler, which deletes samples past their retention.
    op.create_table(
        'utilisation_samples',
        sa.Column('time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('total_cpus', sa.Integer(), nullable=False),
        sa.Column('used_cpus', sa.Integer(), nullable=False),
        sa.Column('running_jobs', sa.Integer(), nullable=False),
        sa.Column('pending_jobs', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('time'),
    )
    # /metrics counts pending jobs by partition and reason at every scrape: from this index
    # alone, never visiting rows. Partial (pending jobs only), so that no listing's plan
    # prefers it to ix_jobs_state_id.
    pending = sa.text("state = 'PENDING'")
    op.create_index(
        'ix_jobs_pending_partition_reason',
        'jobs',
        ['partition', 'reason', 'state'],
        unique=False,
        sqlite_where=pending,
        postgresql_where=pending,
    )


def downgrade() -> None:
    op.drop_index('ix_jobs_pending_partition_reason', table_name='jobs')
    op.drop_table('utilisation_samples')
