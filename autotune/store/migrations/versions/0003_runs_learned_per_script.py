"""Record which script a run ran (a hash of its text), whether its build was cold, and the
model's size, so that later runs of the same script learn from it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``script_digest`` (indexed), ``cold``, ``neurons`` and ``synapses`` to runs."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.add_column(sa.Column("script_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("cold", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("neurons", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("synapses", sa.BigInteger, nullable=True))
        batch.create_index("ix_autotune_runs_script_digest", ["script_digest"])


def downgrade() -> None:
    """Drop the columns added by :func:`upgrade`."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.drop_index("ix_autotune_runs_script_digest")
        for name in ("synapses", "neurons", "cold", "script_digest"):
            batch.drop_column(name)
