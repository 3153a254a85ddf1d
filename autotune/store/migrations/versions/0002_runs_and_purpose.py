"""Record full runs against their prediction; tell confirmation trials from search trials.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``autotune_trials.purpose`` (existing trials were all search trials) and
    ``autotune_runs``."""
    with op.batch_alter_table("autotune_trials") as batch:
        batch.add_column(sa.Column("purpose", sa.String(20), nullable=False,
                                   server_default="search"))
    op.create_table(
        "autotune_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
        sa.Column("workload_signature", sa.String(64), nullable=True, index=True),
        sa.Column("profile_created_at", sa.String(40), nullable=True),
        sa.Column("config_key", sa.String(100), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("script", sa.Text, nullable=True),
        sa.Column("simulated", sa.Float, nullable=True),
        sa.Column("predicted_total", sa.Float, nullable=True),
        sa.Column("predicted_loop", sa.Float, nullable=True),
        sa.Column("actual_total", sa.Float, nullable=True),
        sa.Column("actual_build", sa.Float, nullable=True),
        sa.Column("actual_loop", sa.Float, nullable=True),
        sa.Column("peak_rss", sa.BigInteger, nullable=True),
        sa.Column("exit_code", sa.Integer, nullable=True),
        sa.Column("created_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    """Drop the runs table and the purpose column."""
    op.drop_table("autotune_runs")
    with op.batch_alter_table("autotune_trials") as batch:
        batch.drop_column("purpose")
