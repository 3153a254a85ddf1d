"""Record the size each run's model had by its dry pass (``dry_neurons``, ``dry_synapses``):
a script that takes its size from an argument, the environment or a data file keeps one text,
and its runs are learned from per size.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``dry_neurons`` and ``dry_synapses`` to runs."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.add_column(sa.Column("dry_neurons", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("dry_synapses", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.drop_column("dry_synapses")
        batch.drop_column("dry_neurons")
