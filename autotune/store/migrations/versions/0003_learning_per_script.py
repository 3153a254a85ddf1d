"""Record which script a run ran (a hash of its text), whether its build was cold, and the
model's size, so that later runs of the same script learn from it; keep each script's float32
checks.

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
    """Add ``script_digest`` (indexed), ``cold``, ``neurons`` and ``synapses`` to runs, and
    the precision checks' table."""
    with op.batch_alter_table("autotune_runs") as batch:
        batch.add_column(sa.Column("script_digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("cold", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("neurons", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("synapses", sa.BigInteger, nullable=True))
        batch.create_index("ix_autotune_runs_script_digest", ["script_digest"])
    op.create_table(
        "autotune_precision_checks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("script_digest", sa.String(64), nullable=False, index=True),
        sa.Column("script", sa.Text, nullable=False),
        sa.Column("config_key", sa.String(100), nullable=False),
        sa.Column("tolerance", sa.Float, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("max_deviation", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("observables", sa.JSON, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    op.drop_table("autotune_precision_checks")
    with op.batch_alter_table("autotune_runs") as batch:
        batch.drop_index("ix_autotune_runs_script_digest")
        for name in ("synapses", "neurons", "cold", "script_digest"):
            batch.drop_column(name)
