"""Record the CPU seconds each run's process tree spent per wall second, in its simulation
loops (``loop_cpu_share``) and outside them (``setup_cpu_share``), so that a run of a parallel
sweep that kept one CPU busy can teach its times at the pace of its own CPU time.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``loop_cpu_share`` and ``setup_cpu_share`` to runs."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.add_column(sa.Column("loop_cpu_share", sa.Float(), nullable=True))
        batch.add_column(sa.Column("setup_cpu_share", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.drop_column("setup_cpu_share")
        batch.drop_column("loop_cpu_share")
