"""accounts, associations, users' default accounts and QOS (sacctmgr); fair-share usage per account;
the generation of the last reconfigure

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _limits() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("max_jobs", sa.Integer, nullable=True),
        sa.Column("max_submit_jobs", sa.Integer, nullable=True),
        sa.Column("grp_cpus", sa.Integer, nullable=True),
        sa.Column("grp_memory_mb", sa.Integer, nullable=True),
        sa.Column("max_wall", sa.Integer, nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("parent", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("organization", sa.Text, nullable=False, server_default=""),
        sa.Column("shares", sa.Integer, nullable=False, server_default="1"),
        *_limits(),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "associations",
        sa.Column("user_name", sa.String(64), primary_key=True),
        sa.Column("account", sa.String(64), sa.ForeignKey("accounts.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("shares", sa.Integer, nullable=False, server_default="1"),
        *_limits(),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "accounting_users",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("default_account", sa.String(64), nullable=False),
    )
    op.create_table(
        "qos",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_jobs_per_user", sa.Integer, nullable=True),
        sa.Column("max_submit_jobs_per_user", sa.Integer, nullable=True),
        sa.Column("max_cpus_per_user", sa.Integer, nullable=True),
        sa.Column("max_memory_per_user", sa.Integer, nullable=True),
        sa.Column("grp_cpus", sa.Integer, nullable=True),
        sa.Column("grp_memory_mb", sa.Integer, nullable=True),
        sa.Column("max_wall", sa.Integer, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Usage is now kept per user and account. It is derived data: the table starts again empty
    # and usage_as_of is cleared, so the scheduler's next full pass reads the history once more.
    op.drop_table("fairshare_usage")
    op.create_table(
        "fairshare_usage",
        sa.Column("user_name", sa.String(64), primary_key=True),
        sa.Column("account", sa.String(64), primary_key=True, server_default=""),
        sa.Column("usage", sa.Float, nullable=False),
    )
    op.execute("UPDATE cluster_config SET usage_as_of = NULL")
    # Only a reconfigure rereads the configuration file; an accounting change must not take a
    # file edited but not yet checked with `scontrol reconfigure`.
    with op.batch_alter_table("cluster_config") as batch:
        batch.add_column(sa.Column("file_generation", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cluster_config") as batch:
        batch.drop_column("file_generation")
    op.drop_table("fairshare_usage")
    op.create_table(
        "fairshare_usage",
        sa.Column("user_name", sa.String(64), primary_key=True),
        sa.Column("usage", sa.Float, nullable=False),
    )
    op.execute("UPDATE cluster_config SET usage_as_of = NULL")
    op.drop_table("qos")
    op.drop_table("accounting_users")
    op.drop_table("associations")
    op.drop_table("accounts")
