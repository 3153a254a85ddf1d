"""Record how many CPUs other work left each run (``free_cpus``) of those it could use
(``cpus``), so that the runs of a
parallel sweep, which share their CPUs, do not teach a script's later runs times that are not
their configuration's.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``free_cpus`` and ``cpus`` to runs."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.add_column(sa.Column("free_cpus", sa.Float(), nullable=True))
        batch.add_column(sa.Column("cpus", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.drop_column("cpus")
        batch.drop_column("free_cpus")
